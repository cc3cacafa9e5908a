"""Fakes the unit tests share (imported as `fakes`: pytest puts tests/ on the path)."""

from __future__ import annotations

from typing import Any


class Resp:
    """A `requests.Response` as the harness reads one: status, JSON body, text, the cost header."""

    def __init__(self, status: int, body: Any = None, cost: float | None = None):
        self.status_code, self.ok = status, 200 <= status < 300
        self._body = {} if body is None else body
        self.text = str(self._body)
        self.headers = {} if cost is None else {"x-litellm-response-cost": str(cost)}

    def json(self):
        return self._body
