"""One scenario's steps on one live deployment: the context every step's `run(ctx)` receives
(the `harness.steps.base.StepContext` steps are written against; tests/test_step_context.py
checks it implements every member).

Expectation failures are recorded and the scenario goes on, so a report shows every broken
expectation; an error (the harness could not do a step) stops it.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable

import requests

from .. import assertions
from ..errors import HarnessError
from ..names import EntityKind
from ..proxy.control import Route
from ..proxy.entities import KINDS, Database, Entity, EntityState, parse_time, token_hash
from ..proxy.fleet import Fleet
from ..scenario.model import PlacedStep, Scenario
from ..steps import references
from ..steps.expectations import AuthView, own_counter
from ..steps.interleavings import Pause
from ..steps.jobs import RunResetJob
from ..steps.base import Budget, Expectation, Skipped, Step, StepContext, Unsupported, licence_gate, no_row
from ..verdicts import StepStatus
from .results import RunConfig, StepResult


class ScenarioRun(StepContext):
    """One scenario's steps on one live proxy; the context every step's `run(ctx)` receives."""

    def __init__(self, scenario: Scenario, fleet: Fleet, db: Database, config: RunConfig = RunConfig(),
                 on_step: Callable[[StepResult], None] | None = None, readings: bool = False,
                 progress: Callable[[str], None] | None = None):
        self.scenario = scenario
        self.config = config
        # a bare target (one proxy started elsewhere) is a fleet of one
        self.fleet = fleet if isinstance(fleet, Fleet) else Fleet({"a": fleet})
        #: what the current step talks to: the replicas its `on:` names (all by default)
        self.target = self.fleet.scope(None)
        self.db = db
        #: told each step's result as it ends (the engine's after_step hook)
        self.on_step = on_step or (lambda _result: None)
        #: whether each step's result gets the clock and every entity's spend (Hooks.wants_readings)
        self.readings = readings
        #: where a long step's progress lines go (the session's detail line)
        self._progress = progress or (lambda _message: None)
        self.entities: dict[str, Entity] = {}
        self.before_reset: dict[str, datetime | None] = {}
        self.reset_job_ran = False
        self._step: Step | None = None
        self._secrets: list[str] = []
        self._routes: dict[tuple[str, str], Route] = {}
        #: the first harness error of `run` ("line N: ...")
        self._error: str | None = None

    # -- driving ----------------------------------------------------------------------------

    def run(self) -> tuple[list[StepResult], str | None]:
        results = [
            StepResult(p.index, p.line, p.source, p.step.describe()) for p in self.scenario.steps
        ]
        try:
            self._run(results)
        finally:
            # calls still held (never released, or the scenario failed or was interrupted
            # first) end with the scenario: released and joined, bounded (harness.proxy.holds)
            self.fleet.holds.close()
        return results, self._error

    def _run(self, results: list[StepResult]) -> None:
        self._error = None
        for placed, result in zip(self.scenario.steps, results):
            started = time.perf_counter()
            mark = len(self.fleet.served)
            try:
                detail = self.execute(placed)
                result.status, result.message = StepStatus.PASSED, detail or ""
            except Expectation as exc:
                result.status, result.message = StepStatus.FAILED, str(exc)
                result.expected, result.actual = exc.expected, exc.actual
                if exc.entity is not None:
                    result.rows = {exc.entity.name: self.db.row(exc.entity)}
            except Skipped as exc:
                result.status, result.message = StepStatus.SKIPPED, str(exc)
            except Unsupported as exc:
                result.status, result.message = StepStatus.UNSUPPORTED, str(exc)
            except HarnessError as exc:
                result.status, result.message = StepStatus.ERROR, str(exc)
                self._error = f"line {placed.line}: {exc}"
            result.seconds = time.perf_counter() - started
            result.served = self.fleet.served_since(mark)
            if self.readings:
                result.readings = self.take_readings()
            self.on_step(result)
            if result.status.stops_scenario:
                break
        # pauses first: a job held at a barrier can only end once it is let go
        leftover = [problem for problem in (self._release_pauses(), self._collect_started_jobs()) if problem]
        if leftover and self._error is None:
            self._error = f"at the scenario's end: {'; '.join(leftover)}"

    def _release_pauses(self) -> str | None:
        """Resume every pause no step resumed; which those were (a scenario's mistake), or None."""
        if not any(isinstance(p.step, Pause) for p in self.scenario.steps):
            return None
        try:
            left = [(replica, r) for replica, done in self.fleet.scope(None).control.resume(None).items() for r in done]
        except HarnessError as exc:
            return f"could not release the pauses: {exc}"
        return "; ".join(f"pause {r.name} on {replica} was never resumed" + (
            " (it let its calls go by itself after its timeout)" if r.timed_out else "")
            for replica, r in left) or None

    #: how long the scenario's end waits for jobs started with `wait: false` before cancelling them
    STARTED_JOBS_WAIT_S = 30.0

    def _collect_started_jobs(self) -> str | None:
        """Await (bounded, then cancel) the jobs `run_reset_job: {wait: false}` started that no
        step awaited; what went wrong with them, or None. Nothing started outlives the scenario."""
        if not any(isinstance(p.step, RunResetJob) and not p.step.wait for p in self.scenario.steps):
            return None
        try:
            answers = self.fleet.scope(None).control.wait_jobs(self.STARTED_JOBS_WAIT_S, cancel=True)
        except HarnessError as exc:
            return f"could not collect the started jobs: {exc}"
        problems = [f"{name}: {error}" for name, answer in answers.items() for error in answer.errors]
        problems += [f"{name}: {job} still running after {self.STARTED_JOBS_WAIT_S:g}s, cancelled"
                     for name, answer in answers.items() for job in answer.still_running]
        return "started job(s) did not finish cleanly: " + "; ".join(problems) if problems else None

    def take_readings(self) -> dict[str, Any]:
        """The deployment's clock and each entity's spend and max_budget as the database has them now."""
        spend: dict[str, dict[str, Any]] = {}
        for name, entity in self.entities.items():
            try:
                row = self.db.row(entity) or {}
            except Exception:  # noqa: BLE001 - a reading for a picture; the steps report real failures
                continue
            spend[name] = {"kind": getattr(entity.kind, "value", str(entity.kind)), "spend": row.get("spend"),
                           "max_budget": row.get("max_budget")}
            if len(self.fleet.replicas) > 1 or self.target.redis is not None:
                spend[name]["counters"] = self._counters(entity)
        clock = self.fleet.clock_at
        # "real": when the step ended, to place the fault events (logged in real time) among the steps
        return {"clock": clock.isoformat() if clock else None, "real": datetime.now(timezone.utc).isoformat(),
                "spend": spend}

    def _counters(self, entity: Entity) -> dict[str, float | None]:
        """The entity's spend counter on each replica ("replica a") and in Redis ("redis")."""
        try:
            view = AuthView.read(self, entity)
        except Exception:  # noqa: BLE001 - a stopped replica or a Redis fault: no counters for this step
            return {}
        out = {f"replica {name}": replica.counter()[1] for name, replica in view.replicas.items()}
        if view.redis is not None and not view.redis_down:
            out["redis"] = own_counter(view.redis, entity)[1]
        return out

    def execute(self, placed: PlacedStep | Step) -> str | None:
        step = placed.step if isinstance(placed, PlacedStep) else placed
        if isinstance(placed, PlacedStep) and placed.refs:
            step = references.resolve(step, self.field_value)
        self.target, self._step = self.fleet.scope(step.on), step
        try:
            return step.run(self)
        finally:
            self.target, self._step = self.fleet.scope(None), None

    # -- what steps use -----------------------------------------------------------------------

    def entity(self, name: str | None) -> Entity | None:
        if name is not None and name not in self.entities:
            raise Skipped(f"`{name}` was not created (its create step failed)")
        return None if name is None else self.entities[name]

    def id_of(self, name: str | None) -> str | None:
        entity = self.entity(name)
        return None if entity is None else entity.id

    def adopt(self, kind: EntityKind, name: str, entity_id: str) -> Entity:
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
        return references.value_of(entity, field, self._row)

    def _row(self, entity: Entity) -> dict[str, Any]:
        row = self.db.row(entity)
        if row is None:  # `${m1.budget_id}` of a membership the release never wrote: not None in a request
            raise no_row(entity)
        return row

    def error_text(self, resp: requests.Response) -> str:
        return _error_text(resp)

    def require_route(self, method: str, path: str, fields: list[str] | None = None) -> Route:
        """Unsupported unless the release's app has the route (and its request model takes `fields`)."""
        key = (method, path)
        if key not in self._routes:
            self._routes[key] = self.target.control.route(method, path)
        route = self._routes[key]
        if not route.exists:
            raise Unsupported(f"this release has no {method} {path} endpoint")
        missing = [f for f in fields or [] if route.fields is not None and f not in route.fields]
        if missing:
            raise Unsupported(f"this release's {method} {path} takes no {', '.join(f'`{m}`' for m in missing)}")
        return route

    def injector(self, name: str) -> Any:
        """The deployment's `name` fault injector; the running step must declare it (`requires`),
        so that the loader has checked it and the deployment was built with it."""
        if self._step is None or name not in type(self._step).requires:
            action = self._step.action if self._step is not None else "(no step)"
            raise HarnessError(f"step `{action}` uses the `{name}` injector without declaring it in `requires`")
        return self.fleet.faults.get(name)

    def network_faults(self) -> list[str]:
        return self.fleet.faults.network_modes()

    def progress(self, message: str) -> None:
        self._progress(message)

    def spoil_deployment(self, why: str) -> None:
        self.fleet.spoiled = why

    def answer(self, method: str, path: str, resp: requests.Response) -> str:
        """A management call's answer: a licence refusal -> unsupported; 5xx or another refusal
        (a 401/403 without the licence text included) -> failed step."""
        licence_gate(f"{method} {path}", resp)
        if not resp.ok:
            raise Expectation(f"{method} {path} answered {resp.status_code}: {_error_text(resp)}",
                              expected="2xx", actual=resp.status_code)
        return f"{method} {path} -> {resp.status_code}"

    def create(self, step: Budget, kind: EntityKind, body: dict[str, Any]) -> Entity:
        spec = KINDS[kind]
        if getattr(step, "budget_limits", None) is not None:
            self.require_route("POST", spec.create_path, fields=["budget_limits"])
        payload = {k: v for k, v in {**body, **step.budget_body(), **step.extra}.items() if v not in (None, [])}
        resp = self.target.api("POST", spec.create_path, json=payload)
        licence_gate(spec.create_path, resp)
        if resp.status_code in (404, 405):  # the release has no such endpoint
            raise Unsupported(f"{spec.create_path} answered {resp.status_code}: {_error_text(resp)}")
        if resp.status_code >= 500 or resp.status_code in (401, 403):
            # the proxy broke on, or refused, a valid request from the master key: a finding, not a harness fault
            raise Expectation(
                f"{spec.create_path} answered {resp.status_code}: {_error_text(resp)}",
                expected="2xx", actual=resp.status_code,
            )
        if not resp.ok:
            raise HarnessError(f"{spec.create_path} answered {resp.status_code}: {_error_text(resp)}")
        data = resp.json()
        if kind == "key":
            secret = data["key"]
            entity = Entity(kind, step.name, token_hash(secret), secret=secret)
        else:
            entity = Entity(kind, step.name, str(data.get(spec.id_field) or step.name))
        self.entities[step.name] = entity
        return entity

    def api_state(self, entity: Entity) -> EntityState:
        spec = KINDS[entity.kind]
        if spec.info_path is None:
            raise HarnessError(f"the proxy has no info endpoint for a {entity.kind}: read it with `source: db`")
        value = entity.secret if entity.kind == "key" else entity.id
        resp = self.target.api("GET", spec.info_path, params={spec.info_param: value})
        licence_gate(spec.info_path, resp)
        if resp.status_code in (404, 405):  # 405: before 1.6x some info endpoints were POST-only
            raise Unsupported(f"{spec.info_path} answered {resp.status_code}: {_error_text(resp)}")
        if resp.status_code in (401, 403):  # the master key refused a reading: a finding
            raise Expectation(f"{spec.info_path} answered {resp.status_code}: {_error_text(resp)}",
                              expected="2xx", actual=resp.status_code, entity=entity)
        if not resp.ok:
            raise HarnessError(f"{spec.info_path} answered {resp.status_code}: {_error_text(resp)}")
        spend, reset_at = spec.from_info(resp.json())
        db_state = self.db.state(entity)
        if reset_at is None and db_state is not None:
            # some releases leave budget_reset_at out of the info response (1.82.3's org info)
            reset_at = db_state.budget_reset_at
        return EntityState(None if spend is None else float(spend), parse_time(reset_at))


def _error_text(resp) -> str:
    return assertions.classify(resp).message[:300] or resp.text[:300]


