"""Options shared by `weavenn compose` and `weavenn k8s`: values files, --set, environment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from weavenn_cli.runtime.deploy.values import Values

VALUES_OPTION = typer.Option(
    [],
    "--values",
    "-f",
    help="Values file (YAML); repeatable, later files win.",
    metavar="FILE",
)
SET_OPTION = typer.Option(
    [],
    "--set",
    help="Override one value by dotted path, e.g. image.tag=1.2.0; repeatable, wins over files.",
    metavar="PATH=VALUE",
)
ENV_OPTION = typer.Option(
    "dev", "--env", "-e", help="Environment: dev, staging or prod.", metavar="ENV"
)


def load_values(environment: str | None, files: list[Path], sets: list[str]) -> Values:
    """Defaults < the environment's file < --values files < WEAVENN_VALUES__* < --set."""
    from weavenn_cli.runtime.deploy.values import load_values as load

    return load(environment, files, sets)
