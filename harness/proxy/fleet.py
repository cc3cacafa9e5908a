"""A deployment: the scenario's named proxy replicas on one database, and the Redis they share.

    fleet = Fleet.build(zygote, database_url, scenario.deployment, scenario.proxy, run_dir, redis=server)
    fleet.start(timeout)              # every replica forked from the release's zygote, in parallel
    fleet.scope("b").chat(...)        # `on: b`; fleet.scope(None) spreads requests by the routing policy
    fleet.served_since(mark)          # which replica served each request
    fleet.stop()

The replicas share the database and the master key, as a fleet behind a load balancer does;
each has its own port, config file, log and in-memory caches. When the deployment has Redis,
the proxies reach it through a loopback relay (harness.faults.relay), so a scenario can put
latency, timeouts or failed commands between them. One clock: `freeze` and `advance` go to
every replica, and `advance` also moves the Redis keys' TTLs (harness.redis.clock).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..faults.events import FaultLog
from ..scenario.model import Deployment, ProxySettings
from .proxy import ProxyTarget

#: control operations that act on the whole deployment's clock
CLOCK_OPS = ("freeze", "advance")


def replica_settings(base: ProxySettings, deployment: Deployment, name: str, redis_wiring: dict) -> ProxySettings:
    """The scenario's `proxy:` settings, then how the proxy finds Redis, then the replica's own."""
    own = deployment.replicas[name]
    return base.model_copy(update={
        "general_settings": {**base.general_settings, **redis_wiring.get("general_settings", {}), **own.general_settings},
        "litellm_settings": {**base.litellm_settings, **redis_wiring.get("litellm_settings", {}), **own.litellm_settings},
        "environment": {**base.environment, **redis_wiring.get("environment", {}), **own.environment},
    })


def redis_wiring(via: str, redis, port: int) -> dict:
    """The settings that point a proxy at Redis (through the relay on `port`) the way `via` says."""
    from ..redis import wiring

    args = ("127.0.0.1", port, redis.password, redis.db, redis.username)
    if via == "cache":
        return {"litellm_settings": wiring.cache_settings(*args)}
    if via == "coordination":
        return {"general_settings": wiring.coordination_settings(*args)}
    if via == "env":
        return {"environment": wiring.redis_env(*args)}
    return {}


class Fleet:
    def __init__(self, replicas: dict[str, Any], deployment: Deployment | None = None, redis=None,
                 redis_relay=None, pg_relay=None):
        """`replicas` by name, not started yet (or started elsewhere: a unit test's fakes)."""
        self.replicas = dict(replicas)
        self.deployment = deployment or Deployment(replicas=list(replicas))
        self.first = next(iter(self.replicas.values()))
        self.redis, self.redis_relay, self.pg_relay = redis, redis_relay, pg_relay
        #: faults of the steps themselves (replica stops); the relays and the Redis control log theirs
        self.faults = FaultLog()
        self.redis_control = None  # harness.faults.processes.RedisControl, made on a Redis process fault
        self.down: dict[str, Any] = {}  # replica -> its open stop event
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.served: list[str] = []
        #: the deployment's frozen clock (ISO), to bring a restarted replica onto it
        self.clock_at: str | None = None

    @classmethod
    def build(cls, zygote, database_url: str, deployment: Deployment, settings: ProxySettings, run_dir: Path,
              operator=None, redis=None, pg_relay=None) -> "Fleet":
        """The deployment's replicas as forks of `zygote`, wired to `redis` through a new relay."""
        wiring: dict = {}
        redis_relay = None
        if deployment.redis != "none":
            if redis is None:
                raise HarnessError("the deployment uses Redis, but no Redis server was started")
            from ..faults.relay import Relay

            redis_relay = Relay(redis.host, redis.port, protocol="redis").start()
            wiring = redis_wiring(deployment.redis, redis, redis_relay.port)
        master_key, token = "sk-harness-" + secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        replicas = {
            name: ProxyTarget(zygote, database_url, replica_settings(settings, deployment, name, wiring),
                              run_dir / name if len(deployment.replicas) > 1 else run_dir, operator,
                              name=name, master_key=master_key, control_token=token)
            for name in deployment.names
        }
        return cls(replicas, deployment, redis=redis, redis_relay=redis_relay, pg_relay=pg_relay)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float, progress=None) -> list[float]:
        """Fork every replica and wait for all of them together; their start times (s)."""
        replicas = list(self.replicas.values())
        with ThreadPoolExecutor(max_workers=len(replicas)) as pool:
            futures = [pool.submit(r.start, timeout, progress if r is self.first else None) for r in replicas]
            errors = [f.exception() for f in futures]
        problem = next((e for e in errors if e is not None), None)
        if problem is not None:
            self.stop()
            raise problem
        return [r.started_in_s or 0.0 for r in replicas]

    def restart(self, name: str, timeout: float = 120.0) -> ProxyTarget:
        """Start a stopped replica again (a new process, empty caches) on the deployment's clock."""
        replica = self.replicas[name]
        if replica.alive:
            raise HarnessError(f"replica {name} is running: stop it first")
        replica.start(timeout)
        if self.clock_at is not None:
            replica.control("freeze", at=self.clock_at)
        return replica

    def fault_events(self) -> list:
        """Every fault injected into this deployment, in the order they started."""
        events = list(self.faults.events)
        for source in (self.redis_relay, self.pg_relay, self.redis_control):
            if source is not None:
                events += source.events
        return sorted(events, key=lambda e: e.started_at)

    def stop(self) -> None:
        for event in self.down.values():
            self.faults.finish(event, "stopped")
        if self.redis_control is not None:
            self.redis_control.close()  # a Redis left down comes back for the next scenario
        for replica in self.replicas.values():
            replica.stop()
        if self.redis_relay is not None:
            self.redis_relay.stop()
        if self.pg_relay is not None:
            self.pg_relay.stop()

    @property
    def alive(self) -> bool:
        return all(r.alive for r in self.replicas.values())

    # -- steps' view ------------------------------------------------------------------------

    def scope(self, on: str | None) -> "Scope":
        names = self.deployment.names if on in (None, "all") else [on]
        return Scope(self, names)

    def route(self, names: list[str]) -> ProxyTarget:
        """The replica that serves the next request among `names` (stopped replicas are skipped,
        as a load balancer's health check would)."""
        alive = [n for n in names if _alive(self.replicas[n])] or names
        if self.deployment.routing == "first" or len(alive) == 1:
            name = alive[0]
        else:
            with self._lock:
                name = alive[next(self._turn) % len(alive)]
        with self._lock:
            self.served.append(name)
        return self.replicas[name]

    def served_since(self, mark: int) -> list[str]:
        with self._lock:
            return self.served[mark:]

    def secrets(self) -> list[str]:
        return list(dict.fromkeys(s for r in self.replicas.values() for s in r.secrets()))

    def log_tail(self, lines: int = 40) -> str:
        if len(self.replicas) == 1:
            return self.first.log_tail(lines)
        per = max(10, lines // len(self.replicas))
        return "\n".join(f"--- replica {n} ---\n{r.log_tail(per)}" for n, r in self.replicas.items())


def _alive(target) -> bool:
    return getattr(target, "alive", True)


class Scope:
    """The replicas one step acts on, with the interface the steps use (`api`, `chat`, `control`).

    Requests go to one replica each, by the deployment's routing policy; jobs, settle and views
    run on every replica of the scope; the clock is moved on every running replica, whatever
    the scope."""

    def __init__(self, fleet: Fleet, names: list[str]):
        self.fleet, self.names = fleet, names

    @property
    def replicas(self) -> list[ProxyTarget]:
        return [self.fleet.replicas[n] for n in self.names]

    @property
    def master_key(self) -> str:
        return self.fleet.first.master_key

    @property
    def settings(self) -> ProxySettings:
        return self.fleet.first.settings

    @property
    def base_url(self) -> str:
        return self.replicas[0].base_url

    @property
    def unit_model(self) -> str:
        return self.fleet.first.unit_model

    def api(self, method: str, path: str, **kwargs: Any):
        return self.fleet.route(self.names).api(method, path, **kwargs)

    def chat(self, key: str, end_user: str | None = None, **kwargs: Any):
        return self.fleet.route(self.names).chat(key, end_user, **kwargs)

    def control(self, op: str, **body: Any) -> dict[str, Any]:
        if op in CLOCK_OPS:
            return self._clock(op, body)
        if op in ("clock", "route"):
            return self._running(self.fleet.deployment.names)[0][1].control(op, **body)
        results = [(name, r.control(op, **body)) for name, r in self._running(self.names)]
        out = dict(results[0][1])
        if len(results) > 1:
            out["replicas"] = {name: result for name, result in results}
        return out

    def each(self, op: str, **body: Any) -> dict[str, dict[str, Any]]:
        """`op` on every running replica of the scope: {name: result}."""
        return {name: r.control(op, **body) for name, r in self._running(self.names)}

    def _running(self, names: list[str]) -> list[tuple[str, ProxyTarget]]:
        running = [(n, self.fleet.replicas[n]) for n in names if _alive(self.fleet.replicas[n])]
        if not running:
            raise HarnessError(f"no running replica among {', '.join(names)} (stopped by a fault step?)")
        return running

    def _clock(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        running = [r for _n, r in self._running(self.fleet.deployment.names)]
        results = [running[0].control(op, **body)]
        # `freeze: now` is read once, on the first replica; the others freeze at that instant
        again = {"at": results[0]["now"]} if op == "freeze" else body
        results += [r.control(op, **again) for r in running[1:]]
        self.fleet.clock_at = results[0]["now"]
        if op == "advance" and self.fleet.redis is not None:
            from ..redis.clock import advance_ttls

            out = dict(results[0])
            out["redis"] = advance_ttls(self.fleet.redis, float(body["seconds"]))
            return out
        return results[0]
