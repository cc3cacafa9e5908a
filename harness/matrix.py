"""Scenarios x releases: which releases to run, running them (serially or in worker processes).

* Releases come from ``--litellm`` (checked against the index by the CLI) and/or ``--range``,
  resolved with ``releases.index.resolve_range(spec, cap)``. Deny-listed releases inside a range
  are not dropped silently: they become ``uninstallable`` cells with the deny-list's reason.
* A release whose environment cannot be built is one ``uninstallable`` cell per scenario, with
  the installer's one-line reason (uv's decisive line); other failures to prepare a release
  (index unreachable, a build lock timing out) are ``error`` cells: they say nothing about the
  release.
* ``jobs == 1``: one PostgreSQL server, releases one after the other, in this process.
  ``jobs > 1``: one worker PROCESS per release, at most ``jobs`` at a time; each starts its own
  database server (``harness.db.start_server``) and its proxies pick their own free ports. The
  parent prints their progress (prefixed with the release) and merges their results.
* Every cell is the runner's :class:`~harness.runner.ScenarioResult` (steps, environment,
  log tail, secrets); an uninstallable cell is one with verdict ``uninstallable`` and no steps.
  The database password of the server that ran it is added to ``secrets`` so reports redact it.
* With ``snapshot=True`` the budget-related database rows are read right after each scenario
  (before the next one empties the tables) for bug-report bundles.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from packaging.version import Version

from .errors import HarnessError
from .execution.results import ERROR, FAILING, RunConfig, ScenarioResult
from .execution.session import ReleaseSession
from .execution.session import run_matrix as runner_run_matrix
from .scenario.model import Scenario

Progress = Callable[[str], None]

UNINSTALLABLE = "uninstallable"
#: cells that earned no verdict: the release could not run the scenario at all
NO_VERDICT = {"unsupported", UNINSTALLABLE}
DEFAULT_CAP = 8

#: HarnessError texts of `ensure_release` that mean "this release cannot be installed here"
#: (as opposed to "the harness could not reach the index right now").
_UNINSTALLABLE_MARKS = (
    "cannot be installed",
    "is refused",
    "is not on the package index;",  # this release; not "litellm is not on the package index <url>"
    "has no installable wheel",
    "declares no prisma requirement",
    "no published prisma matches",
    "ships no ",
)


# --------------------------------------------------------------------------------------------
# which releases


@dataclass
class Selection:
    versions: list[str]  # to run, in version order
    refused: dict[str, str] = field(default_factory=dict)  # deny-listed inside the range -> reason
    note: str = ""  # how they were chosen, one line


def _spec_set(spec: str):
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    text = spec.strip()
    if text and text[0].isdigit():
        text = "==" + text
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise HarnessError(f"{spec!r} is not a version range (expected e.g. '>=1.82,<1.86')") from None


def select_releases(
    explicit: list[str],
    spec: str | None,
    cap: int | None = None,
    published: list[Version] | None = None,
    denylist: dict[str, str] | None = None,
    sample: str = "all",
) -> Selection:
    """Releases for a matrix: ``explicit`` ones plus the range's, sampled (``all``, ``minor-ends``),
    then at most ``cap`` of those (None: ``DEFAULT_CAP`` for ``all``, no cap for a sample).

    ``published``/``denylist`` default to the package index and ``releases.DENYLIST`` (tests
    pass their own). Explicit releases are not capped. Deny-listed releases in the range are
    listed (as refused) only when the whole range is asked for.
    """
    from .releases import index

    if denylist is None:
        from .releases import DENYLIST as denylist  # noqa: N811
    chosen: set[Version] = {Version(v) for v in explicit}
    refused: dict[str, str] = {}
    notes = []
    if explicit:
        notes.append(f"--litellm {' '.join(explicit)}")
    if spec:
        if cap is None and sample == "all":
            cap = DEFAULT_CAP
        if cap is not None and cap < 1:
            raise HarnessError(f"--cap must be at least 1 (got {cap})")
        sset = _spec_set(spec)
        if published is None:
            published = index.published_versions()
        allowed = [v for v in published if str(v) not in denylist and sset.contains(v, prereleases=False)]
        picked = index.select_range(allowed, spec, cap, sample)
        for v in published:
            if sample == "all" and str(v) in denylist and sset.contains(v, prereleases=False):
                refused[str(v)] = f"litellm {v} is refused: {denylist[str(v)]}"
        sampled = len(index.sample_versions(allowed, sample))
        how = f", {sampled} by --sample {sample}" if sample != "all" else ""
        thinned = f", thinned to {len(picked)} by --cap {cap} (oldest and newest kept)" if sampled > len(picked) else ""
        notes.append(f"--range '{spec}': {len(allowed)} published final releases{how}{thinned}")
        if refused:
            notes.append("deny-listed in range: " + ", ".join(refused))
        chosen.update(picked)
    versions = [str(v) for v in sorted(chosen | {Version(v) for v in refused})]
    if not versions:
        raise HarnessError("say which releases to run: --litellm VERSION (repeatable) and/or --range SPEC")
    return Selection(versions=versions, refused=refused, note="; ".join(notes))


# --------------------------------------------------------------------------------------------
# one release


def install_failure_verdict(error: HarnessError | str) -> str:
    """``uninstallable`` when an ensure_release error is about the release, else ``error``.

    A typed ``harness.errors.ReleaseUnavailable`` decides when the releases module raises one;
    otherwise the message is matched against the texts the releases module uses.
    """
    from . import errors

    typed = getattr(errors, "ReleaseUnavailable", None)
    if typed is not None and isinstance(error, typed):
        return UNINSTALLABLE
    message = str(error)
    return UNINSTALLABLE if any(mark in message for mark in _UNINSTALLABLE_MARKS) else ERROR


def server_secrets(server) -> list[str]:
    """The database password of ``server`` (reports redact it wherever it appears)."""
    try:
        password = urlsplit(server.url(getattr(server, "maintenance_db", "postgres"))).password
    except Exception:  # noqa: BLE001 - a server that cannot say has nothing to hide here
        return []
    return [password] if password else []


def no_run_result(scenario: Scenario, version: str, verdict: str, reason: str, server=None, seconds: float = 0.0) -> ScenarioResult:
    """A cell for a release that never ran the scenario (uninstallable, or its worker failed)."""
    environment: dict[str, Any] = {"litellm": version}
    if server is not None:
        environment["postgres"] = f"{server.kind} {server.version}"
    return ScenarioResult(
        scenario=scenario, version=version, verdict=verdict, reason=reason, steps=[], seconds=seconds,
        environment=environment, log_tail="", secrets=server_secrets(server) if server is not None else [],
    )


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


def _session_rows(session: ReleaseSession, scenario: Scenario) -> dict[str, Any] | None:
    entry = session.fleets.get(session.deployment_key(scenario))
    if entry is None:
        return None
    view = entry[2]
    try:
        return snapshot_rows(view.conn)
    except Exception as exc:  # noqa: BLE001 - a snapshot must never change a verdict
        return {"error": f"could not read the database rows: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}


Cell = tuple[ScenarioResult, "dict[str, Any] | None"]


def install_failure_cells(version: str, scenarios: list[Scenario], exc: HarnessError, server=None,
                          seconds: float = 0.0, say: Progress | None = None) -> list[ScenarioResult]:
    """One cell per scenario for a release whose environment could not be built."""
    verdict = install_failure_verdict(exc)
    if say:
        say(f"litellm {version}: {verdict}: {exc}")
    return [no_run_result(s, version, verdict, str(exc), server, seconds) for s in scenarios]


def run_release(
    version: str,
    scenarios: list[Scenario],
    server,
    progress: Progress | None = None,
    on_result: Callable[[ScenarioResult, dict | None], None] | None = None,
    snapshot: bool = False,
    config: RunConfig = RunConfig(),
) -> list[Cell]:
    """Every scenario on one release, sharing its proxies (``ReleaseSession``)."""
    from .releases import ensure_release

    say = progress or (lambda _m: None)
    cells: list[Cell] = []

    def done(result: ScenarioResult, rows: dict | None) -> None:
        cells.append((result, rows))
        if on_result:
            on_result(result, rows)

    started = time.perf_counter()
    try:
        ensure_release(version, progress=say)
    except HarnessError as exc:
        for result in install_failure_cells(version, scenarios, exc, server, time.perf_counter() - started, say):
            done(result, None)
        return cells
    with ReleaseSession(version, server, say, config=config) as session:
        for scenario in scenarios:
            say(f"{scenario.name} ({scenario.path})")
            result = session.run(scenario)
            result.secrets = [*result.secrets, *server_secrets(server)]
            done(result, _session_rows(session, scenario) if snapshot else None)
    return cells


# --------------------------------------------------------------------------------------------
# the matrix


@dataclass
class MatrixRun:
    scenarios: list[Scenario]
    versions: list[str]
    results: list[ScenarioResult]  # version order, then the scenarios' order
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (path, version) -> snapshot
    jobs: int = 1
    seconds: float = 0.0
    release_seconds: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def cell(self, path: str, version: str) -> ScenarioResult | None:
        return next((r for r in self.results if r.scenario.path == path and r.version == version), None)

    @property
    def secrets(self) -> list[str]:
        return sorted({s for r in self.results for s in r.secrets if s})


def exit_code(results: list[ScenarioResult], whole: bool = True) -> int:
    """1 on `regression`, `unexpected pass`, `error`, or when no cell earned a verdict; else 0.

    ``whole=False`` (one shard of a matrix): "no verdict" is the whole matrix's to judge (`merge`),
    a shard of only uninstallable releases is not a failure."""
    if any(r.verdict in FAILING for r in results):
        return 1
    if whole and results and all(r.verdict in NO_VERDICT for r in results):
        return 1
    return 0


def version_key(text: str):
    """Version order; text that is no version (a typo's error cells) sorts after, by its text."""
    from packaging.version import InvalidVersion

    try:
        return (0, Version(text), "")
    except InvalidVersion:
        return (1, Version("0"), text)


def order_results(results: list[ScenarioResult], scenarios: list[Scenario]) -> list[ScenarioResult]:
    """Version order, then the scenarios' order (the order every report shows)."""
    rank = {s.path: i for i, s in enumerate(scenarios)}
    return sorted(results, key=lambda r: (version_key(r.version), rank.get(r.scenario.path, len(rank))))


def run_matrix(
    scenarios: list[Scenario],
    selection: Selection,
    jobs: int = 1,
    db_kind: str = "auto",
    db_url: str | None = None,
    progress: Progress | None = None,
    on_result: Callable[[ScenarioResult, dict | None], None] | None = None,
    snapshot: bool = False,
    config: RunConfig = RunConfig(),
    only: set[tuple[str, str]] | None = None,
) -> MatrixRun:
    """Every scenario on every release of ``selection``; with ``only`` (a shard's (scenario path,
    release) cells, ``harness.shard``) just those cells, and releases with none are not started."""
    say = progress or (lambda _m: None)

    def scenarios_of(version: str) -> list[Scenario]:
        return [s for s in scenarios if only is None or (s.path, version) in only]

    started = time.perf_counter()
    cells: list[Cell] = []
    release_seconds: dict[str, float] = {}

    def collect(result: ScenarioResult, rows: dict | None) -> None:
        cells.append((result, rows))
        if on_result:
            on_result(result, rows)

    for version, reason in selection.refused.items():  # never installed: no server, no worker
        say(f"[{version}] {UNINSTALLABLE}: {reason}")
        for scenario in scenarios_of(version):
            collect(no_run_result(scenario, version, UNINSTALLABLE, reason), None)
    versions = [v for v in selection.versions if v not in selection.refused and scenarios_of(v)]
    jobs = max(1, min(jobs, len(versions) or 1))
    if not versions:
        pass
    elif jobs == 1:
        from .db import start_server

        with start_server(db_kind, db_url) as server:
            say(f"PostgreSQL: {server.kind} {server.version} ({server.reason})")
            for version in versions:
                t = time.perf_counter()
                run_release(version, scenarios_of(version), server, lambda m, v=version: say(f"[{v}] {m}"), collect,
                            snapshot, config)
                release_seconds[version] = time.perf_counter() - t
    else:
        _run_parallel(scenarios, versions, jobs, db_kind, db_url, say, collect, snapshot, release_seconds, config=config,
                      scenarios_of=scenarios_of)
    by_key = {(r.scenario.path, r.version): rows for r, rows in cells if rows is not None}
    canonical = {s.path: s for s in scenarios}
    results = []
    for r, _ in cells:
        r.scenario = canonical.get(r.scenario.path, r.scenario)  # one object per scenario
        results.append(r)
    return MatrixRun(
        scenarios=scenarios, versions=list(selection.versions), results=order_results(results, scenarios), rows=by_key,
        jobs=jobs,
        seconds=time.perf_counter() - started, release_seconds=release_seconds, note=selection.note,
    )


# --------------------------------------------------------------------------------------------
# worker processes


def _worker(version: str, scenarios: list[Scenario], db_kind: str, db_url: str | None, snapshot: bool, out,
            config: RunConfig = RunConfig()) -> None:
    """Entry point of a worker process: one release, its own database server."""
    # The parent decides when to stop: Ctrl-C reaches the whole process group, but only the
    # parent acts on it (it sends SIGTERM). SIGTERM unwinds the `with` blocks below, which stop
    # the proxies and the database server.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _stop(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    _stop_when_orphaned()
    from .db import start_server

    def say(message: str) -> None:
        out.put(("progress", version, message))

    try:
        from .releases import ensure_release

        started = time.perf_counter()
        try:
            ensure_release(version, progress=say)  # first: a release that cannot be installed needs no server
        except HarnessError as exc:
            for result in install_failure_cells(version, scenarios, exc, None, time.perf_counter() - started, say):
                out.put(("result", version, (result, None)))
            out.put(("done", version, None))
            return
        with start_server(db_kind, db_url) as server:
            say(f"PostgreSQL: {server.kind} {server.version} (pid {os.getpid()})")
            run_release(version, scenarios, server, say, lambda r, rows: out.put(("result", version, (r, rows))), snapshot,
                        config)
        out.put(("done", version, None))
    except KeyboardInterrupt:
        out.put(("failed", version, "stopped before it finished"))
    except HarnessError as exc:
        out.put(("failed", version, str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which makes error cells
        out.put(("failed", version, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def _stop_when_orphaned() -> None:
    """SIGTERM this worker when its parent dies (killed outright: no handler of its ran), so the
    worker still stops its proxies and its database server."""
    import threading
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()


def _run_parallel(scenarios, versions: list[str], jobs: int, db_kind: str, db_url: str | None, say: Progress,
                  collect, snapshot: bool, release_seconds: dict[str, float], worker=None,
                  config: RunConfig = RunConfig(), scenarios_of: Callable[[str], list[Scenario]] | None = None) -> None:
    """``worker`` (default `_worker`) is a module-level function, so spawned processes can import it;
    ``scenarios_of(version)`` (default: all of ``scenarios``) are the cells of each release."""
    worker = worker or _worker
    scenarios_of = scenarios_of or (lambda _v: scenarios)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    pending = list(versions)
    running: dict[str, Any] = {}  # version -> Process
    started_at: dict[str, float] = {}
    got: dict[str, set[str]] = {v: set() for v in pending}  # scenario paths with a result
    gone_since: dict[str, float] = {}

    def finish(version: str, failure: str | None) -> None:
        proc = running.pop(version)
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
        release_seconds[version] = time.perf_counter() - started_at[version]
        if failure is not None:
            say(f"[{version}] worker failed: {failure}")
            for scenario in scenarios_of(version):
                if scenario.path not in got[version]:
                    reason = f"the worker process for litellm {version} failed: {failure.splitlines()[0]}"
                    collect(no_run_result(scenario, version, ERROR, reason), None)

    say(f"running {len(pending)} releases in {jobs} worker processes, each with its own PostgreSQL server")
    try:
        while pending or running:
            while pending and len(running) < jobs:
                version = pending.pop(0)
                proc = ctx.Process(
                    target=worker, name=f"harness-matrix-{version}",
                    args=(version, scenarios_of(version), db_kind, db_url, snapshot, out, config),
                )
                proc.start()
                running[version], started_at[version] = proc, time.perf_counter()
            try:
                kind, version, payload = out.get(timeout=0.5)
            except queue_mod.Empty:
                now = time.monotonic()
                for version, proc in list(running.items()):
                    if proc.is_alive():
                        continue
                    # its last messages may still be in flight: give them a moment
                    since = gone_since.setdefault(version, now)
                    if now - since > 3:
                        finish(version, f"exited with code {proc.exitcode} without reporting")
                continue
            if kind == "progress":
                say(f"[{version}] {payload}")
            elif kind == "result":
                result, rows = payload
                got[version].add(result.scenario.path)
                collect(result, rows)
            elif kind == "done":
                finish(version, None)
            elif kind == "failed":
                finish(version, payload)
    except BaseException:
        for proc in running.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker stops its proxies and server
        for proc in running.values():
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        raise
    finally:
        out.close()


def session_cells(
    scenarios: list[Scenario],
    versions: list[str],
    server,
    progress: Progress | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
    config: RunConfig = RunConfig(),
) -> tuple[list[ScenarioResult], dict[tuple[str, str], dict[str, Any]]]:
    """`runner.run_matrix`, plus the database rows after each scenario, for `run --bundle`."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def collect(result: ScenarioResult, session) -> None:
        result.secrets = [*result.secrets, *server_secrets(server)]
        snap = _session_rows(session, result.scenario)
        if snap is not None:
            rows[(result.scenario.path, result.version)] = snap
        if on_result:
            on_result(result)

    return runner_run_matrix(scenarios, versions, server, progress, collect, config), rows
