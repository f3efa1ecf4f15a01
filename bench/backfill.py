"""Backfill benchmark: 1,000,000 realistic tasks from SQLite into an empty PostgreSQL.

Contenders, each in a process of its own on a fresh database at head, interleaved:
  weavenn    `weavenn migrate backfill` (the installed command, startup included)
  copy       a bare psycopg COPY of the same rows (`copy.write_row`): the practical limit
  insert     the design's migrate_sqlite_to_postgres.py: one INSERT per row, one commit
  pgloader   pgloader with a data-only load into the same schema, when installed

Prints rows/s, ratios to the bare COPY (medians, and the median of the per-round ratios), each
contender's peak memory (max RSS) and the CPU time of its own process (not of its server).
Run: python bench/backfill.py [--rows 1000000] [--rounds 3] [--insert-rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import COLUMNS, make_sqlite, median, scratch_pg

WEAVENN = Path(sys.executable).parent / "weavenn"


def bare_copy(source: Path, target: str, limit: int | None) -> None:
    import psycopg

    query = f"SELECT {COLUMNS} FROM tasks" + (f" LIMIT {limit}" if limit else "")
    with sqlite3.connect(source) as lite, psycopg.connect(target) as pg:
        pg.execute("SET TIME ZONE 'UTC'")
        with pg.cursor() as cursor, cursor.copy(f"COPY tasks ({COLUMNS}) FROM STDIN") as copy:
            for row in lite.execute(query):
                copy.write_row(row)


def row_by_row(source: Path, target: str, limit: int | None) -> None:
    """The design document's script, on psycopg 3 (the booleans need bool(): PostgreSQL
    refuses SQLite's 0/1 for a boolean column, which the original script never met)."""
    import psycopg

    query = f"SELECT {COLUMNS} FROM tasks" + (f" LIMIT {limit}" if limit else "")
    lite = sqlite3.connect(source)
    tasks = lite.execute(query).fetchall()
    with psycopg.connect(target) as pg:
        pg.execute("SET TIME ZONE 'UTC'")
        cursor = pg.cursor()
        for task in tasks:
            task = (*task[:5], bool(task[5]), *task[6:])
            cursor.execute(
                f"INSERT INTO tasks ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", task
            )
        pg.commit()


def pgloader(source: Path, target: str) -> None:
    load = (
        f"LOAD DATABASE FROM sqlite://{source} INTO {target}\n"
        " WITH data only, create no tables, create no indexes, reset no sequences\n"
        " SET timezone to 'UTC'\n"
        " INCLUDING ONLY TABLE NAMES LIKE 'tasks';\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".load") as file:
        file.write(load)
        file.flush()
        subprocess.run(["pgloader", "--quiet", file.name], check=True, capture_output=True)


def run_contender(
    name: str, source: Path, target: str, limit: int | None
) -> tuple[float, float, float]:
    """Wall seconds, peak memory (MB) and CPU seconds of one contender in its own process."""
    if name == "weavenn":
        command = [str(WEAVENN), "migrate", "backfill", "--source", f"sqlite:///{source}",
                   "--target", target, "--table", "tasks"]  # fmt: skip
    else:
        command = [sys.executable, __file__, "--run", name, "--source", str(source),
                   "--target", target, "--limit", str(limit or 0)]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(
            f"{name} failed: {process.stderr.read().decode() if process.stderr else ''}"
        )
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def check_copied(target: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(target) as pg:
        count = pg.execute("SELECT count(*) FROM tasks").fetchone()
    assert count == (rows,), f"{target} holds {count} rows, expected {rows}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--insert-rows", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--run")
    parser.add_argument("--source", type=Path)
    parser.add_argument("--target")
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    if args.run:
        limit = args.limit or None
        {"copy": lambda: bare_copy(args.source, args.target, limit),
         "insert": lambda: row_by_row(args.source, args.target, limit),
         "pgloader": lambda: pgloader(args.source, args.target)}[args.run]()  # fmt: skip
        return

    source = args.data / f"weavenn-bench-tasks-{args.rows}.db"
    print(f"preparing {args.rows:,} tasks in {source} …", flush=True)
    make_sqlite(source, args.rows)
    results: dict[str, list[tuple[float, float, float]]] = {"weavenn": [], "copy": []}
    for round_ in range(args.rounds):
        for name in ("weavenn", "copy") if round_ % 2 == 0 else ("copy", "weavenn"):
            with scratch_pg(name) as target:
                results[name].append(run_contender(name, source, target, None))
                check_copied(target, args.rows)
            print(f"  round {round_ + 1} {name}: {results[name][-1][0]:.2f}s", flush=True)
    with scratch_pg("insert") as target:
        limit = args.insert_rows if args.insert_rows < args.rows else None
        results["insert"] = [run_contender("insert", source, target, limit)]
        check_copied(target, limit or args.rows)
        insert_rows = limit or args.rows
    if shutil.which("pgloader"):
        with scratch_pg("pgloader") as target:
            results["pgloader"] = [run_contender("pgloader", source, target, None)]
            check_copied(target, args.rows)
    else:
        print("pgloader: not installed (apt-get install pgloader)")

    copy_rate = args.rows / median([s for s, _, _ in results["copy"]])
    print(f"\n{args.rows:,} tasks, SQLite → empty PostgreSQL (medians of {args.rounds} rounds)")
    print(
        f"{'contender':<10} {'seconds':>8} {'rows/s':>10} {'x copy':>7} {'peak MB':>8} {'CPU s':>6}"
    )
    for name, runs in results.items():
        rows = insert_rows if name == "insert" else args.rows
        seconds = median([s for s, _, _ in runs])
        rate = rows / seconds
        memory = max(m for _, m, _ in runs)
        cpu = median([c for _, _, c in runs])
        print(
            f"{name:<10} {seconds:8.2f} {rate:10,.0f} {rate / copy_rate:7.2f} {memory:8.0f} "
            f"{cpu:6.2f}"
        )
    # Each round's two runs met the same load: their ratio swings less than the medians'.
    paired = [c[0] / w[0] for w, c in zip(results["weavenn"], results["copy"], strict=True)]
    print(f"weavenn x copy, round by round: {', '.join(f'{r:.2f}' for r in paired)}")
    print(f"median of the per-round ratios: {median(paired):.2f}")


if __name__ == "__main__":
    main()
