"""The agent's lookup of the proxy's scheduled jobs, with fake schedulers (no proxy, no APScheduler).

Before 1.82 the proxy's jobs carry generated ids and are found by the function they run; from
1.82 they carry the ids the control API uses.
"""

from __future__ import annotations

import asyncio

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


class SlowReset:
    """A reset job that runs until the test lets it go (or fails, if told to)."""

    def __init__(self, fail: bool = False):
        self.started, self.release, self.fail, self.runs = asyncio.Event(), asyncio.Event(), fail, 0

    async def reset_budget(self):
        self.runs += 1
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise KeyError("budget_reset_at")


@pytest.fixture()
def started(monkeypatch, schedulers):
    monkeypatch.setitem(agent._state, "background_jobs", [])
    return schedulers


def _with(schedulers, job):
    schedulers.append(Scheduler(Job("reset_budget_job", job.reset_budget)))
    return job


def test_a_started_job_runs_in_the_background_until_waited_for(started):
    async def scenario():
        job = _with(started, SlowReset())
        assert agent._op_start_job({"job": "reset_budget_job"}, None, agent._state) == {
            "job": "reset_budget_job", "started": True}
        await asyncio.wait_for(job.started.wait(), 1)  # it runs while the operation has answered
        early = await agent._op_wait_jobs({"timeout": 0.05}, None, agent._state)
        assert early == {"finished": [], "still_running": ["reset_budget_job"]}
        job.release.set()
        done = await agent._op_wait_jobs({"timeout": 1}, None, agent._state)
        assert [(j["job"], j["error"]) for j in done["finished"]] == [("reset_budget_job", None)]
        assert done["still_running"] == [] and agent._state["background_jobs"] == []

    asyncio.run(scenario())


def test_a_started_jobs_error_is_reported_once(started):
    async def scenario():
        job = _with(started, SlowReset(fail=True))
        agent._op_start_job({"job": "reset_budget_job"}, None, agent._state)
        job.release.set()
        first = await agent._op_wait_jobs({"timeout": 1}, None, agent._state)
        assert first["finished"] == [{"job": "reset_budget_job", "seconds": None, "error": "KeyError: 'budget_reset_at'"}]
        assert (await agent._op_wait_jobs({"timeout": 1}, None, agent._state))["finished"] == []

    asyncio.run(scenario())


def test_a_job_never_let_go_is_cancelled_at_the_end(started):
    async def scenario():
        _with(started, SlowReset())
        agent._op_start_job({"job": "reset_budget_job"}, None, agent._state)
        task = agent._state["background_jobs"][0]["task"]
        out = await agent._op_wait_jobs({"timeout": 0.05, "cancel": True}, None, agent._state)
        assert out == {"finished": [], "still_running": ["reset_budget_job"]}
        await asyncio.sleep(0)
        assert task.cancelled() and agent._state["background_jobs"] == []

    asyncio.run(scenario())


def test_a_second_start_of_a_running_job_is_refused_and_a_run_awaits_it(started):
    async def scenario():
        job = _with(started, SlowReset())
        agent._op_start_job({"job": "reset_budget_job"}, None, agent._state)
        with pytest.raises(RuntimeError, match="still running: wait for it first"):
            agent._op_start_job({"job": "reset_budget_job"}, None, agent._state)
        run = asyncio.ensure_future(agent._op_run_job({"job": "reset_budget_job"}, None, agent._state))
        await asyncio.wait_for(job.started.wait(), 1)
        await asyncio.sleep(0.05)
        assert job.runs == 1 and not run.done()  # the run waits for the started one to end
        job.release.set()
        await asyncio.wait_for(run, 1)
        assert job.runs == 2

    asyncio.run(scenario())


def test_a_job_the_release_lacks_fails_at_the_start(started):
    started.append(Scheduler(Job("update_spend_job", update_spend)))
    with pytest.raises(LookupError, match="scheduled no job 'reset_budget_job'"):
        agent._op_start_job({"job": "reset_budget_job"}, None, agent._state)
