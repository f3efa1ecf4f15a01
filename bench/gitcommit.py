"""git-auto-commit's git cost: the same changed notes committed in batches against one commit
per file (what a consumer committing each event would do), measured in one run.

    python bench/gitcommit.py [--files 200] [--batch 10] [--runs 3]

Each run generates two identical vault repositories of `--files` notes, edits every note, then
commits them with `VaultRepository.commit_requested` (the consumer's one status/add/commit):
(a) one file per commit, the baseline; (b) `--batch` files per commit. Prints milliseconds per
commit and per file (medians of the runs) and the ratio of the totals.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from weavenn_cli.runtime.git.autocommit import Requested, VaultRepository, identity_environment

BOT = identity_environment("Weave-NN Bot", "bot@weave-nn.local")


def make_vault(root: Path, files: int) -> list[str]:
    """A repository with `files` committed notes, each then edited (not yet committed)."""
    root.mkdir(parents=True)
    names = [f"notes/{i // 50:02d}/note-{i:04d}.md" for i in range(files)]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"# Note {name}\n\nSome text about [[other]] things.\n" * 20)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "notes"]):
        subprocess.run(
            ["git", "-C", str(root), "-c", "user.name=b", "-c", "user.email=b@b", *args],
            check=True,
        )
    for name in names:
        with (root / name).open("a") as note:
            note.write("\nedited\n")
    return names


def commit_all(root: Path, names: list[str], batch: int) -> tuple[float, int]:
    repository = VaultRepository.open(root, env=BOT, auto_init=False)
    started = time.perf_counter()
    commits = 0
    for start in range(0, len(names), batch):
        requested = [Requested(name) for name in names[start : start + batch]]
        if repository.commit_requested(requested, {}) is not None:
            commits += 1
    return time.perf_counter() - started, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    single: list[float] = []
    batched: list[float] = []
    for _ in range(options.runs):
        with tempfile.TemporaryDirectory(prefix="weavenn-bench-git-") as folder:
            names = make_vault(Path(folder) / "single", options.files)
            seconds, commits = commit_all(Path(folder) / "single", names, 1)
            assert commits == options.files, commits
            single.append(seconds)
            make_vault(Path(folder) / "batched", options.files)
            seconds, commits = commit_all(Path(folder) / "batched", names, options.batch)
            assert commits == -(-options.files // options.batch), commits
            batched.append(seconds)
    a, b = statistics.median(single), statistics.median(batched)
    batches = -(-options.files // options.batch)
    print(f"{options.files} edited notes, median of {options.runs} runs")
    print(f"{'':<28}{'total s':>9}{'ms/commit':>11}{'ms/file':>9}")
    print(
        f"{'(a) one commit per file':<28}{a:>9.2f}{a / options.files * 1000:>11.1f}"
        f"{a / options.files * 1000:>9.1f}"
    )
    print(
        f"{f'(b) {options.batch} files per commit':<28}{b:>9.2f}{b / batches * 1000:>11.1f}"
        f"{b / options.files * 1000:>9.1f}"
    )
    print(f"ratio (a)/(b): {a / b:.1f}x")


if __name__ == "__main__":
    main()
