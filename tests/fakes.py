"""Fakes the unit tests share (imported as `fakes`: pytest puts tests/ on the path)."""

from __future__ import annotations

from typing import Any

from harness.proxy.control import ProxyControl


class Resp:
    """A `requests.Response` as the harness reads one: status, JSON body, text, the cost header."""

    def __init__(self, status: int, body: Any = None, cost: float | None = None):
        self.status_code, self.ok = status, 200 <= status < 300
        self._body = {} if body is None else body
        self.text = str(self._body)
        self.headers = {} if cost is None else {"x-litellm-response-cost": str(cost)}

    def json(self):
        return self._body


def idle_control(name: str = "a") -> ProxyControl:
    """The agent of a proxy with no job running, its clock at a fixed instant."""
    return ProxyControl.of(name, lambda op, body: {"still_running": [], "now": "2026-03-02T10:00:00+00:00",
                                                   "seconds": 0.0})


class Db:
    """A database view where every entity has spent nothing and has no state row."""

    def row(self, entity):
        return {"spend": 0.0}

    def state(self, entity):
        return None
