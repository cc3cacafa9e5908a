"""ProxyControl, the typed client of the agent: both sides name the same operations, answers
become typed values, and a failure inside the proxy is an AgentError."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone

import pytest
import requests

from harness.errors import HarnessError
from harness.proxy.control import AgentError, CacheEntries, JobsWaited, ProxyControl, Reach, Route, post
from harness.standalone import agent

#: a value for every parameter a ProxyControl method takes (a new parameter needs one here)
SAMPLES = {"at": None, "seconds": 1.0, "name": "reset_budget_job", "timeout": 1.0, "method": "GET", "path": "/",
           "ids": ["x"], "cancel": False, "point": "m:f", "when": "before"}


class _Sent(Exception):
    pass


def operations_of_the_client() -> dict[str, tuple[str, Reach]]:
    """method -> (operation, reach) it sends, by calling every public method once."""
    sent: dict[str, tuple[str, Reach]] = {}
    for name, method in inspect.getmembers(ProxyControl, inspect.isfunction):
        if name.startswith("_"):
            continue
        params = list(inspect.signature(method).parameters)[1:]
        missing = [p for p in params if p not in SAMPLES]
        assert not missing, f"ProxyControl.{name} takes {missing}: add sample values to SAMPLES"

        def send(op, body, reach, name=name):
            sent[name] = (op, reach)
            raise _Sent

        with pytest.raises(_Sent):
            getattr(ProxyControl(send), name)(**{p: SAMPLES[p] for p in params})
    return sent


def test_the_client_and_the_agent_name_the_same_operations() -> None:
    client = {op for op, _reach in operations_of_the_client().values()}
    assert client == set(agent.OPERATIONS)


def test_the_clock_goes_to_every_replica_and_views_to_the_scope() -> None:
    sent = operations_of_the_client()
    assert sent["freeze"][1] is sent["advance"][1] is Reach.ALL
    assert sent["clock"][1] is sent["route"][1] is Reach.ANY
    assert {sent[m][1] for m in ("run_job", "start_job", "wait_jobs", "pause", "resume", "wait_paused", "settle", "reset", "auth_view", "info")} == {Reach.EACH}


def test_answers_become_typed_values() -> None:
    answers = {
        "clock": {"now": "2026-03-02T10:00:00+00:00", "frozen": True},
        "run-job": {"job": "reset_budget_job", "seconds": 0.25},
        "settle": {"still_running": ["Logging.async_success_handler"]},
        "route": {"exists": True, "path": "/key/{key:path}/regenerate", "fields": ["max_budget"]},
        "auth-view": {"entries": {"spend_counter_cache": {"spend:key:h": 0.1}}, "has_spend_counter_cache": True},
        "reset": {"caches_flushed": 7},
    }
    calls = []

    def call(op, body):
        calls.append((op, body))
        return answers[op]

    control = ProxyControl.of("a", call)
    assert control.clock() == datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    assert control.run_job("reset_budget_job") == 0.25 and calls[-1] == ("run-job", {"job": "reset_budget_job"})
    assert control.settle() == ["Logging.async_success_handler"] and calls[-1] == ("settle", {"timeout": 10.0})
    assert control.route("POST", "/key/{k}/regenerate") == Route(True, "/key/{key:path}/regenerate", ["max_budget"])
    assert control.auth_view(["h"]) == {"a": CacheEntries({"spend_counter_cache": {"spend:key:h": 0.1}}, True)}
    assert control.reset() == 7
    answers["wait-jobs"] = {"finished": [{"job": "reset_budget_job", "seconds": None, "error": "KeyError: 'x'"}],
                            "still_running": []}
    waited = control.wait_jobs(5.0, cancel=True)
    assert calls[-1] == ("wait-jobs", {"timeout": 5.0, "cancel": True})
    assert waited == {"a": JobsWaited(answers["wait-jobs"]["finished"], [])}
    assert waited["a"].errors == ["reset_budget_job: KeyError: 'x'"]
    answers["freeze"] = {"now": "2030-06-01T12:00:00+00:00"}
    assert control.freeze(datetime(2030, 6, 1, 12, tzinfo=timezone.utc)) == datetime(2030, 6, 1, 12, tzinfo=timezone.utc)
    assert calls[-1] == ("freeze", {"at": "2030-06-01T12:00:00+00:00"})


class _Response:
    def __init__(self, status: int, body: dict):
        self.status_code, self.ok, self._body = status, 200 <= status < 300, body
        self.headers, self.text = {"content-type": "application/json"}, str(body)

    def json(self):
        return self._body


class _Session:
    def __init__(self, answer):
        self.answer, self.requests = answer, []

    def post(self, url, json, headers, timeout):
        self.requests.append((url, json, headers, timeout))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_post_sends_the_token_and_tells_a_failed_operation_from_a_silent_proxy() -> None:
    ok = _Session(_Response(200, {"now": "x"}))
    assert post(ok, "http://127.0.0.1:1", "tok", "clock", {}) == {"now": "x"}
    assert ok.requests == [("http://127.0.0.1:1/__harness/clock", {}, {"X-Harness-Token": "tok"}, 120.0)]
    failed = _Session(_Response(500, {"error": "LookupError: the proxy scheduled no job 'reset_budget_job'"}))
    with pytest.raises(AgentError, match="harness control `run-job` failed inside the proxy: LookupError"):
        post(failed, "http://127.0.0.1:1", "tok", "run-job", {"job": "reset_budget_job"})
    silent = _Session(requests.ConnectionError("refused"))
    with pytest.raises(HarnessError, match=r"the proxy did not answer the harness \(settle\): refused") as caught:
        post(silent, "http://127.0.0.1:1", "tok", "settle", {})
    assert not isinstance(caught.value, AgentError)


def test_a_job_whose_engine_requests_timed_out_says_so_and_names_the_replica() -> None:
    from harness.proxy.control import EngineTimedOut

    answers = {"a": {"job": "reset_budget_job", "seconds": 91.0, "engine_timeouts": 3},
               "b": {"job": "reset_budget_job", "seconds": 2.0, "engine_timeouts": 0}}
    control = ProxyControl(lambda op, body, reach: answers)
    with pytest.raises(EngineTimedOut, match=r"reset_budget_job lost 3 request\(s\) .* 30 s \(on a\)"):
        control.run_job("reset_budget_job")
    answers["a"]["engine_timeouts"] = 0
    assert control.run_job("reset_budget_job") == 91.0
    # an agent that does not count (older answer shape) is taken at its word
    assert ProxyControl.of("a", lambda op, body: {"job": "reset_budget_job", "seconds": 0.5}).run_job("reset_budget_job") == 0.5


def test_the_agent_counts_engine_requests_prisma_gave_up_on(monkeypatch) -> None:
    import asyncio
    import sys
    import types

    # the proxy's environment has httpx and prisma-client-py; here both are stand-ins of their shape
    httpx = types.ModuleType("httpx")
    httpx.TimeoutException = type("TimeoutException", (Exception,), {})
    httpx.ReadTimeout = type("ReadTimeout", (httpx.TimeoutException,), {})

    class HTTPEngine:
        async def request(self, method, path):
            if path == "/slow":
                raise httpx.ReadTimeout("timed out")
            if path == "/refused":
                raise ConnectionError("refused")
            return {"ok": True}

    fake = types.ModuleType("prisma.engine.http")
    fake.HTTPEngine = HTTPEngine
    for name, module in (("httpx", httpx), ("prisma", types.ModuleType("prisma")),
                         ("prisma.engine", types.ModuleType("prisma.engine")), ("prisma.engine.http", fake)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(agent._state, "engine_timeouts", 0)
    agent._count_engine_timeouts()
    engine = HTTPEngine()
    assert asyncio.run(engine.request("POST", "/")) == {"ok": True}
    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(engine.request("POST", "/slow"))
    with pytest.raises(ConnectionError):  # other failures are not the engine being slow
        asyncio.run(engine.request("POST", "/refused"))
    assert agent._state["engine_timeouts"] == 1
