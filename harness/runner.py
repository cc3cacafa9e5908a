"""Walks a scenario's steps against a live target and decides the verdict.

`ReleaseSession` owns what one release needs (its environment, a template, database clones,
and one proxy per distinct proxy settings); `ScenarioRun` executes one scenario's steps on that
proxy. Expectation failures are recorded and the scenario goes on, so a report shows every
broken expectation; an error (the harness could not do a step) stops it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from . import assertions
from .db import Server, clone, ensure_template, reset
from .errors import HarnessError
from .releases import ReleaseEnv, ensure_release
from .releases.extras import matching_template
from .scenario.model import PlacedStep, Scenario
from .settings import runtime_dir
from .steps import references
from .steps.base import Expectation, Skipped, Step, Unsupported
from .proxy.entities import KINDS, Database, Entity, EntityState, parse_time, token_hash
from .proxy.fleet import Fleet
from .proxy.proxy import base_env, settings_key
from .proxy.zygote import Zygote

Progress = Callable[[str], None]

PASSED, REPRODUCED, UNEXPECTED_PASS, REGRESSION, ERROR, UNSUPPORTED = (
    "passed", "reproduced", "unexpected pass", "regression", "error", "unsupported",
)
#: verdicts that fail a run (CLI exit code, pytest outcome)
FAILING = {UNEXPECTED_PASS, REGRESSION, ERROR}


@dataclass(frozen=True)
class RunConfig:
    """Settings of a whole run, the same for every scenario and release (picklable: matrix
    workers get a copy)."""

    #: replaces `now` in `freeze_clock: now` (`--at`), so a scenario can be proved at an instant
    at: datetime | None = None
    #: the operator's proxy config (`--proxy-config`), under the harness's models and settings
    proxy_config: Any = None
    #: the Redis provider for deployments with Redis (`--redis`, `--redis-url`; None: $HARNESS_REDIS or auto)
    redis: str | None = None
    redis_url: str | None = None

    def describe_clock(self) -> str:
        return f"freeze_clock: now means {self.at.isoformat()} (--at)" if self.at else "freeze_clock: now means the real time"


@dataclass
class StepResult:
    index: int
    line: int
    source: str
    description: str
    status: str = "skipped"  # passed | failed | error | unsupported | skipped
    seconds: float = 0.0
    message: str = ""
    #: the replica that served each of the step's requests (deployments with several replicas)
    served: list[str] = field(default_factory=list)
    expected: Any = None
    actual: Any = None
    rows: dict[str, Any] | None = None


@dataclass
class ScenarioResult:
    scenario: Scenario
    version: str
    verdict: str
    reason: str
    steps: list[StepResult]
    seconds: float
    environment: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""
    secrets: list[str] = field(default_factory=list)
    #: the faults the scenario injected, with when each started and ended (real UTC time)
    faults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.verdict in FAILING

    @property
    def first_problem(self) -> StepResult | None:
        return next((s for s in self.steps if s.status in ("failed", "error", "unsupported")), None)


def verdict_for(scenario: Scenario, version: str, steps: list[StepResult], error: str | None) -> tuple[str, str]:
    """(verdict, one-line reason) from the step outcomes and the scenario's `affects` range."""
    expected_fail = scenario.expected_to_fail_on(version)
    affects = f"affects {scenario.meta.affects}" if scenario.meta.affects else "no affected releases"
    unsupported = next((s for s in steps if s.status == "unsupported"), None)
    if unsupported is not None:
        return UNSUPPORTED, f"line {unsupported.line}: {unsupported.message}"
    if error is not None:
        return ERROR, error
    failed = [s for s in steps if s.status == "failed"]
    if failed:
        where = f"line {failed[0].line}: {failed[0].message}"
        return (REPRODUCED if expected_fail else REGRESSION), where
    if expected_fail:
        return UNEXPECTED_PASS, f"every step passed, but the scenario {affects} includes {version}: the bug did not reproduce"
    return PASSED, f"every step passed ({affects})"


