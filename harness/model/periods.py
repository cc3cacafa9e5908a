"""When a budget period that starts now ends: the next budget_reset_at for a budget_duration.

Documented (docs.litellm.ai/docs/proxy/budget_reset_and_tz): `1d`/`24h` resets at the next local
midnight, `7d` on the next Monday at midnight, `30d` on the 1st of the next month at midnight, in
`litellm_settings.timezone`; sub-day durations (`30s`, `5m`, `1h`) roll forward by their interval
from the current time. Other day counts and `Nmo` follow model options.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from ..calendar import next_boundary, zone
from ..durations import BUDGET_DURATION, check_budget_duration
from .options import ModelOptions

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _split(duration: str) -> tuple[int, str]:
    check_budget_duration(duration)
    unit = BUDGET_DURATION.match(duration).group(1)
    return int(duration[: -len(unit)]), unit


def next_reset(duration: str, now: datetime, options: ModelOptions) -> datetime:
    """The budget_reset_at (aware, UTC) a period of `duration` starting at `now` ends on."""
    if now.tzinfo is None:
        raise ValueError("next_reset needs an aware time")
    count, unit = _split(duration)
    seconds = count * _UNIT_SECONDS.get(unit, 0)
    tz_name = options.timezone
    if unit == "mo":
        if options.month_alignment == "span":
            return (now + timedelta(days=30 * count)).astimezone(UTC)
        return _first_of_month_ahead(now, count, tz_name)
    if seconds == 86400:
        return next_boundary("local_midnight", now, tz_name)
    if seconds == 7 * 86400:
        return next_boundary("next_monday", now, tz_name)
    if seconds == 30 * 86400:
        return next_boundary("first_of_next_month", now, tz_name)
    if seconds < 86400 or options.other_days_alignment == "span":
        return (now + timedelta(seconds=seconds)).astimezone(UTC)
    if seconds % 86400:  # e.g. 25h: not a whole number of days, so no midnight to align to
        return (now + timedelta(seconds=seconds)).astimezone(UTC)
    tz = zone(tz_name)
    day = now.astimezone(tz).date() + timedelta(days=seconds // 86400)
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _first_of_month_ahead(now: datetime, months: int, tz_name: str) -> datetime:
    tz = zone(tz_name)
    local = now.astimezone(tz).date()
    index = local.year * 12 + (local.month - 1) + months
    day = local.replace(year=index // 12, month=index % 12 + 1, day=1)
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
