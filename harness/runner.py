"""Walks a scenario's steps against a live target and decides the verdict.

`ReleaseSession` owns what one release needs (its environment, a template, database clones,
and one proxy per distinct proxy settings); `ScenarioRun` executes one scenario's steps on that
proxy. Expectation failures are recorded and the scenario goes on, so a report shows every
broken expectation; an error (the harness could not do a step) stops it.
"""

from __future__ import annotations

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
from .scenario.model import (
    AddTeamMember,
    AdvanceClock,
    ApiCall,
    CreateBudget,
    CreateEndUser,
    CreateKey,
    CreateOrganization,
    CreateTeam,
    CreateUser,
    ExpectRequest,
    ExpectState,
    FlushSpend,
    FreezeClock,
    RunResetJob,
    Scenario,
    SetState,
    Spend,
    Step,
    parse_instant,
)
from .scenario.durations import parse_span
from .settings import runtime_dir
from .proxy.entities import KINDS, Database, Entity, EntityState, parse_time, token_hash
from .proxy.proxy import ProxyTarget, settings_key

Progress = Callable[[str], None]

PASSED, REPRODUCED, UNEXPECTED_PASS, REGRESSION, ERROR, UNSUPPORTED = (
    "passed", "reproduced", "unexpected pass", "regression", "error", "unsupported",
)
#: verdicts that fail a run (CLI exit code, pytest outcome)
FAILING = {UNEXPECTED_PASS, REGRESSION, ERROR}


class Expectation(Exception):
    """A step's expectation did not hold: the scenario's subject misbehaved."""

    def __init__(self, message: str, expected: Any = None, actual: Any = None, entity: Entity | None = None):
        super().__init__(message)
        self.expected, self.actual, self.entity = expected, actual, entity


class Skipped(Exception):
    """The step needs an entity whose creation failed earlier."""


class Unsupported(Exception):
    """The release cannot run this step for a reason outside the scenario (endpoint missing, licence)."""


