"""Calendar boundaries for reset times, from fixed instants (no dependency on today or the machine's zone)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from harness.calendar import next_boundary

UTC = timezone.utc


@pytest.mark.parametrize(
    "rule, now, tz, expected",
    [
        ("local_midnight", "2026-03-04T10:00:00Z", None, "2026-03-05T00:00:00Z"),
        ("local_midnight", "2026-03-04T10:00:00Z", "Asia/Tokyo", "2026-03-04T15:00:00Z"),  # 19:00 JST -> 00:00 JST
        ("local_midnight", "2026-03-04T16:00:00Z", "Asia/Tokyo", "2026-03-05T15:00:00Z"),  # already the 5th in Tokyo
        ("local_midnight", "2026-03-08T06:30:00Z", "US/Eastern", "2026-03-09T04:00:00Z"),  # DST starts that day
        ("next_monday", "2026-03-04T10:00:00Z", None, "2026-03-09T00:00:00Z"),  # a Wednesday
        ("next_monday", "2026-03-09T00:00:00Z", None, "2026-03-16T00:00:00Z"),  # on a Monday: the next one
        ("first_of_next_month", "2026-12-01T00:00:00Z", None, "2027-01-01T00:00:00Z"),  # 31 days later
        ("first_of_next_month", "2027-01-31T23:59:30Z", None, "2027-02-01T00:00:00Z"),
        ("first_of_next_month", "2027-01-31T20:00:00Z", "Asia/Kolkata", "2027-02-28T18:30:00Z"),  # already February there
    ],
)
def test_next_boundary(rule: str, now: str, tz: str | None, expected: str) -> None:
    moment = datetime.fromisoformat(now.replace("Z", "+00:00"))
    assert next_boundary(rule, moment, tz) == datetime.fromisoformat(expected.replace("Z", "+00:00")).astimezone(UTC)


def test_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a time zone name"):
        next_boundary("local_midnight", datetime(2026, 3, 4, tzinfo=UTC), "Mars/Olympus")


def test_a_name_too_long_for_a_file_is_not_a_time_zone(monkeypatch) -> None:
    """With the tzdata package installed (a fresh venv), zoneinfo opens the name as a file in it:
    a 5,000-character name raised OSError (File name too long), not the one-line error."""
    import harness.calendar as calendar

    def too_long(name):
        raise OSError(36, "File name too long", name)

    monkeypatch.setattr(calendar, "ZoneInfo", too_long)
    with pytest.raises(ValueError, match="is not a time zone name"):
        calendar.zone("x" * 5000)
