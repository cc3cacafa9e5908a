"""Fault steps: Redis down, restarted (keeping its data or from an older snapshot), flushed, slow,
timing out or failing commands; a replica killed and restarted; PostgreSQL unreachable.

Every fault is bounded (it ends by itself after `max_seconds`, 120 s unless less is asked, 600 s
at most), acts on loopback only (the relays listen on 127.0.0.1 and forward to loopback), and
is logged with its real start and end time; the report lists them. The mechanics live in
`harness.faults`; these steps only name the injectors they drive (`requires`) and reach them
through their context. A deployment a fault touched is not reused by the next scenario.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ..errors import HarnessError
from ..faults.events import MAX_FAULT_CEILING
from ..faults.processes import RedisControl
from ..faults.relay import Relay
from ..names import ReplicaName
from .base import Step, StepContext, Unsupported

SNAPSHOT = r"^[A-Za-z0-9_.-]{1,64}$"


class _Fault(Step):
    replica_scoped: ClassVar[bool] = False
    not_scoped_because: ClassVar[str] = "a fault acts on the whole deployment (name a replica with `replica:`)"


class _RedisProcess(_Fault):
    requires: ClassVar[frozenset[str]] = frozenset({"redis_process"})

    @staticmethod
    def redis_process(ctx: StepContext) -> RedisControl:
        """The Redis process's controller (only a server the harness runs can be stopped)."""
        try:
            return ctx.injector("redis_process")
        except HarnessError as exc:
            raise Unsupported(str(exc)) from None


class StopRedis(_RedisProcess):
    """Take the deployment's Redis down: `how: save` (SHUTDOWN SAVE), `term` or `kill` (nothing saved since the last snapshot)."""

    action: ClassVar[str] = "stop_redis"
    shorthand: ClassVar[str | None] = "how"
    how: Literal["save", "term", "kill"] = "save"
    max_seconds: float = Field(120, gt=0, le=MAX_FAULT_CEILING, description="it comes back by itself after this")

    def run(self, ctx: StepContext) -> str:
        event = self.redis_process(ctx).stop(self.how, max_seconds=self.max_seconds)
        return f"Redis stopped ({self.how}) at {event.started_at.isoformat()}"


class StartRedis(_RedisProcess):
    """Start the stopped Redis again on its port, with `data: keep` (its dump), `empty`, or a snapshot's name."""

    action: ClassVar[str] = "start_redis"
    shorthand: ClassVar[str | None] = "data"
    data: str = Field("keep", pattern=SNAPSHOT)

    def run(self, ctx: StepContext) -> str:
        self.redis_process(ctx).start(self.data)
        return f"Redis started with data {self.data}"


class RestartRedis(_RedisProcess):
    """Stop Redis (`how`) and start it again with `data` (keep, empty, or a snapshot's name)."""

    action: ClassVar[str] = "restart_redis"
    how: Literal["save", "term", "kill"] = "save"
    data: str = Field("keep", pattern=SNAPSHOT)

    def run(self, ctx: StepContext) -> str:
        event = self.redis_process(ctx).restart(self.how, self.data)
        return f"Redis restarted ({self.how}, data {self.data}) at {event.started_at.isoformat()}"


class SnapshotRedis(_RedisProcess):
    """SAVE Redis now and keep the dump under a name, for `start_redis`/`restart_redis` `data:` (an older state)."""

    action: ClassVar[str] = "snapshot_redis"
    shorthand: ClassVar[str | None] = "name"
    name_: str = Field("snapshot", alias="name", pattern=SNAPSHOT)

    def created(self):  # a snapshot's name is not an entity
        return []

    def run(self, ctx: StepContext) -> str:
        self.redis_process(ctx).snapshot(self.name_)
        return f"Redis snapshot {self.name_} saved"


class FlushRedis(_Fault):
    """Empty the deployment's Redis database (FLUSHDB of the harness's index)."""

    action: ClassVar[str] = "flush_redis"
    requires: ClassVar[frozenset[str]] = frozenset({"redis"})

    def run(self, ctx: StepContext) -> str:
        ctx.injector("redis").flush()
        return "Redis database flushed"


class _Network(_Fault):
    mode: str
    latency_ms: float = Field(0, ge=0, le=60_000)
    jitter_ms: float = Field(0, ge=0, le=60_000)
    max_seconds: float = Field(120, gt=0, le=MAX_FAULT_CEILING, description="the fault ends by itself after this")

    def switch(self, relay: Relay) -> str:
        event = relay.set_mode(self.mode, latency_ms=self.latency_ms, jitter_ms=self.jitter_ms,
                               commands=getattr(self, "commands", ()), match=getattr(self, "match", None),
                               after=getattr(self, "after", 0), times=getattr(self, "times", None),
                               max_seconds=self.max_seconds)
        if event is None:
            return f"{relay.name}: back to pass"
        return f"{relay.name}: {self.mode} from {event.started_at.isoformat()} (at most {self.max_seconds:g}s)"


