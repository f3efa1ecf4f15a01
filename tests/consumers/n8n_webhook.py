"""A local HTTP server that answers like n8n's Webhook node (n8n itself cannot run here).

A registered webhook path answers `200 {"message": "Workflow was started"}` (n8n's answer when
the node responds immediately); an unknown path answers 404 with n8n's "webhook is not
registered" JSON. A test scripts other answers per path (a 500, a 429 with Retry-After, a
slow answer) and reads back every request as n8n received it: path, headers, raw body bytes
and arrival time.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

WORKFLOW_STARTED = {"message": "Workflow was started"}


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: dict[str, object] | str = field(default_factory=lambda: dict(WORKFLOW_STARTED))
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow workflow)


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> object:
        return json.loads(self.body)


class N8nWebhookServer:
    """n8n's webhook endpoint on 127.0.0.1, with `paths` registered."""

    def __init__(self, *paths: str) -> None:
        self.registered = set(paths)
        self.requests: list[ReceivedRequest] = []
        self._script: dict[str, deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def answer_next(self, path: str, *answers: Answer) -> None:
        """The next requests to `path` get these answers, in order; then the usual one."""
        with self._lock:
            self._script[path].extend(answers)

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _take(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            self.requests.append(ReceivedRequest(path, headers, body, time.monotonic()))
            if self._script[path]:
                return self._script[path].popleft()
        if path in self.registered:
            return Answer()
        return Answer(
            404,
            {
                "code": 404,
                "message": f'The requested webhook "POST {path.lstrip("/")}" is not registered.',
                "hint": "The workflow must be active for a production URL to run successfully.",
            },
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                answer = server._take(self.path, dict(self.headers.items()), body)
                if answer.delay:
                    time.sleep(answer.delay)
                payload = (
                    answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
                ).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
