"""A deployment: the scenario's named proxy replicas on one database, and the Redis they share.

    fleet = Fleet.build(zygote, database_url, scenario.deployment, scenario.proxy, run_dir, redis=server,
                        requires=scenario.requires)
    fleet.start(timeout)              # every replica forked from the release's zygote, in parallel
    fleet.scope("b").chat(...)        # `on: b`; fleet.scope(None) spreads requests by the routing policy
    fleet.scope(None).control.settle()   # the agent's operations, on the replicas they concern
    fleet.served_since(mark)          # which replica served each request
    fleet.stop()

The replicas share the database and the master key, as a fleet behind a load balancer does;
each has its own port, config file, log and in-memory caches. What fault steps act on are the
deployment's injectors (harness.faults.injectors), built from the steps' `requires`: when the
deployment has Redis, the proxies reach it through a loopback relay, so a scenario can put
latency, timeouts or failed commands between them. One clock: `freeze` and `advance` go to
every replica, and `advance` also moves the Redis keys' TTLs (harness.redis.clock).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from ..errors import HarnessError
from ..faults.events import FaultEvent
from ..faults.injectors import Faults, Site
from .control import Answers, ProxyControl, Reach
from .holds import HeldCalls
from .proxy import ProxyTarget
from .settings import Deployment, ProxySettings


def replica_settings(base: ProxySettings, deployment: Deployment, name: str, redis_wiring: dict) -> ProxySettings:
    """The scenario's `proxy:` settings, then how the proxy finds Redis, then the replica's own."""
    own = deployment.replicas[name]
    litellm_settings = {**base.litellm_settings, **redis_wiring.get("litellm_settings", {}), **own.litellm_settings}
    wired_cache = redis_wiring.get("litellm_settings", {}).get("cache_params")
    if wired_cache is not None:
        # the scenario's cache_params tune the wired Redis client (socket_timeout, ...) rather than
        # replace where it is
        own_cache = {**base.litellm_settings.get("cache_params", {}), **own.litellm_settings.get("cache_params", {})}
        litellm_settings["cache_params"] = {**wired_cache, **{
            k: v for k, v in own_cache.items() if k not in ("type", "host", "port", "password", "db", "username")}}
    return base.model_copy(update={
        "general_settings": {**base.general_settings, **redis_wiring.get("general_settings", {}), **own.general_settings},
        "litellm_settings": litellm_settings,
        "environment": {**base.environment, **redis_wiring.get("environment", {}), **own.environment},
    })


def redis_wiring(via: str, redis, address: tuple[str, int]) -> dict:
    """The settings that point a proxy at Redis (at `address`: its relay) the way `via` says."""
    from ..redis import wiring

    args = (*address, redis.password, redis.db, redis.username)
    if via == "cache":
        return {"litellm_settings": wiring.cache_settings(*args)}
    if via == "coordination":
        return {"general_settings": wiring.coordination_settings(*args)}
    if via == "env":
        return {"environment": wiring.redis_env(*args)}
    return {}


class Fleet:
    def __init__(self, replicas: dict[str, Any], deployment: Deployment | None = None, redis=None,
                 faults: Faults | None = None):
        """`replicas` by name, not started yet (or started elsewhere: a unit test's fakes)."""
        self.replicas = dict(replicas)
        self.deployment = deployment or Deployment(replicas=list(replicas))
        self.first = next(iter(self.replicas.values()))
        self.redis = redis
        #: what fault steps act on, by name (steps reach them through their context's `injector`)
        self.faults = faults or Faults(Site(redis=redis if self.deployment.redis != "none" else None))
        self.faults.site.fleet = self
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.served: list[str] = []
        #: the deployment's frozen clock, to bring a restarted replica onto it
        self.clock_at: datetime | None = None
        #: calls `spend: {hold}` left waiting at the fake provider (harness.proxy.holds)
        self.holds = HeldCalls()
        #: why the next scenario must not reuse this deployment (a step left work running in it)
        self.spoiled: str | None = None

    @classmethod
    def build(cls, zygote, database_url: str, deployment: Deployment, settings: ProxySettings, run_dir: Path,
              operator=None, redis=None, requires: Iterable[str] = ()) -> "Fleet":
        """The deployment's replicas as forks of `zygote`, behind the injectors `requires` names
        that sit in front of a server (and the Redis relay of a deployment with Redis)."""
        if deployment.redis != "none" and redis is None:
            raise HarnessError("the deployment uses Redis, but no Redis server was started")
        site = Site(database_url, redis if deployment.redis != "none" else None)
        faults = Faults(site)
        faults.build_front(requires)
        wiring = redis_wiring(deployment.redis, redis, site.redis_address) if site.redis is not None else {}
        if site.environment:
            wiring = {**wiring, "environment": {**site.environment, **wiring.get("environment", {})}}
        master_key, token = "sk-harness-" + secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        replicas = {
            name: ProxyTarget(zygote, site.database_url, replica_settings(settings, deployment, name, wiring),
                              run_dir / name if len(deployment.replicas) > 1 else run_dir, operator,
                              name=name, master_key=master_key, control_token=token)
            for name in deployment.names
        }
        return cls(replicas, deployment, redis=redis, faults=faults)

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
            replica.control.freeze(self.clock_at)
        return replica

    def fault_events(self) -> list[FaultEvent]:
        """Every fault injected into this deployment, in the order they started."""
        return self.faults.events()

    def stop(self, how: str = "term") -> None:
        """`how="kill"`: SIGKILL at once, for a deployment nothing reads again (its database is dropped next)."""
        self.holds.close()
        # open faults end (a Redis left down comes back), then the replicas, then what they talked through
        self.faults.close(front=False)
        # side by side: each takes 0.5-0.9 s to shut down after its SIGTERM (1.85.0)
        with ThreadPoolExecutor(max_workers=len(self.replicas)) as pool:
            list(pool.map(lambda replica: replica.stop(how), self.replicas.values()))
        self.faults.close(front=True)

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

    Requests go to one replica each, by the deployment's routing policy; the agent's operations
    go where their reach says (harness.proxy.control.Reach): jobs, settle, resets and views to
    every running replica of the scope, the clock to every running replica whatever the scope."""

    def __init__(self, fleet: Fleet, names: list[str]):
        self.fleet, self.names = fleet, names
        self.control: ProxyControl = _ScopeControl(self)

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

    @property
    def redis(self):
        """The deployment's Redis server (harness.redis), None when it has none."""
        return self.fleet.redis if self.fleet.deployment.redis != "none" else None

    @property
    def holds(self) -> HeldCalls:
        return self.fleet.holds

    def replica(self) -> ProxyTarget:
        """The replica the deployment's routing sends the next request to."""
        return self.fleet.route(self.names)

    def api(self, method: str, path: str, **kwargs: Any):
        return self.fleet.route(self.names).api(method, path, **kwargs)

    def chat(self, key: str, end_user: str | None = None, **kwargs: Any):
        return self.fleet.route(self.names).chat(key, end_user, **kwargs)

    def _running(self, reach: Reach) -> list[tuple[str, ProxyTarget]]:
        """The running replicas `reach` names, in the deployment's order."""
        names = self.names if reach is Reach.EACH else self.fleet.deployment.names
        running = [(n, self.fleet.replicas[n]) for n in names if _alive(self.fleet.replicas[n])]
        if not running:
            raise HarnessError(f"no running replica among {', '.join(names)} (stopped by a fault step?)")
        return running[:1] if reach is Reach.ANY else running

    def _send(self, op: str, body: dict[str, Any], reach: Reach) -> Answers:
        answers: Answers = {}
        for name, replica in self._running(reach):
            (answers[name],) = replica.control.send(op, body, reach).values()
        return answers


class _ScopeControl(ProxyControl):
    """A scope's operations: each goes to the replicas of its reach; the clock is the deployment's."""

    def __init__(self, scope: Scope):
        super().__init__(scope._send)
        self.scope = scope

    def freeze(self, at: datetime | None = None) -> datetime:
        # `now` is read once, on the first replica; the others freeze at that instant
        (_name, lead), *others = self.scope._running(Reach.ALL)
        now = lead.control.freeze(at)
        for _name, replica in others:
            replica.control.freeze(now)
        self.scope.fleet.clock_at = now
        return now

    def advance(self, seconds: float) -> datetime:
        now = super().advance(seconds)
        fleet = self.scope.fleet
        fleet.clock_at = now
        if fleet.redis is not None:
            from ..redis.clock import advance_ttls

            advance_ttls(fleet.redis, float(seconds))
        return now
