"""Everything one release needs: its environment, template, zygote and deployments."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any, Callable

from ..db import Server, clone, ensure_template, reset
from ..errors import HarnessError
from ..faults.injectors import front_injectors
from ..proxy.entities import Database
from ..proxy.fleet import Fleet
from ..proxy.proxy import base_env, settings_key
from ..proxy import daemon
from ..proxy.zygote import Zygote
from ..releases import ReleaseEnv, ensure_release
from ..releases.extras import matching_template
from ..scenario.model import Scenario
from ..settings import runtime_dir
from .results import Progress, RunConfig, ScenarioResult, StepResult, verdict_for
from .scenario_run import ScenarioRun

#: tables and the columns a budget bug report needs (virtual keys, their hashes and masked
#: names are never selected); a table or column a release lacks is skipped
SNAPSHOT_COLUMNS: dict[str, tuple[str, ...]] = {
    "LiteLLM_OrganizationTable": ("organization_id", "organization_alias", "budget_id", "spend", "model_spend",
                                  "models", "created_at", "updated_at"),
    "LiteLLM_BudgetTable": ("budget_id", "max_budget", "soft_budget", "budget_duration", "budget_reset_at",
                            "created_at", "updated_at"),
    "LiteLLM_TeamTable": ("team_id", "team_alias", "organization_id", "budget_id", "spend", "max_budget",
                          "budget_duration", "budget_reset_at", "models", "blocked"),
    "LiteLLM_UserTable": ("user_id", "user_alias", "organization_id", "teams", "user_role", "spend", "max_budget",
                          "budget_duration", "budget_reset_at"),
    "LiteLLM_VerificationToken": ("key_alias", "team_id", "user_id", "organization_id", "budget_id", "spend",
                                  "max_budget", "budget_duration", "budget_reset_at", "blocked", "created_at"),
    "LiteLLM_EndUserTable": ("user_id", "alias", "budget_id", "spend", "blocked"),
    "LiteLLM_TeamMembership": ("user_id", "team_id", "budget_id", "spend"),
    "LiteLLM_OrganizationMembership": ("user_id", "organization_id", "budget_id", "user_role", "spend"),
}


def _plain(value: Any) -> Any:
    from datetime import date, datetime
    from decimal import Decimal

    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def snapshot_rows(conn) -> dict[str, Any]:
    """Budget-related rows of a scenario's database (non-empty tables only) and a spend-log summary."""
    out: dict[str, Any] = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = ANY(%s)",
            (list(SNAPSHOT_COLUMNS),),
        )
        present: dict[str, set[str]] = {}
        for row in cur.fetchall():
            values = list(row.values()) if isinstance(row, dict) else list(row)
            present.setdefault(values[0], set()).add(values[1])
        for table, columns in SNAPSHOT_COLUMNS.items():
            cols = [c for c in columns if c in present.get(table, ())]
            if not cols:
                continue
            cur.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{table}" ORDER BY 1 LIMIT 50')
            rows = cur.fetchall()
            if rows:
                out[table] = [_plain(dict(zip(cols, r.values() if isinstance(r, dict) else r))) for r in rows]
        try:
            cur.execute('SELECT count(*), coalesce(sum(spend), 0) FROM "LiteLLM_SpendLogs"')
            row = cur.fetchone()
            values = list(row.values()) if isinstance(row, dict) else list(row)
            if values[0]:
                out["LiteLLM_SpendLogs (summary)"] = {"rows": values[0], "total_spend": float(values[1])}
        except Exception:  # noqa: BLE001 - a release without the table
            pass
    return out


def deployment_key(scenario: Scenario) -> str:
    """Scenarios with the same key share one deployment (its database clone and replicas, and
    the fault injectors in front of its servers)."""
    fronts = front_injectors(scenario.requires, scenario.deployment.redis != "none")
    return settings_key(scenario.proxy) + "-" + hashlib.sha256(
        json.dumps([scenario.deployment.model_dump(), fronts], sort_keys=True).encode()).hexdigest()[:8]


