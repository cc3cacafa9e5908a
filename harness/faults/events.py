"""The fault log: every fault the harness injects, with when it started and ended (real time).

Times are the harness's real wall clock in UTC, not the scenario's clock (that one is frozen
inside the proxy only), so a report can line faults up with the proxy's and Redis's own logs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

#: No fault lasts longer than this unless the caller asks for less; nothing asks for more.
MAX_FAULT_SECONDS = 120.0
#: The hard ceiling a caller may ask for (`max_seconds`): a forgotten fault still ends.
MAX_FAULT_CEILING = 600.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_max_seconds(value: float | None) -> float:
    from harness.errors import HarnessError

    if value is None:
        return MAX_FAULT_SECONDS
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise HarnessError(f"fault max_seconds must be a number of seconds, not {value!r}") from None
    if not 0 < seconds <= MAX_FAULT_CEILING:
        raise HarnessError(f"fault max_seconds must be in (0, {MAX_FAULT_CEILING:g}], not {value!r}")
    return seconds


@dataclass
class FaultEvent:
    target: str                    # e.g. "relay 127.0.0.1:40123 -> 127.0.0.1:6379" or "redis-server pid 123"
    fault: str                     # "latency", "blackhole", "refuse", "reset", "fail_commands", "stop", ...
    detail: dict = field(default_factory=dict)
    started_at: datetime = field(default_factory=_now)
    ended_at: datetime | None = None
    end: str | None = None         # "switched" | "expired" | "stopped" | "instant" | "capped"
    effects: dict = field(default_factory=dict)   # counters: commands_failed, connections_closed, ...

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def seconds(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()

    def as_dict(self) -> dict:
        return {"target": self.target, "fault": self.fault, "detail": dict(self.detail),
                "started_at": self.started_at.isoformat(), "ended_at": self.ended_at.isoformat() if self.ended_at else None,
                "seconds": self.seconds, "end": self.end, "effects": dict(self.effects)}


class FaultLog:
    """Thread-safe list of FaultEvents (the relay's loop thread writes, the harness reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[FaultEvent] = []

    def begin(self, target: str, fault: str, detail: dict | None = None, *, instant: bool = False) -> FaultEvent:
        event = FaultEvent(target, fault, dict(detail or {}))
        if instant:
            event.ended_at, event.end = event.started_at, "instant"
        with self._lock:
            self._events.append(event)
        return event

    def finish(self, event: FaultEvent | None, end: str) -> None:
        with self._lock:
            if event is not None and event.ended_at is None:
                event.ended_at, event.end = _now(), end

    def count(self, event: FaultEvent | None, name: str, n: int = 1) -> None:
        if event is not None:
            with self._lock:
                event.effects[name] = event.effects.get(name, 0) + n

    @property
    def events(self) -> list[FaultEvent]:
        with self._lock:
            return list(self._events)