class ScenarioRun:
    """One scenario's steps on one live proxy; the context every step's `run(ctx)` receives."""

    def __init__(self, scenario: Scenario, fleet: Fleet, db: Database, progress: Progress | None = None,
                 config: RunConfig = RunConfig()):
        self.scenario = scenario
        self.config = config
        # a bare target (one proxy started elsewhere) is a fleet of one
        self.fleet = fleet if isinstance(fleet, Fleet) else Fleet({"a": fleet})
        #: what the current step talks to: the replicas its `on:` names (all by default)
        self.target = self.fleet.scope(None)
        self.db = db
        self.progress = progress or (lambda _msg: None)
        self.entities: dict[str, Entity] = {}
        self.before_reset: dict[str, datetime | None] = {}
        self.reset_job_ran = False
        self._secrets: list[str] = []
        self._routes: dict[tuple[str, str], dict[str, Any]] = {}

    # -- driving ----------------------------------------------------------------------------

    def run(self) -> tuple[list[StepResult], str | None]:
        results = [
            StepResult(p.index, p.line, p.source, p.step.describe()) for p in self.scenario.steps
        ]
        error: str | None = None
        for placed, result in zip(self.scenario.steps, results):
            started = time.perf_counter()
            mark = len(self.fleet.served)
            try:
                detail = self.execute(placed)
                result.status, result.message = "passed", detail or ""
            except Expectation as exc:
                result.status, result.message = "failed", str(exc)
                result.expected, result.actual = exc.expected, exc.actual
                if exc.entity is not None:
                    result.rows = {exc.entity.name: self.db.row(exc.entity)}
            except Skipped as exc:
                result.status, result.message = "skipped", str(exc)
            except Unsupported as exc:
                result.status, result.message = "unsupported", str(exc)
            except HarnessError as exc:
                result.status, result.message = "error", str(exc)
                error = f"line {placed.line}: {exc}"
            result.seconds = time.perf_counter() - started
            result.served = self.fleet.served_since(mark)
            served = f" [{_served(result.served)}]" if len(self.fleet.replicas) > 1 and result.served else ""
            self.progress(f"  {self._mark(result.status)} {placed.line:>3}: {placed.source}  ({result.seconds:.2f}s){served}")
            if result.status in ("error", "unsupported"):
                break
        return results, error

    @staticmethod
    def _mark(status: str) -> str:
        return {"passed": "ok  ", "failed": "FAIL", "error": "ERR ", "unsupported": "N/A ", "skipped": "skip"}.get(status, status)

    def execute(self, placed: PlacedStep | Step) -> str | None:
        step = placed.step if isinstance(placed, PlacedStep) else placed
        if isinstance(placed, PlacedStep) and placed.refs:
            step = references.resolve(step, self.field_value)
        self.target = self.fleet.scope(step.on)
        try:
            return step.run(self)
        finally:
            self.target = self.fleet.scope(None)

    # -- what steps use -----------------------------------------------------------------------

    def entity(self, name: str | None) -> Entity | None:
        if name is not None and name not in self.entities:
            raise Skipped(f"`{name}` was not created (its create step failed)")
        return None if name is None else self.entities[name]

    def id_of(self, name: str | None) -> str | None:
        entity = self.entity(name)
        return None if entity is None else entity.id

    def adopt(self, kind: str, name: str, entity_id: str) -> Entity:
        """An entity the proxy creates by itself (an end user met first in a request)."""
        entity = self.entities.get(name) or Entity(kind, name, entity_id, created_via="request")
        self.entities[name] = entity
        return entity

    def remember_secret(self, secret: str) -> None:
        self._secrets.append(secret)

    def secrets(self) -> list[str]:
        """Every virtual key the scenario saw (created, regenerated), for redaction."""
        return list(dict.fromkeys([*self._secrets, *(e.secret for e in self.entities.values() if e.secret)]))

    def field_value(self, name: str, field: str) -> Any:
        """`${name.field}`: a field of an entity created earlier (the loader checked the name and field)."""
        entity = self.entity(name)
        return references.value_of(entity, field, self.db.row)

    def error_text(self, resp) -> str:
        return _error_text(resp)

    def require_route(self, method: str, path: str, fields: list[str] | None = None) -> dict[str, Any]:
        """Unsupported unless the release's app has the route (and its request model takes `fields`)."""
        key = (method, path)
        if key not in self._routes:
            self._routes[key] = self.target.control("route", method=method, path=path)
        info = self._routes[key]
        if not info["exists"]:
            raise Unsupported(f"this release has no {method} {path} endpoint")
        missing = [f for f in fields or [] if info.get("fields") is not None and f not in info["fields"]]
        if missing:
            raise Unsupported(f"this release's {method} {path} takes no {', '.join(f'`{m}`' for m in missing)}")
        return info

    def answer(self, method: str, path: str, resp) -> str:
        """A management call's answer: licence-gated -> unsupported; 5xx or another refusal -> failed step."""
        if resp.status_code in (401, 403):
            raise Unsupported(f"{method} {path} answered {resp.status_code}: {_error_text(resp)}")
        if not resp.ok:
            raise Expectation(f"{method} {path} answered {resp.status_code}: {_error_text(resp)}",
                              expected="2xx", actual=resp.status_code)
        return f"{method} {path} -> {resp.status_code}"

    def create(self, step, kind: str, body: dict[str, Any]) -> Entity:
        spec = KINDS[kind]
        if getattr(step, "budget_limits", None) is not None:
            self.require_route("POST", spec.create_path, fields=["budget_limits"])
        payload = {k: v for k, v in {**body, **step.budget_body(), **step.extra}.items() if v not in (None, [])}
        resp = self.target.api("POST", spec.create_path, json=payload)
        if resp.status_code in (403, 404, 405):
            raise Unsupported(f"{spec.create_path} answered {resp.status_code}: {_error_text(resp)}")
        if resp.status_code >= 500:  # the proxy itself broke on a valid request: a finding, not a harness fault
            raise Expectation(
                f"{spec.create_path} answered {resp.status_code}: {_error_text(resp)}",
                expected="2xx", actual=resp.status_code,
            )
        if not resp.ok:
            if "nterprise" in _error_text(resp) or "premium" in _error_text(resp).lower():
                raise Unsupported(f"{spec.create_path} answered {resp.status_code}: {_error_text(resp)}")
            raise HarnessError(f"{spec.create_path} answered {resp.status_code}: {_error_text(resp)}")
        data = resp.json()
        if kind == "key":
            secret = data["key"]
            entity = Entity(kind, step.name, token_hash(secret), secret=secret)
        else:
            entity = Entity(kind, step.name, str(data.get(spec.id_field) or step.name))
        self.entities[step.name] = entity
        return entity

    def clock(self) -> datetime:
        return parse_time(self.target.control("clock")["now"])

    def api_state(self, entity: Entity) -> EntityState:
        spec = KINDS[entity.kind]
        if spec.info_path is None:
            raise HarnessError(f"the proxy has no info endpoint for a {entity.kind}: read it with `source: db`")
        value = entity.secret if entity.kind == "key" else entity.id
        resp = self.target.api("GET", spec.info_path, params={spec.info_param: value})
        if resp.status_code in (403, 404, 405):  # 405: before 1.6x some info endpoints were POST-only
            raise Unsupported(f"{spec.info_path} answered {resp.status_code}: {_error_text(resp)}")
        if not resp.ok:
            raise HarnessError(f"{spec.info_path} answered {resp.status_code}: {_error_text(resp)}")
        spend, reset_at = spec.from_info(resp.json())
        db_state = self.db.state(entity)
        if reset_at is None and db_state is not None:
            # some releases leave budget_reset_at out of the info response (1.82.3's org info)
            reset_at = db_state.budget_reset_at
        return EntityState(None if spend is None else float(spend), parse_time(reset_at))


