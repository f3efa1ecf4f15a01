"""The project image. No Docker engine runs on these machines, so `docker build` itself cannot
run here; what can be checked is: the Dockerfile's instructions (parsed below), that
.dockerignore lets through what they copy, and that the wheel built and installed the way the
Dockerfile does it works from an unrelated folder (templates and values shipped inside)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    logical, parts = [], []
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        logical.append(" ".join(parts))
        parts = []
    assert not parts, "the Dockerfile ends inside a continued line"
    result = []
    for text in logical:
        keyword, _, arguments = text.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            found.append([])
        assert found, "an instruction before the first FROM"
        found[-1].append((keyword, arguments))
    return found


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics: the last matching pattern wins; `!` re-includes; a pattern
    that matches a folder covers what is inside it."""
    candidates = [path] + [str(parent) for parent in Path(path).parents if str(parent) != "."]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if pattern == "**" or any(re.match(regex, c) for c in candidates):
            verdict = not negate
    return verdict


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_builds_the_wheel_and_runs_weavenn_as_non_root() -> None:
    build, runtime = stages(ROOT / "Dockerfile")
    assert build[0] == ("FROM", "python:3.11-slim AS build")
    assert runtime[0] == ("FROM", "python:3.11-slim")
    build_runs = [args for keyword, args in build if keyword == "RUN"]
    assert any(args.startswith("pip wheel") and "--no-deps" in args for args in build_runs)
    runtime_runs = " && ".join(args for keyword, args in runtime if keyword == "RUN")
    assert "pip install --no-cache-dir /tmp/dist/*.whl" in runtime_runs
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    entrypoints = [args for keyword, args in runtime if keyword == "ENTRYPOINT"]
    assert [json.loads(args) for args in entrypoints] == [["weavenn"]]
    assert all(keyword != "ADD" for keyword, _ in build + runtime)


def test_what_the_build_copies_passes_dockerignore() -> None:
    (build, _) = stages(ROOT / "Dockerfile")
    patterns = dockerignore()
    copied = [shlex.split(args)[:-1] for keyword, args in build if keyword == "COPY"]
    sources = [source for group in copied for source in group if not source.startswith("--")]
    assert {"pyproject.toml", "README.md", "weavenn_cli", "templates"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
    assert not ignored("weavenn_cli/runtime/deploy/k8s.py", patterns)
    assert not ignored("templates/k8s/apps.yaml.j2", patterns)
    assert ignored(".venv/bin/python", patterns)
    assert ignored("tests/deploy/golden/k8s-prod.yaml", patterns)
    assert ignored("weavenn_cli/__pycache__/app.cpython-311.pyc", patterns)


def build_context(target: Path) -> Path:
    """The files `docker build` would send, after .dockerignore."""
    patterns = dockerignore()
    reincluded = [p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")]
    for folder, subfolders, files in os.walk(ROOT):
        relative = Path(folder).relative_to(ROOT)
        # Skip folders nothing inside can come back from (.venv, .git): the walk stays short.
        subfolders[:] = [
            name
            for name in subfolders
            if not ignored(str(relative / name), patterns)
            or any(r.startswith(str(relative / name)) for r in reincluded)
        ]
        for name in files:
            if not ignored(str(relative / name), patterns):
                (target / relative).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(folder) / name, target / relative / name)
    return target


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_wheel_built_and_installed_as_the_image_does_runs_from_anywhere(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    build, _ = stages(ROOT / "Dockerfile")
    wheel_command = next(args for keyword, args in build if keyword == "RUN")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", *shlex.split(wheel_command.replace("/dist", str(dist)))],
        cwd=context,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("weavenn-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert "weavenn_cli/templates/k8s/apps.yaml.j2" in shipped
    assert "weavenn_cli/templates/compose/docker-compose.yml.j2" in shipped
    assert "weavenn_cli/templates/values/prod.yaml" in shipped
    assert "weavenn_cli/runtime/migrations/versions/001_create_tasks_table.py" in shipped
    assert "weavenn_cli/runtime/stack/demo_vault/Welcome.md" in shipped  # `weavenn up --demo`

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    weavenn = str(venv / "bin" / "weavenn")
    version = subprocess.run([weavenn, "--version"], cwd=elsewhere, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("weavenn ")
    rendered = subprocess.run(
        [weavenn, "k8s", "render", "--env", "prod"], cwd=elsewhere, capture_output=True, text=True
    )
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout == (GOLDEN / "k8s-prod.yaml").read_text()
    composed = subprocess.run(
        [weavenn, "compose", "render", "--output", "-"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert composed.stdout == (GOLDEN / "compose-default.yml").read_text()
