"""n8n-workflows throughput: events forwarded to a webhook, against plain HTTP posting loops
measured in the same run.

    python bench/n8n.py [--events 1000] [--runs 3]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--rabbitmq amqp://guest:guest@127.0.0.1:5672]

A local HTTP server on 127.0.0.1 stands in for n8n (answers 200 at once), so the figures are
the cost on weavenn's side:
(a) n8n-workflows on the runner (RabbitMQ vhost of its own + PostgreSQL inbox), signed bodies,
    one kept-open connection, events/s;
(b) baseline: the same bodies posted in a loop, a new connection per post (`urllib.request`,
    as a script forwarding events one by one would), nothing else: no broker, no inbox;
(c) floor: the same loop over one kept-open connection (the HTTP cost alone).

Prints the median of the runs and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bus import fresh_bus, postgres, purge, vhost

from weavenn_cli.runtime.bus.transport import OutgoingMessage
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.consumers.n8n_workflows import (
    N8nWorkflowsConsumer,
    encode_body,
    sign,
)
from weavenn_cli.runtime.consumers.runner import Runner
from weavenn_cli.runtime.events import VaultFileEvent, derive_message_id

SECRET = "bench-secret"


class Webhook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as n8n serves
    disable_nagle_algorithm = True  # else headers and body wait out a delayed ACK (40 ms)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        payload = b'{"message":"Workflow was started"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def webhook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhook/weave-nn"
    finally:
        server.shutdown()
        server.server_close()


def events(count: int, run: str) -> list[VaultFileEvent]:
    return [
        VaultFileEvent(
            message_id=derive_message_id(run, i),
            event_type="vault.file.updated",
            file_path=f"notes/{i}.md",
            vault_id="bench",
            frontmatter={"tags": ["bench"], "title": f"Note {i}"},
        )
        for i in range(count)
    ]


def forwarded_on_runner(
    engine: object, transport: object, url: str, batch: list[VaultFileEvent]
) -> float:
    transport.publisher().publish(  # type: ignore[attr-defined]
        [OutgoingMessage(e.message_id, e.routing_key, e.model_dump_json().encode()) for e in batch]
    )
    settings = load_settings(None, n8n_webhook_url=url, n8n_webhook_secret=SECRET)
    consumer = N8nWorkflowsConsumer.from_settings(settings)
    runner = Runner(consumer, transport, engine, prefetch=50)  # type: ignore[arg-type]
    thread = threading.Thread(target=runner.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    while consumer.forwarded < len(batch):
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    runner.stop()
    thread.join(30)
    consumer.close()
    return len(batch) / elapsed


def posted(url: str, batch: list[VaultFileEvent], *, keep_alive: bool) -> float:
    bodies = [encode_body(e.model_dump(mode="json")) for e in batch]
    client = httpx.Client() if keep_alive else None
    started = time.perf_counter()
    for body in bodies:
        headers = {"Content-Type": "application/json", "X-Weavenn-Signature": sign(b"k", body)}
        if client is not None:
            client.post(url, content=body, headers=headers).raise_for_status()
        else:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
    elapsed = time.perf_counter() - started
    if client is not None:
        client.close()
    return len(batch) / elapsed


def median(runs: int, measure: Callable[[int], float]) -> float:
    return statistics.median(measure(run) for run in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5672")
    args = parser.parse_args()

    with webhook() as url, postgres(args.pg_admin_url) as db, vhost(args.rabbitmq) as amqp:
        engine, transport = fresh_bus(db, amqp)

        def on_runner(run: int) -> float:
            purge(amqp, engine)
            return forwarded_on_runner(engine, transport, url, events(args.events, f"r{run}"))

        runner = median(args.runs, on_runner)
        fresh = median(
            args.runs, lambda run: posted(url, events(args.events, "b"), keep_alive=False)
        )
        kept = median(args.runs, lambda run: posted(url, events(args.events, "c"), keep_alive=True))
        transport.close()  # type: ignore[attr-defined]
        engine.dispose()  # type: ignore[attr-defined]

    print(f"{args.events} events, median of {args.runs} runs")
    print(f"(a) n8n-workflows on the runner (RabbitMQ + PostgreSQL): {runner:,.0f} events/s")
    print(f"(b) baseline, a new connection per post (urllib):       {fresh:,.0f} events/s")
    print(f"(c) floor, posting over one kept-open connection:        {kept:,.0f} events/s")
    print(f"ratio a/b: {runner / fresh:.2f}   ratio a/c: {runner / kept:.2f}")


if __name__ == "__main__":
    main()
