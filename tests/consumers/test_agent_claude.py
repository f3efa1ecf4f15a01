"""Claude summaries, against a local HTTP server started by the test that answers as the
Messages API documents (POST /v1/messages, content[0].text); the real API is not reachable
here. A failing or silent API never blocks the queue: the rule result is kept."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.consumers.agent_rig import AgentRig
from weavenn_cli.runtime.agent.claude import ClaudeSummarizer, SummaryFailed
from weavenn_cli.runtime.vault.parser import parse_note

NOTE = "---\ntitle: Deploy\n---\nThe kubernetes rollout, step by step.\n"


class MessagesApiDouble:
    """Answers POST /v1/messages like the Claude Messages API; `plan` lists what to do for
    each request in turn ("ok", an HTTP status, or "hang"), the last one repeating."""

    def __init__(
        self, plan: list[Any], summary: str = "How the rollout runs, step by step."
    ) -> None:
        self.plan = plan
        self.summary = summary
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.release = threading.Event()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                double.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                step = double.plan[min(len(double.requests), len(double.plan)) - 1]
                if step == "hang":
                    double.release.wait(10)
                    return
                if step == "ok":
                    self._send(200, double._message(body))
                else:
                    self._send(
                        step, {"type": "error", "error": {"type": "api_error", "message": "boom"}}
                    )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _message(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": [{"type": "text", "text": self.summary + "\nSecond line dropped."}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 9},
        }

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    return root


def summarizer(api: MessagesApiDouble, timeout: float = 5.0) -> ClaudeSummarizer:
    return ClaudeSummarizer(api.url, "sk-test", model="claude-test", timeout=timeout, max_retries=2)


def run_rig(database_url: str, vault: Path, api: MessagesApiDouble, timeout: float = 5.0) -> bytes:
    rig = AgentRig(database_url, vault, summarizer=summarizer(api, timeout))
    try:
        rig.deliver(rig.save("features/deploy.md", NOTE))
        return rig.read("features/deploy.md")
    finally:
        rig.close()


def test_the_summary_from_the_messages_api_goes_into_frontmatter(
    migrated_sqlite_url: str, vault: Path
) -> None:
    api = MessagesApiDouble(["ok"])
    try:
        written = run_rig(migrated_sqlite_url, vault, api)
    finally:
        api.close()
    note = parse_note("x", written)
    assert note.frontmatter["summary"] == "How the rollout runs, step by step."
    assert "type/feature" in note.tags  # the rules ran as well
    headers, body = api.requests[0]
    assert headers["x-api-key"] == "sk-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert body["model"] == "claude-test" and body["max_tokens"] > 0
    assert body["messages"][0]["role"] == "user"
    assert "kubernetes rollout" in body["messages"][0]["content"]


def test_a_500_is_retried_then_succeeds(migrated_sqlite_url: str, vault: Path) -> None:
    api = MessagesApiDouble([500, "ok"])
    try:
        written = run_rig(migrated_sqlite_url, vault, api)
    finally:
        api.close()
    assert len(api.requests) == 2
    assert parse_note("x", written).frontmatter["summary"].startswith("How the rollout")


@pytest.mark.parametrize("failure", [500, "hang"], ids=["always-500", "timeout"])
def test_a_failing_api_keeps_the_rule_result_without_a_summary(
    migrated_sqlite_url: str, vault: Path, failure: Any
) -> None:
    api = MessagesApiDouble([failure])
    try:
        written = run_rig(migrated_sqlite_url, vault, api, timeout=0.3)
    finally:
        api.close()
    note = parse_note("x", written)
    assert "summary" not in note.frontmatter
    assert "type/feature" in note.tags
    assert len(api.requests) == 3  # the first attempt and two retries


def test_a_4xx_is_not_retried() -> None:
    api = MessagesApiDouble([401])
    try:
        with pytest.raises(SummaryFailed, match="HTTP 401: boom"):
            summarizer(api).summarize("t", "text")
    finally:
        api.close()
    assert len(api.requests) == 1


def test_an_unreachable_api_fails_quickly_with_a_reason() -> None:
    client = ClaudeSummarizer("http://127.0.0.1:9", "k", model="m", timeout=1, max_retries=0)
    with pytest.raises(SummaryFailed, match="cannot reach"):
        client.summarize("t", "text")