class RedisNetwork(_Network):
    """Between the replicas and Redis: `mode: latency` (latency_ms, jitter_ms), `blackhole` (timeouts), `refuse`, `reset`, `fail_commands` (commands: [INCRBYFLOAT, GET*]), or `pass` (ends the fault)."""

    action: ClassVar[str] = "redis_network"
    shorthand: ClassVar[str | None] = "mode"
    requires: ClassVar[frozenset[str]] = frozenset({"redis_relay"})
    mode: Literal["pass", "latency", "blackhole", "refuse", "reset", "fail_commands"]
    commands: list[str] = Field([], description="fail_commands: fnmatch patterns of the Redis commands that fail")

    @model_validator(mode="after")
    def _commands(self) -> "RedisNetwork":
        if self.mode == "fail_commands" and not self.commands:
            raise ValueError("`fail_commands` needs `commands`, e.g. [INCRBYFLOAT, EVALSHA]")
        if self.mode == "latency" and not self.latency_ms + self.jitter_ms:
            raise ValueError("`latency` needs `latency_ms` (and/or `jitter_ms`) above 0")
        return self

    def run(self, ctx: StepContext) -> str:
        return self.switch(ctx.injector("redis_relay"))


class PostgresNetwork(_Network):
    """Between the replicas and PostgreSQL: `mode: refuse` (unreachable), `blackhole`, `latency`, `reset`, `fail_statements` (the statements matching `match` fail: after `after` pass, `times` of them), `delay_statements` (they wait latency_ms), or `pass` (ends it). The harness's own reads are not affected."""

    action: ClassVar[str] = "postgres_network"
    shorthand: ClassVar[str | None] = "mode"
    requires: ClassVar[frozenset[str]] = frozenset({"pg_relay"})
    mode: Literal["pass", "latency", "blackhole", "refuse", "reset", "fail_statements", "delay_statements"]
    match: str | None = Field(None, description="fail/delay_statements: a regex searched in each statement's SQL "
                              "(Prisma writes \"public\".\"LiteLLM_VerificationToken\")")
    after: int = Field(0, ge=0, description="fail/delay_statements: this many matching statements pass first")
    times: int | None = Field(None, ge=1, description="fail/delay_statements: then this many are hit (all, if unset)")

    @model_validator(mode="after")
    def _statements(self) -> "PostgresNetwork":
        statement_mode = self.mode in ("fail_statements", "delay_statements")
        if statement_mode and not self.match:
            raise ValueError(f"`{self.mode}` needs `match`, a regex of the SQL, e.g. 'UPDATE .*\"LiteLLM_VerificationToken\"'")
        if not statement_mode and (self.match or self.after or self.times):
            raise ValueError("`match`, `after` and `times` are for modes fail_statements and delay_statements")
        if self.match:
            try:
                re.compile(self.match)
            except re.error as exc:
                raise ValueError(f"`match` is not a valid regex: {exc}") from None
        if self.mode in ("latency", "delay_statements") and not self.latency_ms + self.jitter_ms:
            raise ValueError(f"`{self.mode}` needs `latency_ms` (and/or `jitter_ms`) above 0")
        return self

    def run(self, ctx: StepContext) -> str:
        return self.switch(ctx.injector("pg_relay"))


class StopReplica(_Fault):
    """Stop a replica: `how: term` (SIGTERM, as a rolling deploy does; SIGKILL after 10 s) or `kill` (SIGKILL)."""

    action: ClassVar[str] = "stop_replica"
    requires: ClassVar[frozenset[str]] = frozenset({"replicas"})
    replica: ReplicaName
    how: Literal["term", "kill"] = "term"

    def run(self, ctx: StepContext) -> str:
        outcome, event = ctx.injector("replicas").stop(self.replica, self.how)
        return f"replica {self.replica} {outcome} at {event.started_at.isoformat()}"


class StartReplica(_Fault):
    """Start a stopped replica again: a new process with empty caches, on the deployment's clock."""

    action: ClassVar[str] = "start_replica"
    shorthand: ClassVar[str | None] = "replica"
    requires: ClassVar[frozenset[str]] = frozenset({"replicas"})
    replica: ReplicaName

    def run(self, ctx: StepContext) -> str:
        target = ctx.injector("replicas").start(self.replica)
        return f"replica {self.replica} started again in {target.started_in_s:.1f}s (port {target.port})"
