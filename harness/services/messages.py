"""What a person is shown about a service: URLs without their password, exceptions as one line."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***` (for logs, reprs and error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{quote(unquote(user), safe='')}:***@{host}"))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line `HarnessError`."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
