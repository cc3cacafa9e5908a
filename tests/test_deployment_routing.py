"""Fleet routing and the clock broadcast: pure logic on fake replicas (Fleet built around them)."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.proxy.fleet import Fleet
from harness.scenario.model import Deployment


class FakeReplica:
    def __init__(self, name: str):
        self.name, self.alive, self.calls = name, True, []

    def chat(self, key, end_user=None, **kwargs):
        self.calls.append(("chat", key))
        return self.name

    def api(self, method, path, **kwargs):
        self.calls.append((method, path))
        return self.name

    def control(self, op, **body):
        self.calls.append((op, body))
        if op in ("freeze", "advance", "clock"):
            at = body.get("at", "now")
            return {"now": f"2026-03-02T10:00:00+00:00 read by {self.name}" if at == "now" else at}
        return {"op": op, "by": self.name}


def fleet(names="abc", routing="round_robin") -> Fleet:
    replicas = {n: FakeReplica(n) for n in names}
    return Fleet(replicas, Deployment(replicas=list(names), routing=routing))


def test_round_robin_takes_each_replica_in_turn_and_records_who_served():
    f = fleet()
    mark = len(f.served)
    assert [f.scope(None).chat("k") for _ in range(7)] == list("abcabca")
    assert f.served_since(mark) == list("abcabca")
    assert f.served_since(5) == list("ca")


def test_first_routing_always_picks_the_first_replica():
    f = fleet(routing="first")
    assert {f.scope(None).chat("k") for _ in range(5)} == {"a"}


def test_on_names_one_replica_and_all_spreads():
    f = fleet()
    assert [f.scope("b").api("GET", "/x") for _ in range(3)] == ["b", "b", "b"]
    assert len({f.scope("all").chat("k") for _ in range(3)}) == 3


def test_stopped_replicas_are_skipped():
    f = fleet()
    f.replicas["b"].alive = False
    assert [f.scope(None).chat("k") for _ in range(4)] == list("acac")
    f.replicas["a"].alive = False
    assert {f.scope(None).chat("k") for _ in range(3)} == {"c"}


def test_with_every_replica_stopped_the_request_still_goes_somewhere_and_fails_there():
    # a load balancer with no healthy backend: the request is not silently dropped
    f = fleet("ab")
    for r in f.replicas.values():
        r.alive = False
    assert f.scope(None).chat("k") in ("a", "b")


def test_jobs_run_on_every_replica_of_the_scope_and_report_each():
    f = fleet()
    out = f.scope(None).control("run-job", job="reset_budget_job")
    assert set(out["replicas"]) == {"a", "b", "c"}
    assert f.scope("b").control("run-job", job="x") == {"op": "run-job", "by": "b"}
    assert [c for c in f.replicas["a"].calls if c[0] == "run-job"] == [("run-job", {"job": "reset_budget_job"})]


def test_clock_moves_on_every_running_replica_whatever_the_scope():
    f = fleet()
    f.replicas["c"].alive = False
    f.scope("b").control("freeze", at="now")
    # the first replica reads `now`; the others freeze at its answer, not at their own `now`
    assert f.replicas["a"].calls[-1] == ("freeze", {"at": "now"})
    assert f.replicas["b"].calls[-1] == ("freeze", {"at": "2026-03-02T10:00:00+00:00 read by a"})
    assert not f.replicas["c"].calls
    assert f.clock_at == "2026-03-02T10:00:00+00:00 read by a"  # what a restarted replica is brought to


def test_no_running_replica_is_a_harness_error():
    f = fleet("ab")
    for r in f.replicas.values():
        r.alive = False
    with pytest.raises(HarnessError, match="no running replica among a, b"):
        f.scope(None).control("settle")
