"""Credentials out of messages: the userinfo of every URL in a text.

GIT_REMOTE, or the URL of a remote, may carry a token (https://user:token@host/repo.git or
https://token@host/...). Git leaves it out of most of its own messages, but not of everything
it relays (a server's `remote:` lines, hooks), and our own messages name the remote. Every
message built from git's output or from a remote goes through `redact_credentials` before it
is logged, raised or returned.
"""

from __future__ import annotations

import re

REDACTED = "***"
# scheme://userinfo@ — userinfo is everything up to the last "@" before the host's end (a
# token may contain "@"); it never crosses "/", whitespace or quotes.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s'\"<>@]*(?:@[^/\s'\"<>@]*)*@"
)


def redact_credentials(text: str) -> str:
    """`text` with the userinfo of each URL replaced by ***: `https://***@host/repo.git`."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda match: f"{match['scheme']}{REDACTED}@", text)
