"""`weavenn k8s`: render, validate, diff, apply, status and roll back on Kubernetes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from weavenn_cli.commands._deploy import ENV_OPTION, SET_OPTION, VALUES_OPTION, load_values
from weavenn_cli.commands._shared import print_json, print_rows, stderr, stdout

if TYPE_CHECKING:
    from weavenn_cli.runtime.deploy.cluster import Change
    from weavenn_cli.runtime.deploy.k8s import Manifest

app = typer.Typer(
    help="Render Kubernetes manifests, validate them offline, diff/apply/roll back on a cluster.",
    no_args_is_help=True,
)

INCLUDE_SECRETS_OPTION = typer.Option(
    False,
    "--include-secrets",
    help="Render the Secrets too, from DATABASE_URL, RABBITMQ_URL, ... in the environment.",
)
FROM_OPTION = typer.Option(
    None, "--from", help="Use manifests rendered earlier (folder or file).", metavar="PATH"
)
CONTEXT_OPTION = typer.Option(
    None, "--context", help="kubeconfig context (default: the current one).", metavar="NAME"
)


def _manifests(
    environment: str,
    values_files: list[Path],
    sets: list[str],
    include_secrets: bool,
    source: Path | None = None,
) -> list[Manifest]:
    import os

    from weavenn_cli.runtime.deploy import k8s

    if source is not None:
        return k8s.load(source)
    values = load_values(environment, values_files, sets)
    return k8s.render(values, environment, include_secrets=include_secrets, environ=os.environ)


@app.command("render")
def render(
    environment: str = ENV_OPTION,
    values_files: list[Path] = VALUES_OPTION,
    sets: list[str] = SET_OPTION,
    include_secrets: bool = INCLUDE_SECRETS_OPTION,
    output: str = typer.Option(
        "-",
        "--output",
        "-o",
        help="Folder (one file per object) or - for stdout.",
        metavar="DIR|-",
    ),
) -> None:
    """Render every object of ENV in apply order: same input, same bytes."""
    from weavenn_cli.runtime.deploy import k8s

    manifests = _manifests(environment, values_files, sets, include_secrets)
    if output == "-":
        typer.echo(k8s.to_stream(manifests), nl=False)
        return
    written = k8s.write_dir(manifests, Path(output))
    stderr.print(f"wrote {len(written)} manifests to {output}")


@app.command("validate")
def validate(
    path: Path | None = typer.Argument(
        None, help="Rendered folder or file (default: render ENV now).", metavar="[DIR]"
    ),
    kube_version: str = typer.Option(
        "1.30", "--kube-version", help="Kubernetes version whose schemas to use.", metavar="X.Y"
    ),
    environment: str = ENV_OPTION,
    values_files: list[Path] = VALUES_OPTION,
    sets: list[str] = SET_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check every object offline: Kubernetes schemas, probes, pinned images, no secrets."""
    from weavenn_cli.runtime.deploy.validate import check_kube_version
    from weavenn_cli.runtime.deploy.validate import validate as run_validation
    from weavenn_cli.runtime.errors import WeavennError

    version = check_kube_version(kube_version)
    manifests = _manifests(environment, values_files, sets, False, path)
    failures = run_validation(manifests, version)
    if as_json:
        print_json(
            {
                "valid": not failures,
                "kube_version": version,
                "objects": len(manifests),
                "failures": failures,
            }
        )
    else:
        for failure in failures:
            stdout.print(f"FAIL {failure}", markup=False, soft_wrap=True)
    if failures:
        raise WeavennError(
            f"{len(failures)} problem(s) in {len(manifests)} objects (Kubernetes {version})"
        )
    if not as_json:
        stdout.print(f"{len(manifests)} objects valid for Kubernetes {version}")


@app.command("diff")
def diff(
    environment: str = ENV_OPTION,
    values_files: list[Path] = VALUES_OPTION,
    sets: list[str] = SET_OPTION,
    include_secrets: bool = INCLUDE_SECRETS_OPTION,
    source: Path | None = FROM_OPTION,
    context: str | None = CONTEXT_OPTION,
) -> None:
    """Show what apply would change; exit 0 no changes, 1 changes, 2 error (as kubectl diff)."""
    from weavenn_cli.runtime.deploy import cluster
    from weavenn_cli.runtime.errors import WeavennError

    try:
        manifests = _manifests(environment, values_files, sets, include_secrets, source)
        with cluster.Cluster(context) as connection, _progress(len(manifests)) as advance:
            changes = cluster.plan(
                connection, manifests, apply=False, with_diff=True, on_change=advance
            )
    except WeavennError as error:
        raise WeavennError(error.message, exit_code=max(error.exit_code, 2)) from None
    changed = [change for change in changes if change.action != "unchanged"]
    for change in changed:
        stdout.out(change.diff, end="", highlight=False)
    stderr.print(f"{len(changed)} of {len(changes)} objects would change")
    if changed:
        raise typer.Exit(1)


