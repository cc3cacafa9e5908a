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


def _ctx(modes):
    return SimpleNamespace(target=SimpleNamespace(control=ProxyControl.of("a", _agent)), network_faults=lambda: modes)


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
