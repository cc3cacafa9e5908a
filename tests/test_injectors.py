"""The fault injectors of a deployment (harness.faults.injectors), on fakes: built by name,
in front of the servers before the replicas start or else on first use, their faults logged."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.faults.injectors import INJECTORS, Faults, Site, front_injectors


class Replica:
    def __init__(self):
        self.pid, self.stops = 4242, []

    def stop(self, how: str) -> str:
        self.stops.append(how)
        return "killed" if how == "kill" else "terminated"


class Deployment:
    def __init__(self):
        self.replicas = {"a": Replica(), "b": Replica()}
        self.restarted: list[str] = []

    def restart(self, name: str) -> Replica:
        self.restarted.append(name)
        return self.replicas[name]


class Redis:
    host, port, db = "127.0.0.1", 6379, 3

    def __init__(self):
        self.flushed = 0

    def flush(self) -> None:
        self.flushed += 1


def test_what_a_deployment_starts_with() -> None:
    assert front_injectors(set(), has_redis=False) == []
    assert front_injectors(set(), has_redis=True) == ["redis_relay"]  # the replicas always reach Redis through it
    assert front_injectors({"pg_relay", "replicas"}, has_redis=True) == ["pg_relay", "redis_relay"]
    assert all(INJECTORS[name].before_start for name in ("pg_relay", "redis_relay"))


def test_replica_stops_are_faults_until_the_replica_is_back() -> None:
    deployment = Deployment()
    faults = Faults(Site(fleet=deployment))
    stopper = faults.get("replicas")
    assert faults.get("replicas") is stopper  # built once
    outcome, event = stopper.stop("b", "kill")
    assert (outcome, event.fault, event.target, event.active) == ("killed", "stop_kill", "replica b pid 4242", True)
    assert stopper.start("b") is deployment.replicas["b"] and deployment.restarted == ["b"]
    assert event.end == "restarted"
    _, left = stopper.stop("a", "term")
    faults.close(front=False)
    assert left.end == "stopped"
    with pytest.raises(HarnessError, match="the deployment has no replica 'c'"):
        stopper.stop("c", "term")
    assert [e.fault for e in faults.events()] == ["stop_kill", "stop_term"]


def test_a_redis_flush_is_an_instant_fault_on_the_harness_database() -> None:
    redis = Redis()
    faults = Faults(Site(redis=redis))
    event = faults.get("redis").flush()
    assert redis.flushed == 1 and (event.target, event.fault, event.end) == ("redis db 3", "redis_flush", "instant")


def test_unknown_injectors_and_late_front_ones_are_refused() -> None:
    faults = Faults(Site(database_url="postgresql://127.0.0.1:5432/x", fleet=Deployment()))
    with pytest.raises(HarnessError, match="no fault injector `dns`; injectors: pg_relay"):
        faults.get("dns")
    with pytest.raises(HarnessError, match="started without the `pg_relay` injector"):
        faults.get("pg_relay")
