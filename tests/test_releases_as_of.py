"""Dependencies as of a release's day, for releases whose proxy no longer imports with today's
(pure: the index is faked)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from packaging.version import Version

from harness.releases import envs, index


def test_exact_pins_are_exempt_from_the_cut_off():
    args = envs._as_of_args("2026-08-09T23:59:59Z", ["litellm[proxy]==1.95.1", "prisma==0.11.0",
                                                     "litellm-proxy-extras>=0.4,<0.5", "freezegun==1.5.5"])
    assert args[:2] == ["--exclude-newer", "2026-08-09T23:59:59Z"]
    exempt = [args[i + 1].split("=")[0] for i, a in enumerate(args) if a == "--exclude-newer-package"]
    assert exempt == ["litellm", "prisma", "freezegun"]
    assert envs._as_of_args(None, ["litellm==1"]) == []


def test_the_cut_off_is_the_end_of_the_upload_day_in_utc(monkeypatch):
    upload = datetime(2026, 8, 9, 2, 31, tzinfo=timezone(timedelta(hours=5)))  # 2026-08-08 21:31 UTC
    monkeypatch.setattr(index, "upload_times", lambda package: {Version("1.95.1"): upload})
    assert envs._release_day_end("1.95.1") == "2026-08-08T23:59:59Z"
