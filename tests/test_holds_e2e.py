"""`spend: {hold}` and `release` on the real proxy (1.85.0) and the fake provider: calls held
while other steps run, their outcomes and the database spend after the release."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.execution.session import ReleaseSession
from harness.scenario import load
from harness.verdicts import Verdict

SCENARIO = Path(__file__).resolve().parent / "data" / "traffic" / "held_calls_across_an_update.yaml"

pytestmark = pytest.mark.slow


def test_two_held_calls_finish_after_an_update_and_a_third_call(pg_server) -> None:
    lines: list[str] = []
    with ReleaseSession("1.85.0", pg_server, lines.append) as session:
        result = session.run(load(SCENARIO))
    log = "\n".join(lines)
    assert result.verdict == Verdict.PASSED, (result.reason, [s.message for s in result.steps], log[-3000:])
    notes = {s.source: s.message for s in result.steps}
    assert notes["- spend: {key: k1, requests: 2, hold: h1}"] == "2 of 2 calls held at the provider as `h1`"
    release = notes["- release: {name: h1, expect: accepted}"]
    assert release.startswith("`h1` released: 2 of 2 accepted, 0.00045")
    assert "1: accepted, cost 0.000225" in release and "2: accepted, cost 0.000225" in release
    assert "spend=0.000675" in notes["- expect_state: {entity: k1, spend: 0.000675}"]
