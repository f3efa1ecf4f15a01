"""One-line note summaries from the Claude Messages API (optional enrichment of agent-tasks).

POST {CLAUDE_API_URL}/v1/messages with the documented headers; the answer's first text block
is the summary. Timeouts, connection errors, 429, 5xx and 529 (overloaded) are retried a few
times with a short backoff; anything else, or running out of attempts, raises
`SummaryFailed`, which the consumer logs and goes on without: enrichment never blocks the
queue.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from weavenn_cli.runtime.config import Settings

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
MAX_TOKENS = 120
MAX_NOTE_CHARS = 12_000
MAX_SUMMARY_CHARS = 300
MAX_BACKOFF_SECONDS = 4.0
PROMPT = (
    "Summarise the following note in one sentence of at most 30 words, in the note's own "
    "language. Reply with the sentence only, without quotes or preamble.\n\n"
    "Title: {title}\n\n{text}"
)


class SummaryFailed(Exception):
    """No summary this time (the reason is the message); the note is written without one."""


class ClaudeSummarizer:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        model: str,
        timeout: float = 10.0,
        max_retries: int = 2,
    ) -> None:
        self.url = url.rstrip("/") + "/v1/messages"
        self.model = model
        self.max_retries = max_retries
        self._api_key = api_key
        self._timeout = timeout
        self._client: httpx.Client | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaudeSummarizer:
        key = settings.claude_api_key.get_secret_value() if settings.claude_api_key else ""
        return cls(
            settings.claude_api_url,
            key,
            model=settings.claude_model,
            timeout=settings.claude_timeout_seconds,
            max_retries=settings.claude_max_retries,
        )

    def summarize(self, title: str, text: str) -> str:
        body = {
            "model": self.model,
            "max_tokens": MAX_TOKENS,
            "messages": [
                {
                    "role": "user",
                    "content": PROMPT.format(title=title, text=text[:MAX_NOTE_CHARS]),
                }
            ],
        }
        answer = self._post(body)
        return _summary_line(answer)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 5.0)),
                headers={
                    "x-api-key": self._api_key,
                    "anthropic-version": ANTHROPIC_VERSION,
                    "content-type": "application/json",
                },
            )
        return self._client

    def _post(self, body: dict[str, Any]) -> Any:
        import httpx

        attempts = self.max_retries + 1
        reason = ""
        for attempt in range(1, attempts + 1):
            wait = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (attempt - 1))
            try:
                response = self._http().post(self.url, json=body)
            except httpx.TimeoutException:
                reason = f"no answer within {self._timeout:g}s"
            except httpx.TransportError as error:
                reason = f"cannot reach {self.url}: {error}"
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError:
                        raise SummaryFailed("the answer is not JSON") from None
                reason = f"HTTP {response.status_code}: {_error_message(response)}"
                if response.status_code not in (408, 429) and response.status_code < 500:
                    raise SummaryFailed(reason)
                wait = max(wait, _retry_after(response))
            if attempt < attempts:
                log.info("claude: %s; retrying in %.1fs", reason, wait)
                time.sleep(wait)
        raise SummaryFailed(f"{reason} (after {attempts} attempts)")


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(MAX_BACKOFF_SECONDS, float(response.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or error.get("type") or "error")[:200]
    except (ValueError, AttributeError):
        return response.text[:200].strip() or "error"


def _summary_line(answer: Any) -> str:
    try:
        text = answer["content"][0]["text"]
    except (KeyError, IndexError, TypeError):
        raise SummaryFailed("the answer has no content[0].text") from None
    if not isinstance(text, str):
        raise SummaryFailed("content[0].text is not text")
    line = " ".join(text.strip().split("\n", 1)[0].split()).strip("\"'")
    if not line:
        raise SummaryFailed("the summary is empty")
    if len(line) > MAX_SUMMARY_CHARS:
        line = line[: MAX_SUMMARY_CHARS - 1].rstrip() + "…"
    return line
