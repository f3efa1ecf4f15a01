"""Parse-only throughput of the vault parser against `weavenn vault index` on SQLite and
PostgreSQL, measured in one run on one generated vault.

    python bench/parse.py [--notes 10000] [--runs 3] [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Prints notes/s (median of the runs) and the ratio index/parse: how much of the parser's
speed survives hashing, writing rows, full-text indexing and resolving links.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vaultgen import generate

from weavenn_cli.runtime.vault.parser import parse_note

WEAVENN = Path(sys.executable).parent / "weavenn"


def parse_only(root: Path, paths: list[str]) -> float:
    started = time.perf_counter()
    for path in paths:
        parse_note(path, (root / path).read_bytes(), max_text_bytes=262_144)
    return len(paths) / (time.perf_counter() - started)


def weavenn(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(WEAVENN), *args], env={**os.environ, **env}, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"weavenn {' '.join(args)} failed: {result.stderr.strip()}")


def index_once(root: Path, count: int, database_url: str) -> float:
    env = {"DATABASE_URL": database_url, "VAULT_PATH": str(root)}
    weavenn("migrate", "db", env=env)
    started = time.perf_counter()
    weavenn("vault", "index", "--json", env=env)
    return count / (time.perf_counter() - started)


def index_sqlite(root: Path, count: int, workdir: Path, run: int) -> float:
    return index_once(root, count, f"sqlite:///{workdir / f'bench-{run}.db'}")


def index_postgres(root: Path, count: int, admin_url: str) -> float:
    name = f"weavenn_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        base = admin_url.rsplit("/", 1)[0]
        return index_once(root, count, f"{base}/{name}")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weavenn-bench-") as tmp:
        workdir = Path(tmp)
        root = workdir / "vault"
        paths = generate(root, args.notes)
        size = sum((root / p).stat().st_size for p in paths)
        print(f"vault: {len(paths)} notes, {size / len(paths) / 1024:.1f} KiB per note on average")
        parse = [parse_only(root, paths) for _ in range(args.runs)]
        sqlite = [index_sqlite(root, len(paths), workdir, run) for run in range(args.runs)]
        postgres = [index_postgres(root, len(paths), args.pg_admin_url) for _ in range(args.runs)]
    base = statistics.median(parse)
    print(f"{'measure':<36}{'notes/s (median)':>18}{'runs':>34}{'ratio':>8}")
    for label, values in (
        ("parse only (baseline)", parse),
        ("weavenn vault index, SQLite", sqlite),
        ("weavenn vault index, PostgreSQL", postgres),
    ):
        runs = ", ".join(f"{v:,.0f}" for v in values)
        median = statistics.median(values)
        print(f"{label:<36}{median:>18,.0f}{runs:>34}{median / base:>8.2f}")


if __name__ == "__main__":
    main()
