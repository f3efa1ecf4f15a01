"""Verify benchmark: the same 1,000,000 tasks in SQLite and PostgreSQL, identical and then
with 10 planted differences, `weavenn migrate verify` against the naive way: download both
tables in key order and compare them in Python (same run, interleaved).

Prints seconds (medians), the ratio to the naive time, the rows each sent to the client,
and whether exactly the 10 planted differences were found.
Run: python bench/verify.py [--rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import COLUMNS, make_sqlite, median, scratch_pg

WEAVENN = Path(sys.executable).parent / "weavenn"


def copy_to_pg(source: Path, target: str) -> None:
    import psycopg

    with sqlite3.connect(source) as lite, psycopg.connect(target) as pg:
        pg.execute("SET TIME ZONE 'UTC'")
        with pg.cursor() as cursor, cursor.copy(f"COPY tasks ({COLUMNS}) FROM STDIN") as copy:
            for row in lite.execute(f"SELECT {COLUMNS} FROM tasks"):
                copy.write_row(row)
        pg.execute("ANALYZE tasks")


def weavenn_verify(source: Path, target: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = subprocess.run(
        [str(WEAVENN), "migrate", "verify", "--source", f"sqlite:///{source}", "--target", target,
         "--table", "tasks", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"verify failed: {result.stderr}")
    return seconds, json.loads(result.stdout)


def _timestamp(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def naive_compare(source: Path, target: str) -> tuple[float, int, int]:
    """Both tables in key order, merged in Python: seconds, differences, rows downloaded."""
    import psycopg

    started = time.perf_counter()
    lite = sqlite3.connect(source)
    left = lite.execute(f"SELECT {COLUMNS} FROM tasks ORDER BY id")
    differences = rows = 0
    with psycopg.connect(target) as pg, pg.cursor(name="naive") as right:
        right.itersize = 10_000
        right.execute(f'SELECT {COLUMNS} FROM tasks ORDER BY id COLLATE "C"')
        a, b = next(left, None), next(right, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a[0] < b[0]):
                differences, a, rows = differences + 1, next(left, None), rows + 1
            elif a is None or b[0] < a[0]:
                differences, b, rows = differences + 1, next(right, None), rows + 1
            else:
                normal = (*a[:4], _timestamp(a[4]), bool(a[5]), _timestamp(a[6]),
                          None if a[7] is None else json.loads(a[7]), _timestamp(a[8]))  # fmt: skip
                differences += normal != tuple(b)
                a, b, rows = next(left, None), next(right, None), rows + 2
    return time.perf_counter() - started, differences, rows


def plant_differences(source: Path, target: str) -> dict[str, Any]:
    """10 differences: 3 rows missing, 2 extra, 5 changed (value, '', JSON, +1 µs, NULL)."""
    import psycopg

    query = "SELECT id FROM tasks WHERE due_date IS NOT NULL ORDER BY id LIMIT 8 OFFSET 1000"
    ids = [row[0] for row in sqlite3.connect(source).execute(query)]
    extra = ["00000000-extra-row-one", "ffffffff-extra-row-two"]
    with psycopg.connect(target, autocommit=True) as pg:
        pg.execute("DELETE FROM tasks WHERE id = ANY(%s)", (ids[:3],))
        for key in extra:
            pg.execute(
                "INSERT INTO tasks VALUES (%s, 'p', 't', 'todo', NULL, false, now(), NULL, now())",
                (key,),
            )
        pg.execute("UPDATE tasks SET title = title || '!' WHERE id = %s", (ids[3],))
        pg.execute("UPDATE tasks SET status = '' WHERE id = %s", (ids[4],))
        pg.execute("UPDATE tasks SET tags = '[\"planted\"]' WHERE id = %s", (ids[5],))
        pg.execute(
            "UPDATE tasks SET updated_at = updated_at + interval '1 microsecond' WHERE id = %s",
            (ids[6],),
        )
        pg.execute("UPDATE tasks SET due_date = NULL WHERE id = %s", (ids[7],))
    return {
        "missing_in_target": sorted(ids[:3]),
        "missing_in_source": sorted(extra),
        "different": sorted(
            [{"key": ids[3], "columns": ["title"]}, {"key": ids[4], "columns": ["status"]},
             {"key": ids[5], "columns": ["tags"]}, {"key": ids[6], "columns": ["updated_at"]},
             {"key": ids[7], "columns": ["due_date"]}],
            key=lambda item: item["key"],
        ),
    }  # fmt: skip


def measure(label: str, source: Path, target: str, rounds: int, rows: int) -> dict[str, Any]:
    runs_weavenn, runs_naive, report, naive = [], [], {}, (0.0, 0, 0)
    for round_ in range(rounds):
        order = ("weavenn", "naive") if round_ % 2 == 0 else ("naive", "weavenn")
        for name in order:
            if name == "weavenn":
                seconds, report = weavenn_verify(source, target)
                runs_weavenn.append(seconds)
            else:
                naive = naive_compare(source, target)
                runs_naive.append(naive[0])
        print(f"  {label} round {round_ + 1}: weavenn {runs_weavenn[-1]:.2f}s, "
              f"naive {runs_naive[-1]:.2f}s", flush=True)  # fmt: skip
    return {
        "weavenn": median(runs_weavenn),
        "naive": median(runs_naive),
        "report": report,
        "naive_differences": naive[1],
        "naive_rows": naive[2],
        "sent": report["stats"]["rows_sent_to_client"],
        "total_rows": 2 * rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    source = args.data / f"weavenn-bench-tasks-{args.rows}.db"
    print(f"preparing {args.rows:,} tasks in {source} and PostgreSQL …", flush=True)
    make_sqlite(source, args.rows)
    with scratch_pg("verify") as target:
        copy_to_pg(source, target)
        same = measure("identical", source, target, args.rounds, args.rows)
        expected = plant_differences(source, target)
        planted = measure("10 differences", source, target, args.rounds, args.rows)
    found = planted["report"]["tables"]["tasks"]
    found["different"] = sorted(found["different"], key=lambda item: item["key"])
    exact = all(found[key] == value for key, value in expected.items())

    print(f"\n{args.rows:,} tasks on each side (medians of {args.rounds} rounds)")
    print(f"{'case':<16} {'weavenn s':>9} {'naive s':>8} {'ratio':>6} {'rows sent':>10} "
          f"{'% of rows':>9} {'naive sent':>10}")  # fmt: skip
    for label, case in (("identical", same), ("10 differences", planted)):
        print(
            f"{label:<16} {case['weavenn']:9.2f} {case['naive']:8.2f} "
            f"{case['weavenn'] / case['naive']:6.2f} {case['sent']:10,} "
            f"{100 * case['sent'] / case['total_rows']:8.2f}% {case['naive_rows']:10,}"
        )
    print(f"identical reported identical: {same['report']['identical']}")
    print(f"planted differences found exactly (10, nothing else): {exact}")
    print(f"naive found {planted['naive_differences']} differing keys")


if __name__ == "__main__":
    main()
