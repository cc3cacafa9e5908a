"""Calls held at the fake provider between steps: `spend: {hold: name}` sends them in background
threads and returns once each is held there (or answered first, e.g. refused by the proxy);
`release: name` lets them finish and collects their answers.

Held calls never outlive a scenario: the runner's `close()` (at the scenario's end, after a
failure or an interrupt) and the fleet's `stop()` release every batch and join its threads,
bounded in time. A held call waits at most the client's timeout (`ProxyTarget.chat`, 60 s) and
the provider's `MAX_HOLD_S`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import HarnessError

#: how long `hold` waits for its calls to reach the provider, and `release` for their answers
ARRIVE_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 70.0
#: how long a scenario's end waits for the answers of the calls it never released
CLOSE_TIMEOUT_S = 15.0


@dataclasses.dataclass
class Batch:
    """One `hold`'s calls: each thread leaves its call's answer (a response, or the exception
    it raised) in `answers`, by call number."""

    name: str
    upstreams: list[Any]
    threads: list[threading.Thread]
    answers: list[Any]

    @property
    def answered(self) -> int:
        return sum(not t.is_alive() for t in self.threads)

    def held(self) -> int:
        return sum(u.held(self.name) for u in self.upstreams)

    def let_go(self) -> None:
        for upstream in self.upstreams:
            upstream.release(self.name)

    def join(self, timeout: float) -> int:
        """Wait for the answers (bounded); the number of calls still unanswered."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(t.is_alive() for t in self.threads)


class HeldCalls:
    """The batches held now, by name (one per deployment: `Fleet.holds`)."""

    def __init__(self) -> None:
        self._batches: dict[str, Batch] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        with self._lock:
            return list(self._batches)

    def hold(self, name: str, calls: list[tuple[Any, Callable[[], Any]]],
             timeout: float = ARRIVE_TIMEOUT_S) -> Batch:
        """Send each call (its replica's fake provider, the function that sends it) in its own
        thread, its provider scripted to hold it under `name`; return once every call is held
        or answered. A call the proxy answers itself (a budget refusal) never reaches the
        provider: its scripted hold is withdrawn so that no later call is held in its place."""
        with self._lock:
            if name in self._batches:
                raise HarnessError(f"hold `{name}` is already holding calls")
        upstreams: list[Any] = []
        for upstream, _send in calls:
            if upstream is None:
                raise HarnessError("`hold` needs the fake provider, not `provider: mock`: the mock answers "
                                   "inside the proxy, so there is nowhere to hold a call")
            if all(upstream is not u for u in upstreams):
                upstreams.append(upstream)
                upstream.hold(name)  # re-armed: an earlier scenario may have released this name
            upstream.script(dataclasses.replace(upstream.default, hold=name))
        answers: list[Any] = [None] * len(calls)

        def send(number: int, fn: Callable[[], Any]) -> None:
            try:
                answers[number] = fn()
            except Exception as exc:  # kept as the call's answer: `release` reports it
                answers[number] = exc

        threads = [threading.Thread(target=send, args=(i, fn), name=f"hold-{name}-{i + 1}", daemon=True)
                   for i, (_upstream, fn) in enumerate(calls)]
        batch = Batch(name, upstreams, threads, answers)
        with self._lock:
            self._batches[name] = batch
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        while batch.held() + batch.answered < len(calls):
            if time.monotonic() > deadline:
                held = batch.held()
                self.release(name, CLOSE_TIMEOUT_S)
                raise HarnessError(f"hold `{name}`: {held} of {len(calls)} calls reached the provider within "
                                   f"{timeout:.0f}s (the rest got no answer either)")
            time.sleep(0.01)
        if batch.answered:
            for upstream in upstreams:
                upstream.unscript(name)
        return batch

    def release(self, name: str, timeout: float = ANSWER_TIMEOUT_S) -> list[Any]:
        """Let the batch's calls finish; their answers in call order (a response or an exception)."""
        with self._lock:
            batch = self._batches.pop(name, None)
        if batch is None:
            raise HarnessError(f"no calls are held under `{name}`" + (f"; held: {', '.join(self.names())}"
                                                                        if self.names() else ""))
        batch.let_go()
        left = batch.join(timeout)
        if left:
            raise HarnessError(f"release `{name}`: {left} of {len(batch.threads)} calls got no answer within {timeout:.0f}s")
        return batch.answers

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> list[str]:
        """Release every batch still held and join its threads (bounded); the names released."""
        with self._lock:
            batches, self._batches = list(self._batches.values()), {}
        deadline = time.monotonic() + timeout
        for batch in batches:
            batch.let_go()
        for batch in batches:
            batch.join(max(0.0, deadline - time.monotonic()))
        return [b.name for b in batches]
