"""Property-based fuzzing of the OpenAPI documents the servers publish: no input gets a 5xx.

Schemathesis turns every operation of a published schema into a Hypothesis strategy;
examples are bounded so the module stays quick. The search operations are fuzzed on
PostgreSQL too, since their queries differ per database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Server, StartServer
from tests.api.test_search import index_vault

pytestmark = pytest.mark.xdist_group("api-fuzz")

UNLIMITED = {"RATE_LIMIT_PER_MINUTE": "100000"}
SEARCH_PREFIXES = ("/search", "/notes", "/graph")


def seed(vault: Path) -> Path:
    (vault / "seed.md").write_text("---\ntags: [seed]\n---\nA seed note. [[linked]]\n")
    (vault / "linked.md").write_text("# Linked\nLinked from the seed. #topic/nested\n")
    return vault


@pytest.fixture(scope="module")
def fuzz_vault(module_vault: Path) -> Path:
    """The monolith's vault; the fuzz writes notes into it through /files."""
    return seed(module_vault)


@pytest.fixture(scope="module")
def monolith(
    module_server: StartServer, module_sqlite_url: str, fuzz_vault: Path, weavenn_bin: Path
) -> Server:
    index_vault(weavenn_bin, module_sqlite_url, fuzz_vault)
    env = {"DATABASE_URL": module_sqlite_url, "VAULT_PATH": str(fuzz_vault)}
    return module_server("all", env | UNLIMITED)


@pytest.fixture(scope="module")
def file_service_on_postgresql(
    module_server: StartServer,
    module_pg_url: str,
    weavenn_bin: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Server:
    vault = seed(tmp_path_factory.mktemp("pg-vault"))
    index_vault(weavenn_bin, module_pg_url, vault)
    env = {"DATABASE_URL": module_pg_url, "VAULT_PATH": str(vault)}
    return module_server("file-service", env | UNLIMITED)


def server_errors(server: Server, wanted: Callable[[str], bool]) -> tuple[int, list[str]]:
    """How many operations were fuzzed, and every request answered with a 5xx."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [operation for operation in operations if wanted(operation.path)]
    failures: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.url, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]}"
                )

        fuzz()
    return len(operations), failures


def test_no_input_gets_a_server_error(monolith: Server) -> None:
    fuzzed, failures = server_errors(monolith, lambda path: True)
    assert fuzzed > 36
    assert failures == [], "\n".join(failures[:20])


def test_no_search_input_gets_a_server_error_on_postgresql(
    file_service_on_postgresql: Server,
) -> None:
    fuzzed, failures = server_errors(
        file_service_on_postgresql, lambda path: path.startswith(SEARCH_PREFIXES)
    )
    assert fuzzed == 5
    assert failures == [], "\n".join(failures[:20])
