"""Calendar instants a reset should land on, in the proxy's time zone (`litellm_settings.timezone`).

LiteLLM aligns `1d` resets to the next midnight, `7d` to the next Monday and `30d`/`1mo` to the
first of the next month, in the configured zone where the release reads it. A scenario says
which instant it expects by name; this computes it from the proxy's clock, so no author (and no
test) works out dates by hand, and nothing depends on the machine's zone or today's date.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import shorten

RULES = ("local_midnight", "next_monday", "first_of_next_month")


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file (tzdata)
        raise ValueError(f"{shorten(repr(name))} is not a time zone name (IANA, e.g. Asia/Tokyo)") from None


def next_boundary(rule: str, now: datetime, tz_name: str | None = None) -> datetime:
    """The first `rule` instant strictly after `now` (aware), in UTC."""
    tz = zone(tz_name)
    local = now.astimezone(tz)
    if rule == "local_midnight":
        day = local.date() + timedelta(days=1)
    elif rule == "next_monday":
        day = local.date() + timedelta(days=7 - local.weekday())
    elif rule == "first_of_next_month":
        day = (local.date().replace(day=1) + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown calendar rule {rule!r}; rules: {', '.join(RULES)}")
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)
