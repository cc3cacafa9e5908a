"""What fault steps act on, by name: one registry entry per fault target.

A step declares the injectors it drives (`Step.requires`, e.g. `{"pg_relay"}`); the loader
checks them against the deployment, and the deployment builds them from the declarations:

* `pg_relay`: a relay between the replicas and PostgreSQL (harness.faults.relay);
* `redis_relay`: the relay between the replicas and Redis, on every deployment with Redis;
* `redis`: the deployment's Redis database (emptied as an instant fault);
* `redis_process`: the Redis server's process (stop, start, snapshots; embedded servers only);
* `replicas`: stopping and restarting the deployment's replicas;
* `alert_sink`: a loopback webhook receiver (harness.faults.alerts) the replicas' SLACK_WEBHOOK_URL
  and WEBHOOK_URL point at (`expect_alert` reads it).

An injector that sits between the replicas and a server is built with the deployment, before
the replicas start (they are given its address); the others on first use. A new fault target
is its step module plus one entry in `INJECTORS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import urlsplit, urlunsplit

from ..errors import HarnessError
from .events import FaultEvent, FaultLog
from .alerts import AlertSink
from .relay import Relay


class Replicas(Protocol):
    """What the replica injector needs of the deployment (harness.proxy.fleet.Fleet)."""

    replicas: Mapping[str, Any]

    def restart(self, name: str) -> Any: ...


@dataclass
class Site:
    """What one deployment's injectors are built on. One built before the replicas exist may
    put itself in front of a server by replacing that server's address here; the others are
    built once `fleet` is set."""

    #: where the replicas reach PostgreSQL
    database_url: str | None = None
    #: the deployment's harness.redis server (None without Redis)
    redis: Any = None
    #: where the replicas reach Redis
    redis_address: tuple[str, int] | None = None
    fleet: Replicas | None = None
    #: environment variables every replica gets (an injector's address, e.g. the alert sink's URLs)
    environment: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.redis is not None and self.redis_address is None:
            self.redis_address = (self.redis.host, self.redis.port)


def _close(target: Any) -> None:
    target.close()


@dataclass(frozen=True)
class Injector:
    """How to build one fault target and what it needs."""

    build: Callable[[Site], Any]
    #: the deployment must have Redis (the loader refuses the step at its line otherwise)
    needs_redis: bool = False
    #: it sits between the replicas and a server: built with the deployment, before they start
    before_start: bool = False
    #: built for every deployment that can have it, whether or not a step requires it
    always: bool = False
    #: ends its open faults and stops what it runs (idempotent)
    close: Callable[[Any], None] = _close
    #: forgets what the previous scenario left (a shared deployment's next scenario starts clean)
    between_scenarios: Callable[[Any], None] | None = None


def _pg_relay(site: Site) -> Relay:
    parts = urlsplit(site.database_url or "")
    if not parts.hostname or not parts.port:
        raise HarnessError(f"a PostgreSQL fault needs a server on TCP; this one is at {parts.netloc or parts.path}")
    relay = Relay(parts.hostname, parts.port, protocol="postgres").start()
    site.database_url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{relay.port}"))
    return relay


def _redis_relay(site: Site) -> Relay:
    host, port = site.redis_address
    relay = Relay(host, port, protocol="redis").start()
    site.redis_address = (relay.host, relay.port)
    return relay


def _alert_sink(site: Site) -> AlertSink:
    # both of LiteLLM's webhook settings point at it; the scenario's `alerting:` picks which is used
    sink = AlertSink().start()
    site.environment.update(SLACK_WEBHOOK_URL=sink.url("slack"), WEBHOOK_URL=sink.url("webhook"))
    return sink


class RedisData:
    """The deployment's Redis database, whatever the server (a `url` one too)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.log = FaultLog()

    @property
    def events(self) -> list[FaultEvent]:
        return self.log.events

    def flush(self) -> FaultEvent:
        """FLUSHDB of the harness's database, logged as an instant `redis_flush`."""
        self.server.flush()
        return self.log.begin(f"redis db {self.server.db}", "redis_flush", instant=True)

    def close(self) -> None:
        """Nothing runs and no fault stays open."""


