"""The command itself: entry points, help, version, exit codes, error lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from weavenn_cli import __version__
from weavenn_cli.app import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"weavenn {__version__}"


def test_help_lists_every_command_group_with_a_purpose() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in (
        "up",
        "status",
        "config",
        "migrate",
        "doctor",
        "serve",
        "vault",
        "watch",
        "compose",
        "k8s",
        "bus",
        "relay",
        "consume",
        "dlq",
        "rollout",
    ):
        line = next(line for line in result.output.splitlines() if f" {group} " in line)
        assert len(line.split(group, 1)[1].strip(" │")) > 10, f"{group} has no one-line purpose"


def test_installed_entry_point_runs_as_a_subprocess(run_weavenn) -> None:
    result = run_weavenn("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"weavenn {__version__}"


def test_python_dash_m_runs_the_same_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "weavenn_cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"weavenn {__version__}"


def test_help_does_not_import_heavy_libraries() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from weavenn_cli.app import app\n"
        "for args in (['--help'], ['migrate', '--help'], ['config', '--help'],\n"
        "             ['serve', '--help'], ['vault', '--help'], ['watch', '--help'],\n"
        "             ['k8s', '--help'], ['k8s', 'apply', '--help'], ['compose', '--help'],\n"
        "             ['bus', '--help'], ['dlq', '--help'], ['consume', '--help'],\n"
        "             ['relay', '--help'], ['rollout', '--help'], ['up', '--help'],\n"
        "             ['status', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "heavy = ['sqlalchemy', 'alembic', 'pydantic_settings', 'pika', 'fastapi', 'uvicorn',\n"
        "         'kubernetes', 'docker', 'psycopg', 'httpx', 'jinja2', 'starlette',\n"
        "         'prometheus_client', 'limits', 'redis', 'yaml', 'frontmatter', 'watchfiles',\n"
        "         'kubernetes_validate', 'jsonschema', 'aiohttp']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at --help: {result.stdout.strip()}"


def test_unknown_option_is_bad_usage_exit_2(run_weavenn) -> None:
    result = run_weavenn("migrate", "db", "--no-such-option")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_operation_error_is_one_line_without_traceback(run_weavenn) -> None:
    result = run_weavenn(
        "migrate", "current", "--database-url", "postgresql://nobody@127.0.0.1:1/x"
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach database postgresql://nobody@127.0.0.1:1/x")
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(run_weavenn) -> None:
    result = run_weavenn(
        "--debug", "migrate", "current", "--database-url", "postgresql://nobody@127.0.0.1:1/x"
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "error: cannot reach database" in result.stderr


def test_readme_test_command_is_the_one_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    marker = "<!-- test-command -->"
    block = readme.split(marker, 1)[1].split("```", 2)[1]
    command = block.removeprefix("bash").strip()
    assert command in ci.splitlines(), f"README's test command {command!r} is not what .ci/run runs"


def test_shell_completion_script_and_answers(run_weavenn) -> None:
    # With shell detection on, typer takes the shell from the process tree (shellingham),
    # which a test runner's tree may not have: the shell is named explicitly instead.
    script = run_weavenn(
        "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    )
    assert script.returncode == 0
    assert "_weavenn_completion" in script.stdout
    answer = run_weavenn(
        env={"_WEAVENN_COMPLETE": "complete_bash", "COMP_WORDS": "weavenn mig", "COMP_CWORD": "1"}
    )
    assert answer.stdout.split() == ["migrate"]


def test_table_cells_show_brackets_as_written(run_weavenn, tmp_path) -> None:
    # Free text in a table (a path, a reason, a setting) is data, never rich markup.
    result = run_weavenn("config", "show", env={"VAULT_ID": "[/]weird[bold]"})
    assert result.returncode == 0, result.stderr
    assert "[/]weird[bold]" in result.stdout
