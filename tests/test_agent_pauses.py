"""The agent's pause points, in-process: a barrier wrapped around an async function (a
staticmethod of a class here, as ResetBudgetJob's are), released by `resume` or by its timeout."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from harness.standalone import agent

MODULE = "lh_pause_target"


class Job:
    calls: list[str] = []

    @staticmethod
    async def reset_one(key: str) -> str:
        Job.calls.append(key)
        return f"reset {key}"

    def not_async(self):
        return None


@pytest.fixture()
def target(monkeypatch):
    module = types.ModuleType(MODULE)
    module.Job = Job
    monkeypatch.setitem(sys.modules, MODULE, module)
    monkeypatch.setitem(agent._state, "pauses", {})
    Job.calls = []
    original = vars(Job)["reset_one"]
    yield Job
    Job.reset_one = original


def _pause(name="p1", when="before", timeout=5.0):
    return agent._op_pause({"name": name, "at": f"{MODULE}:Job.reset_one", "when": when, "timeout": timeout},
                           None, agent._state)


@pytest.mark.parametrize("when, ran_while_held", [("before", []), ("after", ["k1"])])
def test_a_call_waits_at_the_barrier_until_resumed(target, when, ran_while_held):
    async def scenario():
        assert _pause(when=when) == {"name": "p1", "armed": f"{MODULE}:Job.reset_one"}
        call = asyncio.ensure_future(target.reset_one("k1"))  # looked up on the class: meets the barrier
        reached = await agent._op_wait_paused({"name": "p1", "timeout": 1}, None, agent._state)
        assert reached["reached"] and reached["hits"] == 1
        await asyncio.sleep(0.02)
        assert not call.done() and target.calls == ran_while_held
        out = agent._op_resume({"name": "p1"}, None, agent._state)
        assert out == {"resumed": [{"name": "p1", "at": f"{MODULE}:Job.reset_one", "hits": 1, "timed_out": False}]}
        assert await asyncio.wait_for(call, 1) == "reset k1" and target.calls == ["k1"]
        assert isinstance(vars(target)["reset_one"], staticmethod)  # the original is back
        assert await target.reset_one("k2") == "reset k2"

    asyncio.run(scenario())


def test_a_pause_never_resumed_lets_go_by_itself_and_says_so(target):
    async def scenario():
        _pause(timeout=0.05)
        assert await asyncio.wait_for(target.reset_one("k1"), 1) == "reset k1"
        assert agent._op_resume({}, None, agent._state)["resumed"][0]["timed_out"] is True
        assert agent._state["pauses"] == {}

    asyncio.run(scenario())


def test_wait_paused_is_bounded(target):
    async def scenario():
        _pause()
        out = await agent._op_wait_paused({"name": "p1", "timeout": 0.02}, None, agent._state)
        assert out["reached"] is False and out["hits"] == 0
        agent._op_resume({"name": "p1"}, None, agent._state)

    asyncio.run(scenario())


@pytest.mark.parametrize("at, says", [
    ("lh_no_such_module:f", "unsupported: this release has no module lh_no_such_module"),
    (f"{MODULE}:Job.reset_gone", f"unsupported: this release has no {MODULE}:Job.reset_gone"),
    (f"{MODULE}:Gone.reset_one", f"unsupported: this release has no {MODULE}:Gone.reset_one"),
    (f"{MODULE}:Job.not_async", "unsupported: lh_pause_target:Job.not_async is not an async function"),
])
def test_a_point_the_release_lacks_is_unsupported_naming_it(target, at, says):
    with pytest.raises(LookupError) as caught:
        agent._op_pause({"name": "p1", "at": at}, None, agent._state)
    assert says in str(caught.value)
    assert agent._state["pauses"] == {}


def test_a_name_is_armed_once_and_resume_names_what_is_armed(target):
    async def scenario():
        _pause()
        with pytest.raises(ValueError, match="armed already"):
            _pause()
        with pytest.raises(LookupError, match=r"no pause 'p2' is armed \(armed: p1\)"):
            agent._op_resume({"name": "p2"}, None, agent._state)
        agent._op_resume({}, None, agent._state)

    asyncio.run(scenario())
