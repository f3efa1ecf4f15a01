"""n8n-workflows: forwards vault and task events to n8n webhooks.

Where each event goes: the first pattern of N8N_ROUTES that matches its routing key (AMQP
topic syntax, as the bus binds queues), else N8N_WEBHOOK_URL; an event neither names is acked
and skipped. The request body is the event's JSON; with N8N_WEBHOOK_SECRET,
`X-Weavenn-Signature: sha256=<hex HMAC-SHA256 of the body bytes>` lets the workflow check who
sent it, and `X-Weavenn-Message-Id` lets it drop the duplicate an at-least-once bus may send.

n8n's answer decides the message's fate: 2xx done; timeouts, connection errors, 408 and 5xx
retried by the runner with its delays; 429 retried no sooner than its Retry-After; any other
answer (4xx, a redirect) will not change on retry and goes straight to the dead letters with
the status and an excerpt of the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.orm import Session

from weavenn_cli import __version__
from weavenn_cli.runtime.bus.topology import topic_matches
from weavenn_cli.runtime.config import Settings, mask_url
from weavenn_cli.runtime.consumers.base import Delivery, PermanentError, RetryLater
from weavenn_cli.runtime.errors import ConfigError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Weavenn-Signature"
EXCERPT_CHARS = 200
RETRIED_CLIENT_ERRORS = (408,)  # Request Timeout: the server gave up waiting, try again


class WebhookUnavailable(Exception):
    """n8n did not take the event this time (timeout, no connection, 408, 5xx): retry."""


class N8nWorkflowsConsumer:
    name: ClassVar[str] = "n8n-workflows"
    queue: ClassVar[str] = "n8n_workflows"
    # A webhook call is outside the database: one message per transaction keeps the
    # database (SQLite's write lock) free between calls and a failed commit to one re-send.
    commit_each: ClassVar[bool] = True
    bindings: ClassVar[tuple[str, ...]] = ("vault.#", "task.#")

    def __init__(
        self,
        *,
        routes: Sequence[tuple[str, str]] = (),
        fallback_url: str | None = None,
        secret: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        import httpx

        self._routes = tuple(routes)
        self._fallback_url = fallback_url
        self._secret = secret.encode() if secret else None
        self._timeout = httpx.Timeout(timeout_seconds)
        # One client for the consumer's life: connections to n8n are reused between events.
        self._client = httpx.Client(
            headers={"User-Agent": f"weavenn/{__version__}"}, follow_redirects=False
        )
        self.forwarded = 0
        self.skipped = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> N8nWorkflowsConsumer:
        if not settings.n8n_webhook_url and not settings.n8n_routes:
            raise ConfigError(
                "n8n-workflows has nowhere to forward events: set N8N_WEBHOOK_URL, or N8N_ROUTES "
                """as JSON, e.g. {"vault.file.*": "http://n8n:5678/webhook/vault"}"""
            )
        secret = settings.n8n_webhook_secret
        return cls(
            routes=list(settings.n8n_routes.items()),
            fallback_url=settings.n8n_webhook_url,
            secret=secret.get_secret_value() if secret else None,
            timeout_seconds=settings.n8n_timeout_seconds,
        )

    def url_for(self, routing_key: str) -> str | None:
        """The first route whose pattern matches `routing_key`, else the fallback URL."""
        for pattern, url in self._routes:
            if topic_matches(pattern, routing_key):
                return url
        return self._fallback_url

    def handle(self, session: Session, delivery: Delivery) -> None:
        url = self.url_for(delivery.routing_key)
        if url is None:
            self.skipped += 1
            log.debug("%s matches no n8n route: skipped", delivery.routing_key)
            return
        body = encode_body(delivery.body)
        response = self._post(url, body, self._headers(delivery, body))
        _settle(response, mask_url(url))
        self.forwarded += 1

    def close(self) -> None:
        self._client.close()

    def _headers(self, delivery: Delivery, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "X-Weavenn-Event": delivery.routing_key,
            "X-Weavenn-Message-Id": delivery.message_id,
            "X-Weavenn-Attempt": str(delivery.attempt),
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        return headers

    def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        import httpx

        try:
            return self._client.post(url, content=body, headers=headers, timeout=self._timeout)
        except httpx.TimeoutException:
            raise WebhookUnavailable(
                f"{mask_url(url)} did not answer within {self._timeout.read:g}s"
            ) from None
        except httpx.TransportError as error:
            raise WebhookUnavailable(f"cannot reach {mask_url(url)}: {error}") from None


def encode_body(event: Mapping[str, Any]) -> bytes:
    """The request body: the event as compact UTF-8 JSON (the bytes the signature covers)."""
    return json.dumps(dict(event), ensure_ascii=False, separators=(",", ":")).encode()


def sign(secret: bytes, body: bytes) -> str:
    """`X-Weavenn-Signature` value: `sha256=` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _settle(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    answered = f"{url} answered {status} {response.reason_phrase}".rstrip()
    if status == 429:
        after = retry_after_seconds(response.headers.get("Retry-After"))
        raise RetryLater(f"{answered}, retry after {after:g}s", after=after)
    if status >= 500 or status in RETRIED_CLIENT_ERRORS:
        raise WebhookUnavailable(f"{answered}: {_excerpt(response)}")
    raise PermanentError(f"{answered}: {_excerpt(response)}")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float:
    """Seconds a `Retry-After` header asks to wait (delay-seconds or an HTTP-date); 0 if unset."""
    if not value or not value.strip():
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value, now or datetime.now(UTC))
    return max(0.0, seconds) if math.isfinite(seconds) else 0.0


def _seconds_until(http_date: str, now: datetime) -> float:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        log.debug("Retry-After %r is neither seconds nor an HTTP-date: ignored", http_date)
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - now).total_seconds()


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"