class ReleaseSession:
    """Everything one release needs, started on first use and reused by its scenarios.

    One zygote per release (LiteLLM imported once; every proxy is a fork of it), a database
    template, and one deployment per distinct (proxy settings, deployment): its database clone
    and replicas. A Redis server is started the first time a deployment needs one, and emptied
    before every scenario that uses it. A deployment a fault step touched is not reused.
    """

    def __init__(self, version: str, server: Server, progress: Progress | None = None, start_timeout: float = 180.0,
                 config: RunConfig = RunConfig(), detail: Progress | None = None, release: ReleaseEnv | None = None):
        self.config = config
        self.version = version
        self.server = server
        self.progress = progress or (lambda _msg: None)
        #: lines for a verbose log only (the reset between scenarios)
        self.detail = detail or self.progress
        self.start_timeout = start_timeout
        #: the release's environment: given by the engine (which built it first), else built on first use
        self.release: ReleaseEnv | None = release
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
            env = base_env(self.release)
            self.zygote = daemon.take(self.release, env, self.progress, timeout=self.start_timeout)
            if self.zygote is not None:
                origin = self.zygote.adopted_from
                self.progress(f"litellm {self.version}: warm zygote from the daemon (pid {origin['pid']}, "
                              f"imported in {origin['import_s']:.1f}s, {origin['age_s']:.0f}s ago)")
                return
            self.progress(f"importing litellm {self.version} once (every proxy of this release is a fork of it)")
            zygote = Zygote(self.release, env, self.run_dir / "zygote")
            try:
                zygote.start(timeout=self.start_timeout, progress=self.progress)
            except BaseException:  # Ctrl-C or a failure mid-import: it reads no stdin yet, so kill it now
                zygote.stop(grace=0)
                raise
            self.zygote = zygote
            self.progress(f"litellm {self.version} imported in {zygote.import_s:.1f}s")

    def _ensure_redis(self) -> None:
        if self.redis is None:
            from ..redis import start_redis

            self.redis = start_redis(self.config.redis, self.config.redis_url)
            self.progress(f"Redis: {self.redis.kind} {self.redis.version} ({self.redis.reason})")

    def _fleet(self, scenario: Scenario, extra_requires: frozenset[str] = frozenset()) -> tuple[Fleet, Database]:
        for spoiled in list(self.spoiled):
            self._discard(spoiled)
        key = deployment_key(scenario)
        if scenario.deployment.redis != "none":
            self._ensure_redis()
            self.redis.flush()  # each scenario starts on a clean Redis
        if key in self.fleets:
            fleet, database, view = self.fleets[key]
            if key in self.dirty:
                marks = [time.perf_counter()]
                # drain what the previous scenario left queued, empty the tables, then the caches
                control = fleet.scope(None).control
                control.settle()
                marks.append(time.perf_counter())
                control.run_job("update_spend_job")
                marks.append(time.perf_counter())
                reset(database)
                marks.append(time.perf_counter())
                control.reset()
                fleet.faults.between_scenarios()
                if fleet.redis is not None:
                    fleet.redis.flush()  # what the flush above wrote
                marks.append(time.perf_counter())
                parts = "/".join(f"{b - a:.2f}" for a, b in zip(marks, marks[1:]))
                self.detail(f"reset database and proxy caches ({marks[-1] - marks[0]:.2f}s: settle/flush/tables/caches {parts})")
            return fleet, view
        self._ensure_release()
        database = clone(self.server, self.template, label=f"lh_{self.version.replace('.', '_')}")
        names = scenario.deployment.names
        fleet = None
        try:
            # the injectors the steps require in front of a server (a PostgreSQL relay) come with it
            fleet = Fleet.build(self.zygote, database.url, scenario.deployment, scenario.proxy, self.run_dir / key,
                                operator=self.config.proxy_config, redis=self.redis,
                                requires=scenario.requires | extra_requires)
            self.progress(f"starting the litellm {self.version} proxy" + (
                f" ({len(names)} replicas: {', '.join(names)})" if len(names) > 1 else ""))
            times = fleet.start(timeout=self.start_timeout, progress=self.progress)
        except BaseException:
            if fleet is not None:
                fleet.faults.close()
            database.drop()
            raise
        ports = ", ".join(f"{r.name} 127.0.0.1:{r.port}" for r in fleet.replicas.values())
        self.progress(f"proxy up ({ports}) in {max(times):.1f}s")
        view = Database(database.url)
        self.fleets[key] = (fleet, database, view)
        return fleet, view

    def rows_after(self, scenario: Scenario) -> dict[str, Any] | None:
        """The budget-related rows of the database `scenario` just ran on (before the next one
        empties it), for bug-report bundles; a failure to read them is said in them."""
        entry = self.fleets.get(deployment_key(scenario))
        if entry is None:
            return None
        try:
            return snapshot_rows(entry[2].conn)
        except Exception as exc:  # noqa: BLE001 - a snapshot must never change a verdict
            return {"error": f"could not read the database rows: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}

    def run(self, scenario: Scenario, on_step: Callable[[StepResult], None] | None = None,
            readings: bool = False) -> ScenarioResult:
        started = time.perf_counter()
        steps: list[StepResult] = []
        fleet: Fleet | None = None
        scenario_run: ScenarioRun | None = None
        try:
            fleet, view = self._fleet(scenario)
            self.dirty.add(deployment_key(scenario))
            scenario_run = ScenarioRun(scenario, fleet, view, self.config, on_step, readings, self.detail)
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
        if fleet is not None and (result.faults or not fleet.alive or fleet.spoiled):
            # a fault's after-effects must not leak into the next scenario (discarded then, so
            # `on_result` can still read this one's database rows)
            self.spoiled.add(deployment_key(scenario))
        return result

    def discard_deployment(self, scenario: Scenario) -> None:
        """The next scenario with this one's deployment starts a fresh one (this one is stopped
        first): for a caller that suspects the shared proxy, not the scenario, made a failure."""
        if deployment_key(scenario) in self.fleets:
            self.spoiled.add(deployment_key(scenario))

    def open(self, scenario: Scenario, extra_requires: frozenset[str] = frozenset()) -> ScenarioRun:
        """A live run that outlasts its scenario (`serve`): the caller executes steps on it one
        at a time (`ScenarioRun.run` for the scenario's own, `execute` for more), through the
        same context a scenario gets. Its deployment is built with the injectors `extra_requires`
        names as well, and is never reused: `close()` ends it with everything else."""
        fleet, view = self._fleet(scenario, extra_requires)
        key = deployment_key(scenario)
        self.dirty.add(key)
        self.spoiled.add(key)
        return ScenarioRun(scenario, fleet, view, self.config, progress=self.detail)

    def _discard(self, key: str, how: str = "term") -> None:
        fleet, database, view = self.fleets.pop(key)
        self.dirty.discard(key)
        self.spoiled.discard(key)
        view.close()
        fleet.stop(how)
        database.drop()

    def close(self) -> None:
        # the results are read and written: nothing asks these proxies again, so no graceful
        # shut-down (0.5-0.9 s each) before their databases are dropped
        for key in list(self.fleets):
            # what its proxies imported on their first requests, the next zygotes import up front
            next(iter(self.fleets[key][0].replicas.values())).remember_lazy_imports()
            self._discard(key, how="kill")
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
