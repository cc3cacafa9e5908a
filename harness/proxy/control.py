"""The harness's side of the agent inside every proxy (harness/standalone/agent.py).

    replica.control.freeze(at)                  # one proxy (harness.proxy.proxy.ProxyTarget)
    scope.control.run_job("reset_budget_job")   # the replicas a step acts on (harness.proxy.fleet.Scope)

One typed method per operation of the agent's table (`OPERATIONS` in agent.py), each naming its
operation once and saying which replicas answer it (`Reach`); tests/test_proxy_control.py
checks that both sides name the same operations. A request is `POST /__harness/<operation>`
with the run's token and a JSON body; the answer is JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Callable

import requests

from ..errors import HarnessError

#: the agent's routes and the header its token goes in (agent.py serves the same)
PREFIX = "/__harness/"
TOKEN_HEADER = "X-Harness-Token"


class Reach(Enum):
    """Which replicas of a deployment an operation goes to (one proxy answers every reach itself)."""

    #: one running replica answers for all: the deployment's clock, the release's routes
    ANY = "any"
    #: every running replica the step acts on: each has its own jobs, queues and caches
    EACH = "each"
    #: every running replica of the deployment, whatever the step acts on: the clock moves
    ALL = "all"


#: replica name -> the agent's answer, in the deployment's order
Answers = dict[str, dict[str, Any]]
Send = Callable[[str, dict[str, Any], Reach], Answers]


class AgentError(HarnessError):
    """The agent answered: the operation failed inside the proxy (its error text is the message)."""


@dataclass(frozen=True)
class Route:
    """Whether the release's app has a route, and the fields of its request body model."""

    exists: bool
    path: str
    #: None where the route takes no single body model (the fields are not known)
    fields: list[str] | None


@dataclass(frozen=True)
class CacheEntries:
    """One replica's in-memory cache entries about some ids, by cache (`spend_counter_cache`,
    `user_api_key_cache`, others by type), under the release's own key names."""

    entries: dict[str, dict[str, Any]]
    has_spend_counter_cache: bool


@dataclass(frozen=True)
class JobsWaited:
    """One replica's answer to `wait_jobs`: the started jobs that ended (each once) and those still running."""

    #: {"job", "seconds" (None if it failed), "error" (None if it ran through)}
    finished: list[dict[str, Any]]
    still_running: list[str]

    @property
    def errors(self) -> list[str]:
        return [f"{j['job']}: {j['error']}" for j in self.finished if j["error"]]


@dataclass(frozen=True)
class PauseReport:
    """What one replica's pause did: how many calls reached its barrier, whether it let them go by itself."""

    name: str
    point: str
    hits: int
    timed_out: bool


def post(http: requests.Session, base_url: str, token: str, op: str, body: dict[str, Any],
         timeout: float = 120.0) -> dict[str, Any]:
    """One operation on one agent; HarnessError when it does not answer, AgentError when the operation failed."""
    try:
        resp = http.post(f"{base_url}{PREFIX}{op}", json=body, headers={TOKEN_HEADER: token}, timeout=timeout)
    except requests.RequestException as exc:
        raise HarnessError(f"the proxy did not answer the harness ({op}): {exc}") from None
    data = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if not resp.ok:
        raise AgentError(f"harness control `{op}` failed inside the proxy: {data.get('error', resp.text[:300])}")
    return data


class EngineTimedOut(Exception):
    """A job's database work did not finish because the harness's Prisma engine was too slow."""


