"""Errors a person can act on: one line, optionally a hint."""

from __future__ import annotations


class HarnessError(Exception):
    """A problem with the input or the machine, reported as one line (no traceback)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ScenarioError(HarnessError):
    """A scenario file is invalid; the message starts with `file:line:` and is one line, whatever
    the file held (line breaks and control characters in quoted values are escaped)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(one_line(message), hint)


def one_line(text: str) -> str:
    """`text` with every line break and control character written as an escape."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters: a message quoting a bad value names it, it need not repeat
    all 5,000 characters of it."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


class ReleaseUnavailable(HarnessError):
    """This release cannot be installed here (deny-listed, not published, unresolvable pins):
    a fact about the release, not a fault of the harness or the machine."""


class SchemaDrift(HarnessError):
    """A release's migrations do not build the tables and columns its schema.prisma declares."""