@dataclass
class StepResult:
    index: int
    line: int
    source: str
    description: str
    status: str = "skipped"  # passed | failed | error | unsupported | skipped
    seconds: float = 0.0
    message: str = ""
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
    """One scenario's steps on one live proxy."""

    def __init__(self, scenario: Scenario, target: ProxyTarget, db: Database, progress: Progress | None = None):
        self.scenario = scenario
        self.target = target
        self.db = db
        self.progress = progress or (lambda _msg: None)
        self.entities: dict[str, Entity] = {}
        self.before_reset: dict[str, datetime | None] = {}
        self.reset_job_ran = False

    # -- driving ----------------------------------------------------------------------------

    def run(self) -> tuple[list[StepResult], str | None]:
        results = [
            StepResult(p.index, p.line, p.source, p.step.describe()) for p in self.scenario.steps
        ]
        error: str | None = None
        for placed, result in zip(self.scenario.steps, results):
            started = time.perf_counter()
            try:
                detail = self.execute(placed.step)
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
            self.progress(f"  {self._mark(result.status)} {placed.line:>3}: {placed.source}  ({result.seconds:.2f}s)")
            if result.status in ("error", "unsupported"):
                break
        return results, error

    @staticmethod
    def _mark(status: str) -> str:
        return {"passed": "ok  ", "failed": "FAIL", "error": "ERR ", "unsupported": "N/A ", "skipped": "skip"}.get(status, status)

    def execute(self, step: Step) -> str | None:
        handler = getattr(self, f"_{step.action}")
        return handler(step)

    # -- helpers ----------------------------------------------------------------------------

    def _entity(self, name: str | None) -> Entity | None:
        if name is not None and name not in self.entities:
            raise Skipped(f"`{name}` was not created (its create step failed)")
        return None if name is None else self.entities[name]

    def _id(self, name: str | None) -> str | None:
        entity = self._entity(name)
        return None if entity is None else entity.id

    def _create(self, step, kind: str, body: dict[str, Any]) -> Entity:
        spec = KINDS[kind]
        budget = {
            k: v
            for k, v in {
                "max_budget": step.max_budget,
                "soft_budget": step.soft_budget,
                "budget_duration": step.budget_duration,
            }.items()
            if v is not None
        }
        payload = {k: v for k, v in {**body, **budget, **step.extra}.items() if v not in (None, [])}
        resp = self.target.api("POST", spec.create_path, json=payload)
        if resp.status_code in (403, 404, 405):
            raise Unsupported(f"{spec.create_path} answered {resp.status_code}: {_error_text(resp)}")
        if resp.status_code >= 500:  # the proxy itself broke on a valid request: a finding, not a harness fault
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
            entity = Entity(kind, step.name, str(data[spec.id_field]))
        self.entities[step.name] = entity
        return entity

    # -- entity creation --------------------------------------------------------------------

    def _create_organization(self, step: CreateOrganization) -> str:
        if step.via != "db":
            body = {"organization_alias": step.name, "models": step.models}
            try:
                self._create(step, "organization", body)
                return "created through /organization/new"
            except Unsupported as exc:
                if step.via == "api":
                    raise
                note = str(exc)
        else:
            note = "via: db"
        org_id = self.db.insert_organization(step.name, step.max_budget, step.budget_duration, step.models)
        self.entities[step.name] = Entity("organization", step.name, org_id, created_via="db")
        return f"written into the database ({note})"

    def _create_team(self, step: CreateTeam) -> None:
        self._create(step, "team", {"team_alias": step.name, "organization_id": self._id(step.organization), "models": step.models})

    def _create_user(self, step: CreateUser) -> None:
        self._create(
            step,
            "user",
            {
                "user_id": step.name,
                "user_alias": step.name,
                "teams": [self._id(t) for t in step.teams],
                "organization_id": self._id(step.organization),
                "user_role": step.user_role,
            },
        )

    def _create_key(self, step: CreateKey) -> None:
        self._create(
            step,
            "key",
            {
                "key_alias": step.name,
                "team_id": self._id(step.team),
                "organization_id": self._id(step.organization),
                "user_id": self._id(step.user),
                "budget_id": self._id(step.budget),
                "models": step.models,
            },
        )

    def _create_end_user(self, step: CreateEndUser) -> None:
        self._create(step, "end_user", {"user_id": step.name, "budget_id": self._id(step.budget)})

    def _create_budget(self, step: CreateBudget) -> None:
        self._create(step, "budget", {"budget_id": step.name})

    def _add_team_member(self, step: AddTeamMember) -> None:
        body = {
            "team_id": self._id(step.team),
            "member": {"user_id": self._id(step.user), "role": step.role},
        }
        if step.max_budget_in_team is not None:
            body["max_budget_in_team"] = step.max_budget_in_team
        resp = self.target.api("POST", "/team/member_add", json=body)
        if not resp.ok:
            raise HarnessError(f"/team/member_add answered {resp.status_code}: {_error_text(resp)}")
        if step.name is not None:
            user_id, team_id = self._id(step.user), self._id(step.team)
            self.entities[step.name] = Entity("team_member", step.name, f"{user_id} in {team_id}", keys=(user_id, team_id))

    # -- spend, clock, jobs -----------------------------------------------------------------

    def _spend(self, step: Spend) -> str:
        key = self._entity(step.key)
        end_user = self._id(step.end_user)
        spent, calls = 0.0, 0
        limit = step.requests or 10_000
        while calls < limit and (step.until is None or spent < step.until):
            resp = self.target.chat(key.secret, end_user)
            calls += 1
            if not resp.ok:
                outcome = assertions.classify(resp)
                if outcome.is_budget_error and step.allow_rejections:
                    return f"{calls - 1} calls spent {spent:.4f}; call {calls} was rejected: {outcome.message[:120]}"
                raise Expectation(
                    f"call {calls} of `spend` was rejected ({resp.status_code}): {outcome.message[:300]}",
                    expected="accepted",
                    actual=f"{outcome.status} {outcome.type}",
                    entity=key,
                )
            spent += assertions.response_cost(resp)
            # Each call's follow-up (cost tracking, budget-reservation reconciliation) finishes
            # before the next call, as for a client pacing its calls; without this, releases
            # with budget reservations (1.84+) reject back-to-back calls at random.
            self.target.control("settle")
        return f"{calls} calls, {spent:.4f} spent"

    def _flush_spend(self, step: FlushSpend) -> str:
        still = self.target.control("settle")["still_running"]
        ran = self.target.control("run-job", job="update_spend_job")
        note = f" (tasks still running: {', '.join(still)})" if still else ""
        return f"update_spend_job ran in {ran['seconds']:.2f}s{note}"

    def _run_reset_job(self, step: RunResetJob) -> str:
        self.before_reset = {
            name: (state.budget_reset_at if (state := self.db.state(e)) else None) for name, e in self.entities.items()
        }
        self.reset_job_ran = True
        try:
            ran = self.target.control("run-job", job="reset_budget_job")
        except HarnessError as exc:
            if "scheduled no job" in str(exc):
                raise Unsupported(str(exc)) from None
            raise
        return f"reset_budget_job ran in {ran['seconds']:.2f}s"

    def _freeze_clock(self, step: FreezeClock) -> str:
        at = None if step.at == "now" else step.at
        return "clock frozen at " + self.target.control("freeze", at=at)["now"]

    def _advance_clock(self, step: AdvanceClock) -> str:
        return "clock now " + self.target.control("advance", seconds=step.delta.total_seconds())["now"]

    def _set_state(self, step: SetState) -> str:
        entity = self._entity(step.entity)
        reset_at = None
        if step.budget_reset_at not in (None, "null"):
            if step.budget_reset_at == "now" or step.budget_reset_at[:1] in "+-":
                now = parse_time(self.target.control("clock")["now"])
                offset = parse_span(step.budget_reset_at[1:]) if step.budget_reset_at != "now" else None
                reset_at = now if offset is None else (now + offset if step.budget_reset_at[0] == "+" else now - offset)
            else:
                reset_at = parse_instant(step.budget_reset_at)
        try:
            self.db.set_state(entity, step.spend, reset_at, set_reset=step.budget_reset_at is not None)
        except ValueError as exc:
            raise HarnessError(f"set_state on {entity.kind} {entity.name}: {exc}") from None
        return f"spend={step.spend}, budget_reset_at={_iso(reset_at)}"

    # -- expectations -----------------------------------------------------------------------

    def _expect_request(self, step: ExpectRequest) -> str:
        key = self._entity(step.key)
        resp = self.target.chat(key.secret, self._id(step.end_user))
        self.target.control("settle")
        outcome = assertions.classify(resp)
        assertions.check_request(outcome, step, entity=self._entity(step.key), fail=Expectation)
        return outcome.summary()

    def _expect_state(self, step: ExpectState) -> str:
        entity = self._entity(step.entity)
        readings: dict[str, EntityState] = {}
        if step.source in ("db", "both"):
            state = self.db.state(entity)
            if state is None:
                raise HarnessError(f"no database row for {entity.kind} {entity.name}")
            readings["db"] = state
        api_note = None
        if step.source == "api" or (step.source == "both" and KINDS[entity.kind].info_path is not None):
            try:
                readings["api"] = self._api_state(entity)
            except Unsupported as exc:
                # `both` asks for every reading the release offers: an info endpoint that is
                # missing or licence-gated leaves the database reading (`source: api` stays unsupported)
                if step.source == "api":
                    raise
                api_note = f"api: not read ({str(exc)[:120]})"
        now = parse_time(self.target.control("clock")["now"])
        notes = []
        for source, state in readings.items():
            assertions.check_state(
                state,
                step,
                source=source,
                clock=now,
                before_reset=self.before_reset.get(entity.name) if self.reset_job_ran else None,
                reset_job_ran=self.reset_job_ran,
                entity=entity,
                fail=Expectation,
            )
            notes.append(f"{source}: spend={state.spend}, budget_reset_at={_iso(state.budget_reset_at)}")
        if api_note:
            notes.append(api_note)
        return "; ".join(notes)

    def _api_state(self, entity: Entity) -> EntityState:
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

    def _api_call(self, step: ApiCall) -> str:
        key = self._entity(step.as_key)
        resp = self.target.api(
            step.method, step.path, key=key.secret if key else None, json=step.json_body, params=step.params or None
        )
        if step.expect_status is not None and resp.status_code != step.expect_status:
            raise Expectation(
                f"{step.method} {step.path} answered {resp.status_code}: {_error_text(resp)}",
                expected=step.expect_status,
                actual=resp.status_code,
            )
        return f"{step.method} {step.path} -> {resp.status_code}"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "null"


