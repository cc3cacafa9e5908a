"""flush_spend under an injected network fault: the proxy's job failing is the step's outcome."""

from types import SimpleNamespace

import pytest

from harness.errors import HarnessError
from harness.steps.jobs import FlushSpend


class _Target:
    def control(self, op, **body):
        if op == "settle":
            return {"still_running": []}
        raise HarnessError("harness control `run-job` failed inside the proxy: DataError: connect ECONNRESET")


def _ctx(pg_mode):
    relay = SimpleNamespace(mode=pg_mode) if pg_mode else None
    return SimpleNamespace(target=_Target(), fleet=SimpleNamespace(pg_relay=relay, redis_relay=None))


def test_job_failure_under_a_postgres_fault_is_noted():
    note = FlushSpend().run(_ctx("refuse"))
    assert note.startswith("update_spend_job failed under the fault (refuse)")


@pytest.mark.parametrize("pg_mode", [None, "pass"])
def test_job_failure_without_a_fault_is_an_error(pg_mode):
    with pytest.raises(HarnessError, match="failed inside the proxy"):
        FlushSpend().run(_ctx(pg_mode))