def _through_relay(database) -> tuple[str, Any]:
    """The database's URL via a new loopback relay (which a PostgreSQL fault step controls)."""
    from urllib.parse import urlsplit, urlunsplit

    from .faults.relay import Relay

    parts = urlsplit(database.url)
    if not parts.hostname or not parts.port:
        raise HarnessError(f"a PostgreSQL fault needs a server on TCP; this one is at {parts.netloc or parts.path}")
    relay = Relay(parts.hostname, parts.port, protocol="tcp").start()
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{relay.port}"
    return urlunsplit(parts._replace(netloc=netloc)), relay


def _served(names: list[str]) -> str:
    """`a x2, b x3`: who served a step's requests."""
    counts = {n: names.count(n) for n in dict.fromkeys(names)}
    return "served by " + ", ".join(f"{n} x{c}" for n, c in counts.items())


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "null"


def _error_text(resp) -> str:
    return assertions.classify(resp).message[:300] or resp.text[:300]


class ReleaseSession:
    """Everything one release needs, started on first use and reused by its scenarios.

    One zygote per release (LiteLLM imported once; every proxy is a fork of it), a database
    template, and one deployment per distinct (proxy settings, deployment): its database clone
    and replicas. A Redis server is started the first time a deployment needs one, and emptied
    before every scenario that uses it. A deployment a fault step touched is not reused.
    """

    def __init__(self, version: str, server: Server, progress: Progress | None = None, start_timeout: float = 180.0,
                 config: RunConfig = RunConfig()):
        self.config = config
        self.version = version
        self.server = server
        self.progress = progress or (lambda _msg: None)
        self.start_timeout = start_timeout
        self.release: ReleaseEnv | None = None
        self.template: str | None = None
        self.zygote: Zygote | None = None
        self.redis = None
        self.fleets: dict[str, tuple[Fleet, Any, Database]] = {}
        self.dirty: set[str] = set()
        self.spoiled: set[str] = set()
        self.run_dir = runtime_dir() / "runs" / f"{version}-{uuid.uuid4().hex[:8]}"

    def environment(self, scenario: Scenario | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"litellm": self.version, "postgres": f"{self.server.kind} {self.server.version}",
                                "clock": self.config.describe_clock()}
        if self.config.at is not None:
            info["at"] = self.config.at.isoformat()
        if self.config.proxy_config is not None:
            target_notes = next((f.first.operator_notes for f, _d, _v in self.fleets.values() if f.first.operator_notes), [])
            info["proxy_config"] = f"{self.config.proxy_config.path}: every setting kept" + (
                "; " + "; ".join(target_notes) if target_notes else "")
        if scenario is not None and (len(scenario.deployment.replicas) > 1 or scenario.deployment.redis != "none"):
            d = scenario.deployment
            info["deployment"] = f"replicas {', '.join(d.names)} (routing {d.routing}); Redis " + (
                f"via {d.redis}: {self.redis.kind} {self.redis.version}" if d.redis != "none" and self.redis else "none")
        if self.release is not None:
            info.update(
                prisma=self.release.prisma_version,
                litellm_proxy_extras=self.release.extras_version,
                prisma_engine=self.release.engine.description,
            )
        return info

    @staticmethod
    def deployment_key(scenario: Scenario) -> str:
        """Scenarios with the same key share one deployment (its database clone and replicas)."""
        return settings_key(scenario.proxy) + "-" + hashlib.sha256(
            json.dumps([scenario.deployment.model_dump(), scenario.needs_pg_relay], sort_keys=True).encode()).hexdigest()[:8]

    def _ensure_release(self) -> None:
        if self.release is None:
            self.release = ensure_release(self.version, progress=self.progress)
        if self.template is None:
            self.progress(f"preparing the database template on {self.server.kind} PostgreSQL")
            release = self.release
            self.release, self.template = matching_template(
                release,
                lambda migrations: ensure_template(self.server, migrations, release.schema_prisma, progress=self.progress),
                self.progress,
            )
        if self.zygote is None:
            self.progress(f"importing litellm {self.version} once (every proxy of this release is a fork of it)")
            zygote = Zygote(self.release, base_env(self.release), self.run_dir / "zygote")
            zygote.start(timeout=self.start_timeout, progress=self.progress)
            self.zygote = zygote
            self.progress(f"litellm {self.version} imported in {zygote.import_s:.1f}s")

    def _ensure_redis(self) -> None:
        if self.redis is None:
            from .redis import start_redis

            self.redis = start_redis(self.config.redis, self.config.redis_url)
            self.progress(f"Redis: {self.redis.kind} {self.redis.version} ({self.redis.reason})")

    def _fleet(self, scenario: Scenario) -> tuple[Fleet, Database]:
        for spoiled in list(self.spoiled):
            self._discard(spoiled)
        key = self.deployment_key(scenario)
        if scenario.deployment.redis != "none":
            self._ensure_redis()
            self.redis.flush()  # each scenario starts on a clean Redis
        if key in self.fleets:
            fleet, database, view = self.fleets[key]
            if key in self.dirty:
                marks = [time.perf_counter()]
                # drain what the previous scenario left queued, empty the tables, then the caches
                fleet.scope(None).control("settle")
                marks.append(time.perf_counter())
                fleet.scope(None).control("run-job", job="update_spend_job")
                marks.append(time.perf_counter())
                reset(database)
                marks.append(time.perf_counter())
                fleet.scope(None).control("reset")
                if fleet.redis is not None:
                    fleet.redis.flush()  # what the flush above wrote
                marks.append(time.perf_counter())
                parts = "/".join(f"{b - a:.2f}" for a, b in zip(marks, marks[1:]))
                self.progress(f"reset database and proxy caches ({marks[-1] - marks[0]:.2f}s: settle/flush/tables/caches {parts})")
            return fleet, view
        self._ensure_release()
        database = clone(self.server, self.template, label=f"lh_{self.version.replace('.', '_')}")
        database_url, pg_relay = database.url, None
        if scenario.needs_pg_relay:  # a PostgreSQL fault: the replicas reach the database through a relay
            database_url, pg_relay = _through_relay(database)
        names = scenario.deployment.names
        try:
            fleet = Fleet.build(self.zygote, database_url, scenario.deployment, scenario.proxy, self.run_dir / key,
                          operator=self.config.proxy_config, redis=self.redis, pg_relay=pg_relay)
            self.progress(f"starting the litellm {self.version} proxy" + (
                f" ({len(names)} replicas: {', '.join(names)})" if len(names) > 1 else ""))
            times = fleet.start(timeout=self.start_timeout, progress=self.progress)
        except BaseException:
            if pg_relay is not None:
                pg_relay.stop()
            database.drop()
            raise
        ports = ", ".join(f"{r.name} 127.0.0.1:{r.port}" for r in fleet.replicas.values())
        self.progress(f"proxy up ({ports}) in {max(times):.1f}s")
        view = Database(database.url)
        self.fleets[key] = (fleet, database, view)
        return fleet, view

    def run(self, scenario: Scenario) -> ScenarioResult:
        started = time.perf_counter()
        steps: list[StepResult] = []
        fleet: Fleet | None = None
        scenario_run: ScenarioRun | None = None
        try:
            fleet, view = self._fleet(scenario)
            self.dirty.add(self.deployment_key(scenario))
            scenario_run = ScenarioRun(scenario, fleet, view, self.progress, self.config)
            steps, error = scenario_run.run()
        except HarnessError as exc:
            error = str(exc)
        # the virtual keys the scenario created or regenerated are secrets too (reports and bundles redact them)
        keys = scenario_run.secrets() if scenario_run is not None else []
        verdict, reason = verdict_for(scenario, self.version, steps, error)
        result = ScenarioResult(
            scenario=scenario,
            version=self.version,
            verdict=verdict,
            reason=reason,
            steps=steps,
            seconds=time.perf_counter() - started,
            environment=self.environment(scenario),
            log_tail=fleet.log_tail(40) if fleet is not None else "",
            secrets=(fleet.secrets() if fleet is not None else []) + keys,
            faults=[e.as_dict() for e in fleet.fault_events()] if fleet is not None else [],
        )
        if fleet is not None and (result.faults or not fleet.alive):
            # a fault's after-effects must not leak into the next scenario (discarded then, so
            # `on_result` can still read this one's database rows)
            self.spoiled.add(self.deployment_key(scenario))
        return result

    def _discard(self, key: str) -> None:
        fleet, database, view = self.fleets.pop(key)
        self.dirty.discard(key)
        self.spoiled.discard(key)
        view.close()
        fleet.stop()
        database.drop()

    def close(self) -> None:
        for key in list(self.fleets):
            self._discard(key)
        if self.zygote is not None:
            self.zygote.stop()
            self.zygote = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def __enter__(self) -> "ReleaseSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_matrix(
    scenarios: list[Scenario],
    versions: list[str],
    server: Server,
    progress: Progress | None = None,
    on_result: Callable[[ScenarioResult, ReleaseSession], None] | None = None,
    config: RunConfig = RunConfig(),
) -> list[ScenarioResult]:
    """Every scenario on every release; scenarios of one release share its proxies.

    `on_result(result, session)` runs after each scenario, while its proxy and database are
    still up (bundles read the database rows there)."""
    results = []
    for version in versions:
        with ReleaseSession(version, server, progress, config=config) as session:
            for scenario in scenarios:
                if progress:
                    progress(f"[{version}] {scenario.name} ({scenario.path})")
                result = session.run(scenario)
                results.append(result)
                if on_result:
                    on_result(result, session)
    return results