@app.command("apply")
def apply(
    environment: str = ENV_OPTION,
    values_files: list[Path] = VALUES_OPTION,
    sets: list[str] = SET_OPTION,
    include_secrets: bool = INCLUDE_SECRETS_OPTION,
    source: Path | None = FROM_OPTION,
    dry_run: str | None = typer.Option(
        None,
        "--dry-run",
        help="client: list what would be sent; server: let the API check it.",
        metavar="client|server",
    ),
    force_conflicts: bool = typer.Option(
        False, "--force-conflicts", help="Take over fields another field manager changed."
    ),
    prune: bool = typer.Option(
        False, "--prune", help="Delete objects of this environment that are no longer rendered."
    ),
    context: str | None = CONTEXT_OPTION,
) -> None:
    """Server-side apply (field manager weavenn), namespace first, the migrate Job last."""
    from weavenn_cli.runtime.deploy import cluster, k8s
    from weavenn_cli.runtime.errors import UsageError

    if dry_run not in (None, "client", "server"):
        raise UsageError(f"--dry-run {dry_run!r}: use client or server")
    manifests = _manifests(environment, values_files, sets, include_secrets, source)
    namespace = k8s.namespace_for(environment)
    if prune and {m.namespace for m in manifests if m.namespace} != {namespace}:
        # Pruning compares with what is rendered: manifests of another environment would
        # prune everything in this one.
        raise UsageError(
            f"--prune: these manifests are not all for namespace {namespace}; pass --env"
        )
    if dry_run == "client":
        for manifest in k8s.order(manifests):
            stdout.print(f"{manifest.ref} (dry run: client, not sent)", markup=False)
        return
    suffix = " (dry run: server)" if dry_run else ""
    with cluster.Cluster(context) as connection:
        with _progress(len(manifests)) as advance:
            changes = cluster.plan(
                connection,
                manifests,
                apply=dry_run is None,
                force=force_conflicts,
                on_change=advance,
            )
        if prune:
            changes += cluster.prune(
                connection,
                manifests,
                namespace,
                k8s.instance_selector(environment),
                dry_run=dry_run is not None,
            )
    for change in changes:
        stdout.print(f"{change.ref} {change.action}{suffix}", markup=False)


@app.command("status")
def status(
    environment: str = ENV_OPTION,
    context: str | None = CONTEXT_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rollout state of every Deployment and StatefulSet of ENV."""
    from weavenn_cli.runtime.deploy import cluster, k8s

    with cluster.Cluster(context) as connection:
        states = cluster.rollout_status(
            connection, k8s.namespace_for(environment), k8s.instance_selector(environment)
        )
    if as_json:
        print_json([state.__dict__ for state in states])
        return
    print_rows(
        ("kind", "name", "desired", "updated", "ready", "available", "state"),
        ((s.kind, s.name, s.desired, s.updated, s.ready, s.available, s.state) for s in states),
        title=f"namespace {k8s.namespace_for(environment)}",
    )


@app.command("rollback")
def rollback(
    deployment: str = typer.Argument(..., help="Deployment name, e.g. task-service."),
    to_revision: int = typer.Option(
        0, "--to-revision", min=0, help="Revision to go back to (default: the previous one)."
    ),
    environment: str = ENV_OPTION,
    context: str | None = CONTEXT_OPTION,
) -> None:
    """Roll a Deployment back to an earlier revision, as kubectl rollout undo does."""
    from weavenn_cli.runtime.deploy import cluster, k8s

    with cluster.Cluster(context) as connection:
        result = cluster.rollback(
            connection, k8s.namespace_for(environment), deployment, to_revision
        )
    if result.skipped:
        stdout.print(
            f"deployment/{deployment} skipped rollback: it already runs revision {result.revision}"
        )
    else:
        stdout.print(f"deployment/{deployment} rolled back to revision {result.revision}")


@contextmanager
def _progress(total: int) -> Iterator[Callable[[Change], None]]:
    """A progress bar on stderr, advanced once per object."""
    from rich.progress import Progress

    with Progress(console=stderr, transient=True, disable=not stderr.is_terminal) as bar:
        task = bar.add_task("objects", total=total)
        yield lambda change: bar.update(task, advance=1, description=change.ref)
