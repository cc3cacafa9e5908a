"""Fleet routing, where the agent's operations go, and the clock broadcast: pure logic on fake
replicas (Fleet built around them)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from harness.errors import HarnessError
from harness.proxy.control import ProxyControl
from harness.proxy.fleet import Fleet
from harness.proxy.settings import Deployment

#: each replica's own `now`: a replica that read its own clock would be seen
NOW = {name: datetime(2026, 3, 2, 10, 0, i, tzinfo=timezone.utc) for i, name in enumerate("abc")}


class FakeReplica:
    def __init__(self, name: str):
        self.name, self.alive, self.calls = name, True, []
        self.control = ProxyControl.of(name, self._agent)

    def chat(self, key, end_user=None, **kwargs):
        self.calls.append(("chat", key))
        return self.name

    def api(self, method, path, **kwargs):
        self.calls.append((method, path))
        return self.name

    def _agent(self, op, body):
        self.calls.append((op, body))
        if op == "freeze":
            return {"now": body["at"] or NOW[self.name].isoformat()}
        if op == "advance":
            return {"now": (NOW[self.name] + timedelta(seconds=body["seconds"])).isoformat()}
        return {"seconds": 0.5, "still_running": [f"task on {self.name}"], "by": self.name}


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


def jobs(replica: FakeReplica) -> list:
    return [c for c in replica.calls if c[0] == "run-job"]


def test_jobs_run_on_every_replica_of_the_scope_and_the_first_answers():
    f = fleet()
    assert f.scope(None).control.run_job("reset_budget_job") == 0.5
    assert all(jobs(r) == [("run-job", {"job": "reset_budget_job"})] for r in f.replicas.values())
    assert f.scope("b").control.settle() == ["task on b"]
    assert f.scope("b").control.run_job("x") == 0.5 and jobs(f.replicas["b"])[-1] == ("run-job", {"job": "x"})
    assert len(jobs(f.replicas["a"])) == 1


def test_views_answer_by_replica_and_stopped_ones_are_left_out():
    f = fleet()
    f.replicas["b"].alive = False
    for replica in f.replicas.values():
        replica.control = ProxyControl.of(replica.name, lambda op, body, n=replica.name: {
            "entries": {"spend_counter_cache": {"spend:key:h": n}}, "has_spend_counter_cache": True})
    views = f.scope(None).control.auth_view(["h"])
    assert list(views) == ["a", "c"] and views["c"].entries == {"spend_counter_cache": {"spend:key:h": "c"}}


def test_the_clock_and_routes_are_read_on_one_replica_whatever_the_scope():
    f = fleet()
    f.replicas["a"].alive = False
    f.replicas["b"].control = ProxyControl.of("b", lambda op, body: {"now": NOW["b"].isoformat()} if op == "clock"
                                              else {"exists": True, "path": "/key/{key}", "fields": None})
    assert f.scope("c").control.clock() == NOW["b"]
    assert f.scope("c").control.route("POST", "/key/{k}").path == "/key/{key}"


def test_clock_moves_on_every_running_replica_whatever_the_scope():
    f = fleet()
    f.replicas["c"].alive = False
    assert f.scope("b").control.freeze() == NOW["a"]
    # the first replica reads `now`; the others freeze at its answer, not at their own `now`
    assert f.replicas["a"].calls[-1] == ("freeze", {"at": None})
    assert f.replicas["b"].calls[-1] == ("freeze", {"at": NOW["a"].isoformat()})
    assert not f.replicas["c"].calls
    assert f.clock_at == NOW["a"]  # what a restarted replica is brought to
    assert f.scope("b").control.advance(60) == NOW["a"] + timedelta(seconds=60) == f.clock_at
    assert [c for c in f.replicas["b"].calls if c[0] == "advance"] == [("advance", {"seconds": 60})]


def test_no_running_replica_is_a_harness_error():
    f = fleet("ab")
    for r in f.replicas.values():
        r.alive = False
    with pytest.raises(HarnessError, match="no running replica among a, b"):
        f.scope(None).control.settle()
