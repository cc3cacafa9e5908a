"""flush_spend under an injected network fault: the proxy's job failing is the step's outcome."""

from types import SimpleNamespace

import pytest

from harness.errors import HarnessError
from harness.faults.injectors import Faults, Site
from harness.faults.relay import Relay
from harness.proxy.control import AgentError, ProxyControl
from harness.steps.jobs import FlushSpend


def _agent(op, body):
    if op == "settle":
        return {"still_running": []}
    raise AgentError("harness control `run-job` failed inside the proxy: DataError: connect ECONNRESET")


def _ctx(modes, agent=_agent):
    spoiled: list[str] = []
    return SimpleNamespace(target=SimpleNamespace(control=ProxyControl.of("a", agent)), network_faults=lambda: modes,
                           spoil_deployment=spoiled.append, spoiled=spoiled)


def _engine_timed_out(op, body):
    if op == "settle":
        return {"still_running": []}
    return {"job": "update_spend_job", "seconds": 31.0, "engine_timeouts": 2}


def test_a_job_that_lost_engine_requests_is_unsupported_and_spoils_its_deployment():
    from harness.steps.base import Unsupported

    ctx = _ctx([], _engine_timed_out)
    with pytest.raises(Unsupported, match="lost 2 request"):
        FlushSpend().run(ctx)
    assert ctx.spoiled and "lost 2 request" in ctx.spoiled[0]  # its job may still hold row locks


def test_job_failure_under_a_postgres_fault_is_noted():
    note = FlushSpend().run(_ctx(["refuse"]))
    assert note.startswith("update_spend_job failed under the fault (refuse)")


def test_job_failure_without_a_fault_is_an_error():
    with pytest.raises(HarnessError, match="failed inside the proxy"):
        FlushSpend().run(_ctx([]))


def test_a_relay_counts_as_a_network_fault_only_while_it_does_not_pass():
    faults = Faults(Site(database_url="postgresql://u:p@127.0.0.1:1/db"))
    faults.build_front({"pg_relay"})
    try:
        assert faults.network_modes() == []
        faults.get("pg_relay").set_mode("refuse")
        assert faults.network_modes() == ["refuse"]
        assert isinstance(faults.get("pg_relay"), Relay)
        assert faults.site.database_url.startswith("postgresql://u:p@127.0.0.1:") and ":1/" not in faults.site.database_url
    finally:
        faults.close()