class ProxyControl:
    """The agent's operations, typed. `send(op, body, reach)` delivers one to the replicas `reach`
    names and returns their answers; only fan-out code (harness.proxy.fleet) calls it."""

    def __init__(self, send: Send):
        self.send = send

    @classmethod
    def of(cls, name: str, call: Callable[[str, dict[str, Any]], dict[str, Any]]) -> "ProxyControl":
        """The control of one proxy: `call(op, body)` is one request to its agent."""
        return cls(lambda op, body, _reach: {name: call(op, body)})

    def _first(self, op: str, body: dict[str, Any], reach: Reach) -> dict[str, Any]:
        return next(iter(self.send(op, body, reach).values()))

    def info(self) -> dict[str, Any]:
        """Diagnostics: the release, pid, uptime, peak memory (also of the Prisma engine), the scheduled jobs."""
        return self._first("info", {}, Reach.EACH)

    def lazy_imports(self) -> list[str]:
        """The release's modules a replica imported after its fork (its requests' lazy imports)."""
        return list(self._first("lazy-imports", {}, Reach.ANY)["modules"])

    def clock(self) -> datetime:
        return _instant(self._first("clock", {}, Reach.ANY))

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop the clock at `at` (None: the real time now); the frozen instant."""
        return _instant(self._first("freeze", {"at": at.isoformat() if at else None}, Reach.ALL))

    def advance(self, seconds: float) -> datetime:
        """Move the frozen clock forward; the instant it shows now."""
        return _instant(self._first("advance", {"seconds": seconds}, Reach.ALL))

    def run_job(self, name: str) -> float:
        """Run the proxy's scheduled job `name` (`reset_budget_job`, `update_spend_job`) now; its seconds.

        EngineTimedOut when the proxy's Prisma client gave up on the harness's engine meanwhile."""
        answers = self.send("run-job", {"job": name}, Reach.EACH)
        lost = {replica: a.get("engine_timeouts", 0) for replica, a in answers.items() if a.get("engine_timeouts")}
        if lost:
            raise EngineTimedOut(
                f"{name} lost {sum(lost.values())} request(s) to the harness's Prisma engine (wasm bridge), which did not "
                f"answer within prisma-client-py's 30 s (on {', '.join(lost)}): too slow for this release's work here, so "
                "the outcome says nothing about the release")
        return float(next(iter(answers.values()))["seconds"])

    def start_job(self, name: str) -> None:
        """Start the job `name` inside the proxy and return at once; `wait_jobs` collects it."""
        self.send("start-job", {"job": name}, Reach.EACH)

    def wait_jobs(self, timeout: float = 30.0, cancel: bool = False) -> dict[str, JobsWaited]:
        """Wait at most `timeout` s for the jobs `start_job` started, by replica; `cancel`: end those still running."""
        return {name: JobsWaited(list(answer["finished"]), list(answer["still_running"]))
                for name, answer in self.send("wait-jobs", {"timeout": timeout, "cancel": cancel}, Reach.EACH).items()}

    def pause(self, name: str, point: str, when: str, timeout: float) -> None:
        """Arm pause `name`: calls of `point` (`module:Qualified.function`, async) wait `when`
        (before/after) they run until `resume(name)`, at most `timeout` s."""
        self.send("pause", {"name": name, "at": point, "when": when, "timeout": timeout}, Reach.EACH)

    def resume(self, name: str | None) -> dict[str, list[PauseReport]]:
        """Let pause `name` (None: every pause) go and disarm it; what each did, by replica."""
        return {replica: [PauseReport(r["name"], r["at"], int(r["hits"]), bool(r["timed_out"])) for r in answer["resumed"]]
                for replica, answer in self.send("resume", {"name": name}, Reach.EACH).items()}

    def wait_paused(self, name: str, timeout: float) -> dict[str, bool]:
        """Wait at most `timeout` s until a call reached pause `name`'s barrier; whether one did, by replica."""
        return {replica: bool(answer["reached"])
                for replica, answer in self.send("wait-paused", {"name": name, "timeout": timeout}, Reach.EACH).items()}

    def settle(self, timeout: float = 10.0) -> list[str]:
        """Wait for the requests' follow-up work; the tasks still running after `timeout` s."""
        return list(self._first("settle", {"timeout": timeout}, Reach.EACH)["still_running"])

    def reset(self) -> int:
        """Unfreeze the clock and empty every in-memory cache (between scenarios); how many caches."""
        return int(self._first("reset", {}, Reach.EACH)["caches_flushed"])

    def route(self, method: str, path: str) -> Route:
        """Whether the release's app has `method path` (placeholders match whatever their names)."""
        answer = self._first("route", {"method": method, "path": path}, Reach.ANY)
        return Route(bool(answer["exists"]), answer["path"], answer["fields"])

    def auth_view(self, ids: list[str]) -> dict[str, CacheEntries]:
        """What each replica's auth path holds in memory for entries whose key contains one of `ids`, by replica."""
        return {name: CacheEntries(dict(answer["entries"]), bool(answer["has_spend_counter_cache"]))
                for name, answer in self.send("auth-view", {"ids": ids}, Reach.EACH).items()}


def _instant(answer: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(answer["now"])
