"""Where the data files shipped with weavenn live, in a checkout and in an installed copy."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def migrations_dir() -> Path:
    return PACKAGE_DIR / "runtime" / "migrations"


def templates_dir() -> Path:
    """`templates/`: inside the package when installed from a wheel, at the top of a checkout."""
    installed = PACKAGE_DIR / "templates"
    if installed.is_dir():
        return installed
    checkout = PACKAGE_DIR.parent / "templates"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"templates folder not found in {PACKAGE_DIR} or its parent")
