"""The pause/resume/wait_jobs steps' reading of the agent's answers, with a fake control (the
agent side is tests/test_agent_pauses.py and tests/test_agent_jobs.py; the real proxy is
tests/test_deployment_e2e.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.errors import HarnessError
from harness.proxy.control import AgentError, JobsWaited, PauseReport
from harness.steps.base import Unsupported
from harness.steps.interleavings import Pause, Resume, WaitPaused
from harness.steps.jobs import RunResetJob, WaitJobs

POINT = "litellm.proxy.common_utils.reset_budget_job:ResetBudgetJob._reset_budget_for_key"


class Control:
    def __init__(self, **answers):
        self.answers, self.calls = answers, []

    def __getattr__(self, op):
        def call(*args):
            self.calls.append((op, args))
            answer = self.answers.get(op)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return call


def ctx(control):
    return SimpleNamespace(target=SimpleNamespace(control=control, names=["a"]), entities={}, db=None,
                           before_reset={}, reset_job_ran=False)


def test_a_point_the_release_lacks_is_unsupported_naming_it():
    lacking = AgentError("harness control `pause` failed inside the proxy: LookupError: unsupported: "
                         f"this release has no {POINT}")
    with pytest.raises(Unsupported, match=f"^this release has no {POINT}$"):
        Pause(name="p1", at=POINT).run(ctx(Control(pause=lacking)))
    other = AgentError("harness control `pause` failed inside the proxy: ValueError: pause 'p1' is armed already")
    with pytest.raises(AgentError, match="armed already"):
        Pause(name="p1", at=POINT).run(ctx(Control(pause=other)))


def test_pause_sends_its_point_and_bound():
    control = Control()
    assert Pause(name="p1", at=POINT, when="after", timeout=5).run(ctx(control)) == f"pause p1 armed after {POINT} on a"
    assert control.calls == [("pause", ("p1", POINT, "after", 5.0))]


def test_a_pause_that_let_go_by_itself_is_an_error_at_resume():
    late = Control(resume={"a": [PauseReport("p1", POINT, 1, True)]})
    with pytest.raises(HarnessError, match="let its calls go by itself .* on a"):
        Resume(name="p1").run(ctx(late))
    on_time = Control(resume={"a": [PauseReport("p1", POINT, 2, False)]})
    assert Resume(name="p1").run(ctx(on_time)) == "pause p1 resumed: a held 2 call(s)"


def test_no_call_at_the_barrier_is_an_error():
    with pytest.raises(HarnessError, match="no call reached pause p1 on b within 2s"):
        WaitPaused(name="p1", timeout=2).run(ctx(Control(wait_paused={"a": True, "b": False})))


def test_wait_jobs_says_each_error_and_each_job_still_running():
    answers = {"a": JobsWaited([{"job": "reset_budget_job", "seconds": None, "error": "KeyError: 'x'"}], []),
               "b": JobsWaited([], ["reset_budget_job"])}
    with pytest.raises(HarnessError) as caught:
        WaitJobs(timeout=3).run(ctx(Control(wait_jobs=answers)))
    assert str(caught.value) == ("started job(s) did not finish cleanly: a: reset_budget_job: KeyError: 'x'; "
                                 "b: reset_budget_job still running after 3s")
    done = {"a": JobsWaited([{"job": "reset_budget_job", "seconds": 0.125, "error": None}], [])}
    assert WaitJobs().run(ctx(Control(wait_jobs=done))) == "waited for reset_budget_job on a (0.12s)"


def test_a_reset_job_without_wait_is_started_not_run():
    control = Control()
    assert RunResetJob(wait=False).run(ctx(control)) == "reset_budget_job started on a"
    assert control.calls == [("start_job", ("reset_budget_job",))]
