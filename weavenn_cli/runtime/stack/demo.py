"""`weavenn up --demo`: a vault of example notes about Weave-NN, under git, for a first run.

The notes ship inside the package (`demo_vault/`). Only an empty or missing folder is
filled: a vault with anything in it (notes, `.git`, `.obsidian`) is left exactly as it is.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from weavenn_cli.runtime.git.repository import GitRepository
from weavenn_cli.runtime.problems import Problem

FIRST_COMMIT_MESSAGE = "Demo vault: example notes about Weave-NN"
GITIGNORE = ".obsidian/workspace*\n.trash/\n"


@dataclass(frozen=True)
class DemoResult:
    filled: bool
    notes: int = 0
    commit: str | None = None
    reason: str = ""


def demo_notes() -> Traversable:
    return resources.files("weavenn_cli.runtime.stack").joinpath("demo_vault")


def fill_demo_vault(vault: Path) -> DemoResult:
    """Copy the demo notes into `vault` when it is empty or missing, then commit them."""
    if vault.exists() and (not vault.is_dir() or any(vault.iterdir())):
        return DemoResult(False, reason=f"{vault} is not empty: --demo leaves it as it is")
    vault.mkdir(parents=True, exist_ok=True)
    count = _copy_tree(demo_notes(), vault)
    (vault / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    commit, reason = _init_git(vault)
    return DemoResult(True, notes=count, commit=commit, reason=reason)


def _copy_tree(source: Traversable, target: Path) -> int:
    count = 0
    for entry in sorted(source.iterdir(), key=lambda item: item.name):
        if entry.is_dir():
            (target / entry.name).mkdir(exist_ok=True)
            count += _copy_tree(entry, target / entry.name)
        elif entry.name.endswith(".md"):
            (target / entry.name).write_bytes(entry.read_bytes())
            count += 1
    return count


def _init_git(vault: Path) -> tuple[str | None, str]:
    """`git init` and a first commit; without git the notes are still there, uncommitted."""
    if shutil.which("git") is None:
        return None, "git is not installed: the demo vault has no history"
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "init", "--quiet", str(vault)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        return GitRepository(vault).commit(FIRST_COMMIT_MESSAGE).commit, ""
    except Problem as error:
        return None, f"the first commit failed: {error.message}"
