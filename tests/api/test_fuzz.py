"""Property-based fuzzing of the monolith's OpenAPI document: no input gets a 5xx.

Schemathesis turns every operation of the schema the server publishes into a Hypothesis
strategy; examples are bounded so the module stays quick.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Server, StartServer

pytestmark = pytest.mark.xdist_group("api-fuzz")


@pytest.fixture(scope="module")
def monolith(module_server: StartServer, module_sqlite_url: str, module_vault: Path) -> Server:
    (module_vault / "seed.md").write_text("---\ntags: [seed]\n---\nA seed note.\n")
    return module_server(
        "all",
        {
            "DATABASE_URL": module_sqlite_url,
            "VAULT_PATH": str(module_vault),
            "RATE_LIMIT_PER_MINUTE": "100000",
        },
    )


def test_no_input_gets_a_server_error(monolith: Server) -> None:
    schema = schemathesis.openapi.from_url(monolith.url + "/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

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
            response = case.call(base_url=monolith.url, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]}"
                )

        fuzz()
    assert failures == [], "\n".join(failures[:20])