class ReplicaStopper:
    """Stops and restarts replicas; a stop is a fault (`stop_term`, `stop_kill`) until the replica is back."""

    def __init__(self, fleet: Replicas) -> None:
        self.fleet = fleet
        self.log = FaultLog()
        self._down: dict[str, FaultEvent] = {}

    @property
    def events(self) -> list[FaultEvent]:
        return self.log.events

    def _replica(self, name: str) -> Any:
        if name not in self.fleet.replicas:
            raise HarnessError(f"the deployment has no replica {name!r}")
        return self.fleet.replicas[name]

    def stop(self, name: str, how: str) -> tuple[str, FaultEvent]:
        """SIGTERM (`term`) or SIGKILL (`kill`) the replica: ("terminated"|"killed"|"gone", its fault)."""
        replica = self._replica(name)
        event = self.log.begin(f"replica {name} pid {replica.pid}", f"stop_{how}")
        self._down[name] = event
        return replica.stop(how=how), event

    def start(self, name: str) -> Any:
        """Start a stopped replica again (harness.proxy.fleet.Fleet.restart); ends its stop fault."""
        self._replica(name)
        replica = self.fleet.restart(name)
        self.log.finish(self._down.pop(name, None), "restarted")
        return replica

    def close(self) -> None:
        for event in self._down.values():
            self.log.finish(event, "stopped")


INJECTORS: dict[str, Injector] = {
    "pg_relay": Injector(_pg_relay, before_start=True, close=Relay.stop),
    # the replicas always reach Redis through it, so a step can fault the link at any time
    "redis_relay": Injector(_redis_relay, needs_redis=True, before_start=True, always=True, close=Relay.stop),
    "redis": Injector(lambda site: RedisData(site.redis), needs_redis=True),
    "redis_process": Injector(lambda site: site.redis.process_control(), needs_redis=True),
    "replicas": Injector(lambda site: ReplicaStopper(site.fleet)),
    "alert_sink": Injector(_alert_sink, before_start=True, close=AlertSink.stop, between_scenarios=AlertSink.clear),
}


def front_injectors(requires: Iterable[str], has_redis: bool) -> list[str]:
    """The injectors a deployment is built with (before its replicas start), in registry order."""
    wanted = set(requires)
    return [name for name, spec in INJECTORS.items()
            if spec.before_start and (spec.always or name in wanted) and (has_redis or not spec.needs_redis)]


class Faults:
    """One deployment's fault injectors, by name, and the faults they logged."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._built: dict[str, Any] = {}

    def build_front(self, requires: Iterable[str]) -> None:
        """The injectors in front of the servers, before the replicas exist (closed again if one fails)."""
        try:
            for name in front_injectors(requires, self.site.redis is not None):
                self._built[name] = INJECTORS[name].build(self.site)
        except BaseException:
            self.close()
            raise

    def get(self, name: str) -> Any:
        """The `name` injector, built on first use unless it had to exist before the replicas started."""
        if name not in self._built:
            spec = INJECTORS.get(name)
            if spec is None:
                raise HarnessError(f"no fault injector `{name}`; injectors: {', '.join(INJECTORS)}")
            if spec.before_start:
                raise HarnessError(f"the deployment was started without the `{name}` injector "
                                   "(a step that uses it must declare it in `requires`)")
            self._built[name] = spec.build(self.site)
        return self._built[name]

    def events(self) -> list[FaultEvent]:
        """Every fault injected into the deployment, in the order they started."""
        return sorted((e for target in self._built.values() for e in target.events), key=lambda e: e.started_at)

    def network_modes(self) -> list[str]:
        """The modes of the relays not passing traffic through untouched (a network fault in force)."""
        return [t.mode for t in self._built.values() if isinstance(t, Relay) and t.mode != "pass"]

    def between_scenarios(self) -> None:
        """The injectors that keep records forget them (the next scenario on this deployment starts clean)."""
        for name, target in self._built.items():
            if INJECTORS[name].between_scenarios is not None:
                INJECTORS[name].between_scenarios(target)

    def close(self, *, front: bool | None = None) -> None:
        """Close the injectors (`front`: only those in front of the servers, or only the others)."""
        for name, target in list(self._built.items()):
            if front is None or INJECTORS[name].before_start == front:
                INJECTORS[name].close(target)
