"""The agent's lookup of the proxy's scheduled jobs, with fake schedulers (no proxy, no APScheduler).

Before 1.82 the proxy's jobs carry generated ids and are found by the function they run; from
1.82 they carry the ids the control API uses.
"""

from __future__ import annotations

import pytest

from harness.standalone import agent


class Job:
    def __init__(self, id_, func):
        self.id, self.func, self.args, self.kwargs = id_, func, (), {}


class Scheduler:
    def __init__(self, *jobs):
        self.jobs = list(jobs)

    def get_jobs(self):
        return self.jobs


class ResetBudgetJob:
    async def reset_budget(self):
        pass


async def update_spend(*args):
    pass


async def add_deployment(*args):
    pass


@pytest.fixture()
def schedulers(monkeypatch):
    held: list = []
    monkeypatch.setitem(agent._state, "schedulers", held)
    return held


def test_jobs_without_ids_are_found_by_function(schedulers):
    reset, spend = Job("6f1c", ResetBudgetJob().reset_budget), Job("9a2b", update_spend)
    schedulers.append(Scheduler(Job("11aa", add_deployment), reset, spend))
    assert agent._find_job("reset_budget_job") is reset
    assert agent._find_job("update_spend_job") is spend


def test_an_id_wins_over_a_function_name(schedulers):
    named = Job("update_spend_job", update_spend)
    schedulers.append(Scheduler(Job("x", update_spend), named))
    assert agent._find_job("update_spend_job") is named


def test_jobs_of_several_schedulers_are_searched(schedulers):
    spend = Job("a", update_spend)
    schedulers.extend([Scheduler(Job("b", add_deployment)), Scheduler(spend)])
    assert agent._find_job("update_spend_job") is spend


def test_a_missing_job_names_what_is_scheduled(schedulers):
    schedulers.append(Scheduler(Job("update_spend_job", update_spend), Job("c1", add_deployment)))
    with pytest.raises(LookupError) as caught:
        agent._find_job("reset_budget_job")
    message = str(caught.value)
    # the runner turns "scheduled no job" on the reset job into `unsupported` (disable_reset_budget)
    assert "scheduled no job 'reset_budget_job'" in message
    assert "update_spend_job" in message and "c1=add_deployment" in message


def test_two_candidates_are_an_error_not_a_guess(schedulers):
    schedulers.append(Scheduler(Job("a", update_spend), Job("b", update_spend)))
    with pytest.raises(LookupError, match="2 jobs running update_spend"):
        agent._find_job("update_spend_job")
