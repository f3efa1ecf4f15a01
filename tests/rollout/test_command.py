"""`weavenn rollout` as operators run it, on a real database: in process (quick) for most,
through the installed command where exit codes and error lines are the point."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from weavenn_cli.app import app
from weavenn_cli.runtime.rollout.cohorts import bucket

RunWeavenn = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def rollout(migrated_sqlite_url: str) -> RunWeavenn:
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        command = ["rollout", *args]
        result = CliRunner().invoke(app, command, env={"DATABASE_URL": migrated_sqlite_url, **env})
        return subprocess.CompletedProcess(command, result.exit_code, result.stdout, result.stderr)

    return run


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("value", ["-5", "101", "2.5", "abc", "25%", "1e2"])
def test_bad_percentages_are_one_line_and_exit_2(rollout: RunWeavenn, value: str) -> None:
    result = rollout("task-service", value)
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"error: percentage must be a whole number from 0 to 100, not {value!r}"
    )
    assert json.loads(rollout("task-service", "--json").stdout)["percent"] == 0


def test_the_installed_command_refuses_a_bad_percentage_with_exit_2(
    run_weavenn: RunWeavenn, migrated_sqlite_url: str
) -> None:
    result = run_weavenn("rollout", "task-service", "-5", env={"DATABASE_URL": migrated_sqlite_url})
    assert result.returncode == 2
    assert (
        one_error_line(result) == "error: percentage must be a whole number from 0 to 100, not '-5'"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mail-service", "10"), "unknown service 'mail-service': choose one of task-service"),
        (("task-service", "10", "--undo"), "PERCENT and --undo do not go together"),
        (("--history",), "--history needs a SERVICE"),
        (("task-service", "--plan", "10,5"), "--plan must rise step by step"),
        (("task-service", "--plan", "10", "--step-interval", "15"), "'15' is not a duration"),
    ],
)
def test_bad_usage_exits_2_with_what_to_do(
    rollout: RunWeavenn, args: tuple[str, ...], message: str
) -> None:
    result = rollout(*args)
    assert result.returncode == 2
    assert message in one_error_line(result)


def test_a_change_prints_before_after_and_lands_in_the_history(rollout: RunWeavenn) -> None:
    first = rollout("task-service", "10", "--reason", "first slice", "--actor", "alice")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "task-service: 0 % → 10 % on the new side"
    assert "no users seen on these routes in the last 7 days" in first.stdout
    assert rollout("task-service", "25", "--actor", "bob").returncode == 0
    again = rollout("task-service", "25")
    assert again.stdout.strip() == "task-service: already at 25 %, shadow off; unchanged"
    history = json.loads(rollout("task-service", "--history", "--json").stdout)
    assert [(e["old_percent"], e["new_percent"], e["actor"], e["reason"]) for e in history] == [
        (10, 25, "bob", None),
        (0, 10, "alice", "first slice"),
    ]
    table = rollout("task-service", "--history").stdout
    assert "10 → 25 %" in table and "first slice" in table


def test_actor_defaults_to_the_os_user(rollout: RunWeavenn) -> None:
    import getpass

    assert rollout("git-service", "5").returncode == 0
    entry = json.loads(rollout("git-service", "--history", "--json").stdout)[0]
    assert entry["actor"] == getpass.getuser()


def test_undo_goes_back_and_is_recorded(rollout: RunWeavenn) -> None:
    rollout("file-service", "10")
    rollout("file-service", "50")
    undone = rollout("file-service", "--undo", "--reason", "errors up")
    assert undone.returncode == 0, undone.stderr
    assert "file-service: 50 % → 10 % on the new side" in undone.stdout
    state = json.loads(rollout("file-service", "--json").stdout)
    assert state["percent"] == 10
    assert state["last_change"]["reason"].endswith(": errors up")
    assert len(json.loads(rollout("file-service", "--history", "--json").stdout)) == 3


def test_brackets_in_free_text_are_shown_as_written(rollout: RunWeavenn) -> None:
    assert rollout("task-service", "5", "--reason", "[bold]load[/] test [/]").returncode == 0
    assert "[bold]load[/] test [/]" in rollout("task-service", "--history").stdout
    refused = rollout("task-service", "[/]")
    assert refused.returncode == 2
    assert one_error_line(refused).endswith("not '[/]'")


def test_undo_with_nothing_to_undo_fails(rollout: RunWeavenn) -> None:
    result = rollout("git-service", "--undo")
    assert result.returncode == 1
    assert one_error_line(result).startswith("error: nothing to undo: git-service")


def test_who_says_which_side_a_user_is_on(rollout: RunWeavenn) -> None:
    rollout("task-service", "30")
    inside = next(f"u{n}" for n in range(1000) if bucket("task-service", f"u{n}") < 3000)
    outside = next(f"u{n}" for n in range(1000) if bucket("task-service", f"u{n}") >= 3000)
    placed = json.loads(rollout("task-service", "--who", inside, "--json").stdout)
    assert placed == {
        "service": "task-service",
        "user_id": inside,
        "bucket": bucket("task-service", inside),
        "percent": 30,
        "side": "new",
    }
    text = rollout("task-service", "--who", outside).stdout
    assert text.startswith(f"'{outside}' is on the legacy side of task-service: bucket")


def test_shadow_switch_and_listing_of_every_service(rollout: RunWeavenn) -> None:
    on = rollout("git-service", "--shadow")
    assert on.stdout.strip() == "git-service: shadow mode on"
    listing = json.loads(rollout("--json").stdout)
    assert [(s["service"], s["percent"], s["shadow"]) for s in listing] == [
        ("task-service", 0, False),
        ("file-service", 0, False),
        ("git-service", 0, True),
    ]
    assert rollout("git-service", "--no-shadow").stdout.strip() == "git-service: shadow mode off"
    table = rollout().stdout
    assert "task-service" in table and "git-service" in table
    assert "never" in table


def test_starting_value_from_the_environment_is_shown_until_stored(rollout: RunWeavenn) -> None:
    shown = json.loads(
        rollout("task-service", "--json", NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE="10").stdout
    )
    assert (shown["percent"], shown["source"]) == (10, "NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE")
    text = rollout("task-service", NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE="10").stdout
    assert "10 % of users on the new side (from NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE" in text
    assert "no process reported requests" in text


def test_a_database_without_rollout_tables_is_one_clear_error(
    run_weavenn: RunWeavenn, sqlite_url: str
) -> None:
    result = run_weavenn("rollout", "task-service", "10", env={"DATABASE_URL": sqlite_url})
    assert result.returncode == 1
    assert one_error_line(result).endswith("has no rollout tables: run `weavenn migrate db`")


def test_migrate_status_shows_the_task_service_percentage(
    rollout: RunWeavenn, migrated_sqlite_url: str
) -> None:
    rollout("task-service", "25")
    env = {"DATABASE_URL": migrated_sqlite_url}
    result = CliRunner().invoke(app, ["migrate", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    checks = {c["item"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["task-service rollout"] == {
        "item": "task-service rollout",
        "state": "info",
        "detail": "25 % of users on the task service",
    }


def test_require_verified_stops_the_ramp_after_its_first_step(rollout: RunWeavenn) -> None:
    result = rollout(
        "task-service", "--plan", "5,10", "--step-interval", "1s", "--require-verified"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: task-service: stays at 5 %, not going further: `weavenn migrate verify` has "
        "never run (--require-verified)"
    )
    assert json.loads(rollout("task-service", "--json").stdout)["percent"] == 5
