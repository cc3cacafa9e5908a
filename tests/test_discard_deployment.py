"""`ReleaseSession.discard_deployment`: explore's confirmation of a new discrepancy marks the
shared deployment spoiled, so the rerun starts a fresh one (no proxy: the session's tables only)."""

from __future__ import annotations

from harness.execution.session import ReleaseSession, deployment_key
from harness.scenario import loader


def test_a_discarded_deployment_is_spoiled_and_an_unknown_one_is_left_alone(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - flush_spend\n")
    scenario = loader.load(path)
    session = ReleaseSession.__new__(ReleaseSession)  # no release, server or proxy behind it
    session.fleets, session.spoiled = {}, set()
    session.discard_deployment(scenario)
    assert session.spoiled == set()  # nothing running for it: nothing to discard
    session.fleets[deployment_key(scenario)] = ("fleet", "database", "view")
    session.discard_deployment(scenario)
    assert session.spoiled == {deployment_key(scenario)}