def _error_text(resp) -> str:
    return assertions.classify(resp).message[:300] or resp.text[:300]


class ReleaseSession:
    """Everything one release needs, started on first use and reused by its scenarios."""

    def __init__(self, version: str, server: Server, progress: Progress | None = None, start_timeout: float = 180.0):
        self.version = version
        self.server = server
        self.progress = progress or (lambda _msg: None)
        self.start_timeout = start_timeout
        self.release: ReleaseEnv | None = None
        self.template: str | None = None
        self.proxies: dict[str, tuple[ProxyTarget, Any, Database]] = {}
        self.dirty: set[str] = set()
        self.run_dir = runtime_dir() / "runs" / f"{version}-{uuid.uuid4().hex[:8]}"

    def environment(self) -> dict[str, Any]:
        info: dict[str, Any] = {"litellm": self.version, "postgres": f"{self.server.kind} {self.server.version}"}
        if self.release is not None:
            info.update(
                prisma=self.release.prisma_version,
                litellm_proxy_extras=self.release.extras_version,
                prisma_engine=self.release.engine.description,
            )
        return info

    def _proxy(self, scenario: Scenario) -> tuple[ProxyTarget, Database]:
        key = settings_key(scenario.proxy)
        if key in self.proxies:
            target, database, view = self.proxies[key]
            if key in self.dirty:
                marks = [time.perf_counter()]
                # drain what the previous scenario left queued, empty the tables, then the caches
                target.control("settle")
                marks.append(time.perf_counter())
                target.control("run-job", job="update_spend_job")
                marks.append(time.perf_counter())
                reset(database)
                marks.append(time.perf_counter())
                target.control("reset")
                marks.append(time.perf_counter())
                parts = "/".join(f"{b - a:.2f}" for a, b in zip(marks, marks[1:]))
                self.progress(f"reset database and proxy caches ({marks[-1] - marks[0]:.2f}s: settle/flush/tables/caches {parts})")
            return target, view
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
        database = clone(self.server, self.template, label=f"lh_{self.version.replace('.', '_')}")
        target = ProxyTarget(self.release, database.url, scenario.proxy, self.run_dir / key)
        self.progress(f"starting the litellm {self.version} proxy")
        try:
            target.start(timeout=self.start_timeout, progress=self.progress)
        except BaseException:
            database.drop()
            raise
        self.progress(f"proxy up on 127.0.0.1:{target.port} in {target.started_in_s:.1f}s")
        view = Database(database.url)
        self.proxies[key] = (target, database, view)
        return target, view

    def run(self, scenario: Scenario) -> ScenarioResult:
        started = time.perf_counter()
        steps: list[StepResult] = []
        target: ProxyTarget | None = None
        scenario_run: ScenarioRun | None = None
        try:
            target, view = self._proxy(scenario)
            self.dirty.add(settings_key(scenario.proxy))
            scenario_run = ScenarioRun(scenario, target, view, self.progress)
            steps, error = scenario_run.run()
        except HarnessError as exc:
            error = str(exc)
        # the virtual keys the scenario created are secrets too (reports and bundles redact them)
        keys = [e.secret for e in scenario_run.entities.values() if e.secret] if scenario_run is not None else []
        verdict, reason = verdict_for(scenario, self.version, steps, error)
        return ScenarioResult(
            scenario=scenario,
            version=self.version,
            verdict=verdict,
            reason=reason,
            steps=steps,
            seconds=time.perf_counter() - started,
            environment=self.environment(),
            log_tail=target.log_tail(40) if target is not None else "",
            secrets=(target.secrets() if target is not None else []) + keys,
        )

    def close(self) -> None:
        for target, database, view in self.proxies.values():
            view.close()
            target.stop()
            database.drop()
        self.proxies.clear()

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
) -> list[ScenarioResult]:
    """Every scenario on every release; scenarios of one release share its proxies.

    `on_result(result, session)` runs after each scenario, while its proxy and database are
    still up (bundles read the database rows there)."""
    results = []
    for version in versions:
        with ReleaseSession(version, server, progress) as session:
            for scenario in scenarios:
                if progress:
                    progress(f"[{version}] {scenario.name} ({scenario.path})")
                result = session.run(scenario)
                results.append(result)
                if on_result:
                    on_result(result, session)
    return results
