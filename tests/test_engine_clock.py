"""The scenario's clock reaches the Prisma engine: `@default(now())` follows a frozen proxy.

LiteLLM never writes `created_at` itself; the engine fills it from `@default(now())`. Frozen in
2030, a key created by the proxy must carry a 2030 `created_at`, and after `advance_clock` a new
one the advanced instant; unfrozen, real time again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from harness.db import start_server
from harness.execution.session import ReleaseSession
from harness.proxy.entities import token_hash
from harness.scenario import load

pytestmark = pytest.mark.slow

FROZEN = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def test_engine_defaults_follow_the_frozen_clock(tmp_path: Path) -> None:
    path = tmp_path / "clock.yaml"
    path.write_text(
        "name: engine_clock\nsteps:\n"
        f"  - freeze_clock: '{FROZEN.isoformat()}'\n"
        "  - create_key: {name: k1}\n"
        "  - advance_clock: 3d\n"
        "  - create_key: {name: k2}\n"
    )
    scenario = load(path)
    with start_server("embedded") as server, ReleaseSession("1.85.0", server) as session:
        result = session.run(scenario)
        assert result.verdict == "passed", result.reason
        fleet, _database, view = next(iter(session.fleets.values()))
        rows = view.conn.execute('SELECT token, created_at FROM "LiteLLM_VerificationToken" ORDER BY created_at').fetchall()
        created = [(r["created_at"] if isinstance(r, dict) else r[1]) for r in rows]
        created = [_utc(c) for c in created]
        assert len(created) == 2
        assert abs(created[0] - FROZEN) < timedelta(seconds=1), created
        assert abs(created[1] - (FROZEN + timedelta(days=3))) < timedelta(seconds=1), created
        # unfrozen (the reset between scenarios), the engine is back on real time
        fleet.scope(None).control.reset()
        key = fleet.first.api("POST", "/key/generate", json={}).json()
        assert key.get("key")
        row = view.conn.execute('SELECT created_at FROM "LiteLLM_VerificationToken" WHERE token = %s',
                                (token_hash(key["key"]),)).fetchone()
        latest = _utc(row["created_at"] if isinstance(row, dict) else row[0])
        assert abs(latest - datetime.now(timezone.utc)) < timedelta(minutes=5), latest
