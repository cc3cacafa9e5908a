"""The two duration languages a scenario uses.

* `budget_duration` is LiteLLM's own: one number and one unit (`30s`, `5m`, `2h`, `1d`, `1w`,
  `1mo`), passed to the proxy verbatim.
* `advance_clock` takes a compound span (`1d`, `25h`, `1d2h30m`, `90s`) or a number of seconds.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import shorten

BUDGET_DURATION = re.compile(r"^[1-9][0-9]*(s|m|h|d|w|mo)$")
BUDGET_DURATION_HELP = "a number and one unit of s, m, h, d, w, mo (e.g. 30s, 1d, 7d, 1mo)"

_SPAN = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
SPAN_HELP = "a span like 90s, 15m, 25h, 1d, 1d2h30m, 2w, or a number of seconds"
#: no scenario moves a clock further; a longer span would push dates past what datetime holds
MAX_SPAN = timedelta(days=36_600)


def parse_span(value: str | int | float) -> timedelta:
    """`1d2h` -> timedelta; raises ValueError with what is allowed."""
    if isinstance(value, bool):
        raise ValueError(f"expected {SPAN_HELP}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a clock can only move forward")
        return _bounded(value, lambda: timedelta(seconds=value))
    text = str(value).strip()
    match = _SPAN.match(text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{shorten(repr(value))} is not a duration: expected {SPAN_HELP}")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return _bounded(value, lambda: timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds))


def _bounded(value: object, make) -> timedelta:
    try:
        span = make()
    except (OverflowError, ValueError):  # ValueError: a NaN
        span = None
    if span is None or span > MAX_SPAN:
        raise ValueError(f"{shorten(repr(value))} is too long a span: at most {MAX_SPAN.days} days")
    return span


def check_budget_duration(value: str) -> str:
    if not BUDGET_DURATION.match(value):
        raise ValueError(f"{shorten(repr(value))} is not a budget_duration: expected {BUDGET_DURATION_HELP}")
    return value


def parse_instant(value: str) -> datetime:
    """ISO 8601 -> aware UTC datetime; naive times are UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{shorten(repr(value))} is not a time: write `now` or ISO 8601 like 2026-03-02T10:00:00Z") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
