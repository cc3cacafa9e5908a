"""The one way cells run, for every command and the pytest plugin.

    with Engine(hooks, config, db_kind=..., jobs=2) as engine:
        run = engine.run(plan)                    # run, matrix, check: every cell of a Plan
        results = engine.run_release(v, [s])      # bisect: one release at a time, as it asks
        result = engine.run_cell(s, v)            # the pytest plugin: one item at a time

* In this process (`jobs == 1`): one PostgreSQL server, started when the first release needs
  it; one live release session at a time (a new release closes the previous one's proxies).
* `jobs > 1`: worker processes, at most `jobs` at a time, each an `Engine` of its own with its
  own database server; their hook calls come back over a queue, so the hooks run here as if the
  cells had run here. Each release is one worker's share, or, when there are more jobs than
  releases (`check` of one release), its scenarios are cut into pieces by deployment
  (`plan.deployment_pieces`: scenarios that share proxies stay together) that up to
  jobs // releases workers of that release take one at a time as they come free (`Work`).
* One rule per outcome, whoever runs the cell: a release whose environment cannot be built is
  `uninstallable` for every scenario when the reason is the release (the installer's line, a
  deny-listed release), `error` when the harness could not ask (index unreachable); a worker
  that dies gives `error` cells; the database server's password joins every cell's secrets.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit

from ..errors import HarnessError, ReleaseUnavailable
from ..scenario.model import Scenario
from ..verdicts import Verdict
from .hooks import HookList, Hooks
from .plan import Plan, deployment_pieces, order_results
from .results import RunConfig, RunOutcome, ScenarioResult
from .session import ReleaseSession, deployment_key
from .timings import Timings, estimate

def install_failure_verdict(error: HarnessError) -> Verdict:
    """`uninstallable` when the releases module says the release itself cannot be installed
    (`ReleaseUnavailable`), else `error` (the index unreachable, a build lock timing out)."""
    return Verdict.UNINSTALLABLE if isinstance(error, ReleaseUnavailable) else Verdict.ERROR


def server_secrets(server) -> list[str]:
    """The database password of `server` (reports redact it wherever it appears)."""
    if server is None:
        return []
    try:
        password = urlsplit(server.url(getattr(server, "maintenance_db", "postgres"))).password
    except Exception:  # noqa: BLE001 - a server that cannot say has nothing to hide here
        return []
    return [password] if password else []


def no_run_result(scenario: Scenario, version: str, verdict: Verdict, reason: str, server=None,
                  seconds: float = 0.0) -> ScenarioResult:
    """A cell for a release that never ran the scenario (uninstallable, refused, its worker failed)."""
    environment: dict[str, Any] = {"litellm": version}
    if server is not None:
        environment["postgres"] = f"{server.kind} {server.version}"
    return ScenarioResult(scenario=scenario, version=version, verdict=verdict, reason=reason, steps=[],
                          seconds=seconds, environment=environment, secrets=server_secrets(server))


class Engine:
    def __init__(self, hooks: Hooks | Iterable[Hooks] = (), config: RunConfig = RunConfig(), *,
                 db_kind: str = "auto", db_url: str | None = None, jobs: int = 1, start_timeout: float = 180.0):
        self.hooks = hooks if isinstance(hooks, Hooks) else HookList(hooks)
        self.config = config
        self.db_kind, self.db_url = db_kind, db_url
        self.jobs = jobs
        self.start_timeout = start_timeout
        self._server = None
        self._session: ReleaseSession | None = None
        #: releases whose environment could not be built: the error, and how long finding out took
        self._unavailable: dict[str, tuple[HarnessError, float]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every proxy, Redis and database server this engine started (idempotent)."""
        try:
            self._close_session()
        finally:
            if self._server is not None:
                server, self._server = self._server, None
                server.stop()

    def _close_session(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    @property
    def server(self):
        """The PostgreSQL server of this process's cells, started on first use."""
        if self._server is None:
            from ..db import start_server
            from ..proxy import daemon

            self._server = (daemon.lease_postgres(self.db_kind, self.db_url, self.hooks.progress)
                            or start_server(self.db_kind, self.db_url))
            self.hooks.progress(f"PostgreSQL: {self._server.kind} {self._server.version} ({self._server.reason})")
        return self._server

    # -- cells in this process ----------------------------------------------------------------

    def _session_for(self, version: str) -> ReleaseSession | None:
        """The live session of `version` (None when its environment cannot be built)."""
        if self._session is not None and self._session.version == version:
            return self._session
        if version in self._unavailable:
            return None
        self._close_session()  # one live release at a time keeps memory flat
        from ..releases import ensure_release

        say = self._say(version)
        started = time.perf_counter()
        try:
            release = ensure_release(version, progress=say)  # first: a release that cannot be installed needs no server
        except HarnessError as exc:
            self._unavailable[version] = (exc, time.perf_counter() - started)
            say(f"litellm {version}: {install_failure_verdict(exc)}: {exc}")
            return None
        self._session = ReleaseSession(version, self.server, say, start_timeout=self.start_timeout,
                                       config=self.config, detail=lambda m: self.hooks.detail(m, version), release=release)
        return self._session

    def session(self, version: str) -> ReleaseSession:
        """The live session of `version` for a caller that drives it itself (`serve`); a release
        whose environment cannot be built is a HarnessError."""
        session = self._session_for(version)
        if session is None:
            raise self._unavailable[version][0]
        return session

    def _say(self, version: str):
        return lambda message: self.hooks.progress(message, version)

    def run_cell(self, scenario: Scenario, version: str) -> ScenarioResult:
        session = self._session_for(version)
        if session is None:
            exc, seconds = self._unavailable[version]
            result = no_run_result(scenario, version, install_failure_verdict(exc), str(exc), self._server, seconds)
        else:
            self.hooks.before_scenario(scenario, version)
            result = session.run(scenario, on_step=lambda step: self.hooks.after_step(scenario, version, step),
                                 readings=self.hooks.wants_readings)
            result.secrets = [*result.secrets, *server_secrets(self._server)]
            if self.hooks.wants_rows:
                result.database_rows = session.rows_after(scenario)
        self.hooks.after_scenario(result)
        return result

    def run_release(self, version: str, scenarios: list[Scenario]) -> list[ScenarioResult]:
        started = time.perf_counter()
        results = [self.run_cell(s, version) for s in scenarios]
        self.hooks.after_release(version, results, time.perf_counter() - started)
        return results

    # -- a whole plan -------------------------------------------------------------------------

    def run(self, plan: Plan) -> RunOutcome:
        started = time.perf_counter()
        results: list[ScenarioResult] = []
        release_seconds: dict[str, float] = {}
        self.hooks.before_run(plan)

        def collect(result: ScenarioResult) -> None:
            results.append(result)

        for version, reason in plan.selection.refused.items():  # never installed: no server, no worker
            self.hooks.progress(f"{Verdict.UNINSTALLABLE}: {reason}", version)
            for scenario in plan.scenarios_of(version):
                result = no_run_result(scenario, version, Verdict.UNINSTALLABLE, reason)
                self.hooks.after_scenario(result)
                collect(result)
        versions = [v for v in plan.versions if v not in plan.selection.refused and plan.scenarios_of(v)]
        timings = Timings()
        work = release_work(plan, versions, self.jobs, timings.weight) if self.jobs > 1 else Work([], {})
        jobs = max(1, min(self.jobs, len(work.pieces), sum(work.workers.values())))
        if jobs == 1:
            for version in versions:
                t = time.perf_counter()
                results += self.run_release(version, plan.scenarios_of(version))
                release_seconds[version] = time.perf_counter() - t
        else:
            _run_in_workers(self, plan, work, jobs, collect, release_seconds)
        timings.record(results)
        canonical = {s.path: s for s in plan.scenarios}
        for r in results:
            r.scenario = canonical.get(r.scenario.path, r.scenario)  # one object per scenario
        outcome = RunOutcome(scenarios=plan.scenarios, versions=list(plan.versions),
                             results=order_results(results, plan.scenarios), jobs=jobs,
                             seconds=time.perf_counter() - started, release_seconds=release_seconds,
                             note=plan.selection.note)
        self.hooks.after_run(outcome)
        return outcome


# --------------------------------------------------------------------------------------------
# worker processes


@dataclass(frozen=True)
class Piece:
    """Scenarios of one release that run in one worker, one after the other: a deployment's
    scenarios (or a cut of a heavy deployment's), or a whole release when it is not split."""

    version: str
    scenarios: list[Scenario]
    key: str  # the deployment its scenarios share ("" for a whole release)


@dataclass
class Share:
    """One worker's part of a run: the scenarios of one release handed to it so far (it asks for
    the next piece when it has run them); `id` names it in the queue's messages."""

    id: str
    version: str
    scenarios: list[Scenario] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # the deployments it has started
    started: float = 0.0


#: a worker pays for its own LiteLLM import (~9 s of a CPU) and database server: split a release
#: only when each worker gets at least this many scenarios
MIN_SHARE = 6


@dataclass
class Work:
    """The pieces not yet handed to a worker, and how many workers each release may have at once.

    A worker that has run its piece takes the next piece of its release, preferring a deployment
    it has already started (no second start of those proxies), else the heaviest left; a free
    process slot starts a worker on the first piece of a release that has started fewer workers
    than it may have. So the workers of a split release end within about one piece of each other, whatever
    the timings estimated."""

    pieces: list[Piece]
    workers: dict[str, int]  # version -> at most this many workers

    def next_for(self, share: Share) -> Piece | None:
        mine = [p for p in self.pieces if p.version == share.version]
        piece = next((p for p in mine if p.key in share.keys), mine[0] if mine else None)
        if piece is not None:
            self.pieces.remove(piece)
        return piece

    def next_new(self, started: dict[str, int]) -> Piece | None:
        """The first piece of a release that has started fewer workers than it may have (a worker
        that failed is not replaced: its release's other workers take what is left)."""
        piece = next((p for p in self.pieces if started.get(p.version, 0) < self.workers[p.version]), None)
        if piece is not None:
            self.pieces.remove(piece)
        return piece

    def drop(self, version: str) -> list[Piece]:
        """The pieces of `version` left (removed): its last worker failed."""
        gone = [p for p in self.pieces if p.version == version]
        self.pieces = [p for p in self.pieces if p.version != version]
        return gone


def release_work(plan: Plan, versions: list[str], jobs: int, weight=lambda scenario, version: estimate(scenario)) -> Work:
    """One worker per release, given the whole release; with more jobs than releases each release
    may have up to jobs // releases workers (each with at least MIN_SHARE scenarios), and its
    scenarios are cut into deployment pieces (`plan.deployment_pieces`, heaviest first by `weight`,
    a scenario's expected seconds on a release) that its workers take as they come free."""
    pieces: list[Piece] = []
    workers: dict[str, int] = {}
    for version in versions:
        scenarios = plan.scenarios_of(version)
        parts = max(1, min(jobs // max(1, len(versions)), len(scenarios) // MIN_SHARE))
        cut = (deployment_pieces(scenarios, parts, deployment_key, lambda s, v=version: weight(s, v)) if parts > 1
               else [scenarios])
        workers[version] = min(parts, len(cut))
        pieces += [Piece(version, piece, deployment_key(piece[0]) if parts > 1 else "") for piece in cut if piece]
    return Work(pieces, workers)


class _ToParent(Hooks):
    """A worker's hooks: every call goes to the parent's queue (the parent's hooks do the rest)."""

    def __init__(self, out, share: str, wants_rows: bool, wants_readings: bool = False):
        self.out, self.share, self.wants_rows, self.wants_readings = out, share, wants_rows, wants_readings

    def progress(self, message, version=None):
        self.out.put(("progress", self.share, message))

    def detail(self, message, version=None):
        self.out.put(("detail", self.share, message))

    def before_scenario(self, scenario, version):
        self.out.put(("before", self.share, scenario.path))

    def after_step(self, scenario, version, step):
        self.out.put(("step", self.share, (scenario.path, step)))

    def after_scenario(self, result):
        self.out.put(("result", self.share, result))


def _worker(share: str, version: str, scenarios: list[Scenario], db_kind: str, db_url: str | None, wants_rows: bool,
            wants_readings: bool, out, config: RunConfig = RunConfig(), inbox=None) -> None:
    """Entry point of a worker process: one share of one release, its own database server. It
    runs `scenarios`, then (with an `inbox`) says it is idle and runs the pieces the parent sends
    the same way, on the same engine (its proxies stay up for a later piece), until it gets None."""
    # The parent decides when to stop: Ctrl-C reaches the whole process group, but only the
    # parent acts on it (it sends SIGTERM). SIGTERM unwinds the `with` below, which stops the
    # proxies and the database server.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _stop(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    _stop_when_orphaned()
    try:
        with Engine(_ToParent(out, share, wants_rows, wants_readings), config, db_kind=db_kind, db_url=db_url) as engine:
            piece = scenarios
            while piece:
                for scenario in piece:
                    engine.run_cell(scenario, version)
                if inbox is None:
                    break
                out.put(("idle", share, None))
                piece = inbox.get()
        out.put(("done", share, None))
    except KeyboardInterrupt:
        out.put(("failed", share, "stopped before it finished"))
    except HarnessError as exc:
        out.put(("failed", share, str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which makes error cells
        out.put(("failed", share, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


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


def _run_in_workers(engine: Engine, plan: Plan, work: Work, jobs: int, collect,
                    release_seconds: dict[str, float], worker=None) -> None:
    """`worker` (default `_worker`) is a module-level function, so spawned processes can import it.
    At most `jobs` workers at a time, each started on a piece and given the next piece of its
    release (`work.next_for`) each time it says it is idle. A release's `after_release` comes
    when its last worker ends; its seconds run from its first worker's start to its last one's end."""
    worker = worker or _worker
    hooks = engine.hooks
    by_path = {s.path: s for s in plan.scenarios}
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    split = {v for v, n in work.workers.items() if n > 1}
    shares: dict[str, Share] = {}
    running: dict[str, Any] = {}  # share id -> Process
    inboxes: dict[str, Any] = {}  # share id -> the queue its next piece goes to
    started_at: dict[str, float] = {}  # version -> its first worker's start
    got: dict[str, list[ScenarioResult]] = {v: [] for v in work.workers}
    done_paths: dict[str, set[str]] = {}
    gone_since: dict[str, float] = {}
    numbers: dict[str, int] = {}

    def take(share: Share, result: ScenarioResult) -> None:
        got[share.version].append(result)
        done_paths[share.id].add(result.scenario.path)
        hooks.after_scenario(result)
        collect(result)

    def hand(share: Share, piece: Piece) -> None:
        share.scenarios += piece.scenarios
        share.keys.add(piece.key)

    def start(piece: Piece) -> None:
        numbers[piece.version] = numbers.get(piece.version, 0) + 1
        n, limit = numbers[piece.version], work.workers[piece.version]
        share = Share(piece.version if limit == 1 else f"{piece.version} worker {n}/{limit}", piece.version,
                      started=time.perf_counter())
        hand(share, piece)
        shares[share.id], done_paths[share.id] = share, set()
        inbox = ctx.Queue() if piece.version in split else None
        proc = ctx.Process(target=worker, name=f"harness-worker-{share.id.replace(' ', '-').replace('/', '-')}",
                           args=(share.id, share.version, piece.scenarios, engine.db_kind, engine.db_url,
                                 hooks.wants_rows, hooks.wants_readings, out, engine.config)
                           + ((inbox,) if inbox is not None else ()))
        proc.start()
        running[share.id] = proc
        if inbox is not None:
            inboxes[share.id] = inbox
        started_at.setdefault(share.version, share.started)

    def finish(share: Share, failure: str | None) -> None:
        proc = running.pop(share.id)
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=5)
        inbox = inboxes.pop(share.id, None)
        if inbox is not None:
            inbox.close()
        reason = ""
        if failure is not None:
            hooks.progress(f"worker failed: {failure}" + (f" ({share.id})" if share.id != share.version else ""),
                           share.version)
            reason = f"the worker process for litellm {share.id} failed: {failure.splitlines()[0]}"
            for scenario in share.scenarios:
                if scenario.path not in done_paths[share.id]:
                    take(share, no_run_result(scenario, share.version, Verdict.ERROR, reason))
        if share.version in split:
            deployments = len(share.keys)
            hooks.progress(f"{share.id}: {len(done_paths[share.id])} scenarios ({deployments} deployment"
                           f"{'s' if deployments != 1 else ''}) in {time.perf_counter() - share.started:.1f}s",
                           share.version)
        if any(s.version == share.version for s in (shares[i] for i in running)):
            return  # its release's other workers take the pieces left
        for piece in work.drop(share.version):  # only after a failure: a finished worker took them all
            for scenario in piece.scenarios:
                take(share, no_run_result(scenario, share.version, Verdict.ERROR, reason))
        release_seconds[share.version] = time.perf_counter() - started_at[share.version]
        hooks.after_release(share.version, got[share.version], release_seconds[share.version])

    releases = len(work.workers)
    pieces = len(work.pieces)
    note = (f" (one release in {pieces} pieces by deployment, each to the next free worker)" if releases == 1
            else f" ({len(split)} releases in pieces by deployment)") if split else ""
    hooks.progress(f"running {releases} release{'s' if releases != 1 else ''} in {jobs} worker processes{note}, "
                   "each with its own PostgreSQL server")
    try:
        while work.pieces or running:
            while len(running) < jobs:
                piece = work.next_new(numbers)
                if piece is None:
                    break
                start(piece)
            if not running:
                break  # defensive: a piece left always has a worker of its release running or to start
            try:
                kind, share_id, payload = out.get(timeout=0.5)
            except queue_mod.Empty:
                now = time.monotonic()
                for share_id, proc in list(running.items()):
                    if proc.is_alive():
                        continue
                    # its last messages may still be in flight: give them a moment
                    if now - gone_since.setdefault(share_id, now) > 3:
                        finish(shares[share_id], f"exited with code {proc.exitcode} without reporting")
                continue
            share = shares[share_id]
            version = share.version
            if kind == "progress":
                hooks.progress(payload, version)
            elif kind == "detail":
                hooks.detail(payload, version)
            elif kind == "before":
                hooks.before_scenario(by_path[payload], version)
            elif kind == "step":
                path, step = payload
                hooks.after_step(by_path.get(path), version, step)
            elif kind == "result":
                take(share, payload)
            elif kind == "idle":
                piece = work.next_for(share)
                if piece is not None:
                    hand(share, piece)
                inboxes[share_id].put(piece.scenarios if piece is not None else None)
            elif kind == "done":
                finish(share, None)
            elif kind == "failed":
                finish(share, payload)
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
        for inbox in inboxes.values():
            inbox.close()
        out.close()
