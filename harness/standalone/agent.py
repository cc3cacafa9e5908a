"""Runs INSIDE the proxy process, in the release's own environment (not the harness's).

It starts LiteLLM's real FastAPI app with uvicorn, exactly as `litellm --config` does after
its schema management (which the harness replaces by applying the release's own migrations),
and serves a few control operations under /__harness/<operation> (`OPERATIONS`; the harness's
typed client is harness/proxy/control.py) so the harness can act where production acts:

* the clock: freezegun, started in this process, so the auth path, caches, the reset job and
  the spend writer all see the scenario's time;
* the proxy's own APScheduler jobs (`reset_budget_job`, `update_spend_job`) run on demand; every
  scheduler the proxy starts is started paused, so nothing fires behind the scenario's back;
* jobs started in the background (`start-job`, collected by `wait-jobs`) and pause points
  (`pause`/`wait-paused`/`resume`: a bounded barrier around one async function), so two
  replicas' jobs interleave exactly as a scenario says;
* a reset between scenarios: unfreeze, disarm pauses, cancel started jobs, and empty every
  in-memory cache the proxy holds.

Only the standard library, LiteLLM's own dependencies and freezegun may be imported here.
Control routes need the `X-Harness-Token` header; the harness generates it per run.
"""

import asyncio
import gc
import inspect
import json
import os
import resource
import sys
import threading
import time
import weakref
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

try:
    import agent_views  # a sibling module: this file runs as a script from its folder
except ImportError:  # imported as harness.standalone.agent (the unit tests)
    from harness.standalone import agent_views

# The event loop keeps real monotonic time (freezegun's real_asyncio), or every timer would
# fire at once when the clock jumps a day, and `asyncio.sleep` would never end while frozen.
# Nothing else is exempted: freezegun exempts by walking the call stack, and an exempted web
# framework frame above a handler would hand that handler (the reset job, say) the real time.

LONG_LIVED_S = 0.5  # a request's follow-up work with a mock model takes milliseconds

_state: dict = {"freezer": None, "clock": None, "caches": None, "schedulers": [], "started_at": time.time()}

#: The control API's job names -> the functions the proxy schedules under them. From 1.82 the
#: jobs carry these ids; before, the scheduler is a local of `initialize_scheduled_background_jobs`
#: and its jobs have generated ids, so they are found by function (`ResetBudgetJob.reset_budget`,
#: `update_spend`).
JOB_FUNCTIONS = {"reset_budget_job": "reset_budget", "update_spend_job": "update_spend"}


def _watch_parent() -> None:
    """Exit when the harness that started us is gone (Ctrl-C, SIGKILL): nothing left behind."""
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _children_peak_rss_mb() -> dict[str, float]:
    """Peak memory of the processes the proxy started (the Prisma engine), from /proc."""
    peaks: dict[str, float] = {}
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), "0")
            peaks[f"{name}[{pid}]"] = round(int(hwm) / 1024.0, 1)
    return peaks


def _clock_now() -> datetime:
    return datetime.now(timezone.utc)


def _teach_pydantic_fake_times() -> None:
    """Models whose schema pydantic builds while frozen see freezegun's FakeDatetime/FakeDate
    where they say `datetime`/`date`; validate those as the real types."""
    from freezegun import api

    def schema_of(real):
        return classmethod(lambda cls, source, handler: handler.generate_schema(real))

    api.FakeDatetime.__get_pydantic_core_schema__ = schema_of(api.real_datetime)
    api.FakeDate.__get_pydantic_core_schema__ = schema_of(api.real_date)


def _freeze(at: str | None) -> str:
    import freezegun

    _teach_pydantic_fake_times()

    _unfreeze()
    moment = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else datetime.now(timezone.utc)
    freezer = freezegun.freeze_time(moment, tick=False, real_asyncio=True)
    _state["clock"] = freezer.start()
    _state["freezer"] = freezer
    _publish_clock()
    return _clock_now().isoformat()


def _publish_clock() -> None:
    """Tell the Prisma engine bridge (a child process) the frozen instant (engine/node/clock.mjs)."""
    path = Path(os.environ.setdefault("HARNESS_CLOCK_FILE", str(Path.cwd() / "harness-clock.json")))
    if _state["freezer"] is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"frozen_ms": int(_clock_now().timestamp() * 1000)}))
    os.replace(tmp, path)


def _advance(seconds: float) -> str:
    if _state["clock"] is None:
        raise RuntimeError("the clock is not frozen: freeze it before advancing it")
    _state["clock"].tick(timedelta(seconds=seconds))
    _publish_clock()
    return _clock_now().isoformat()


def _unfreeze() -> None:
    if _state["freezer"] is not None:
        _state["freezer"].stop()
    _state["freezer"] = _state["clock"] = None
    _publish_clock()


def _track_in_memory_caches() -> None:
    """Remember every InMemoryCache the proxy builds (user_api_key_cache, spend counters, budget
    reservations, router state...), so a reset between scenarios can empty them all."""
    from litellm.caching.in_memory_cache import InMemoryCache

    caches = _state["caches"] = weakref.WeakSet()
    original = InMemoryCache.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        caches.add(self)

    InMemoryCache.__init__ = __init__


def _capture_schedulers() -> None:
    """Hold every APScheduler scheduler the proxy adds jobs to, and start each one paused.

    Patched on the base class before the proxy module is imported, so it covers a scheduler
    kept as a module global (1.82+) or as a local (before), and closes the window between
    `start()` and any later pause. The list also keeps a local scheduler alive.
    """
    from apscheduler.schedulers.base import BaseScheduler

    schedulers = _state["schedulers"]
    add_job, start = BaseScheduler.add_job, BaseScheduler.start

    def hold(scheduler) -> None:
        if not any(s is scheduler for s in schedulers):
            schedulers.append(scheduler)

    def patched_add_job(self, *args, **kwargs):
        hold(self)
        return add_job(self, *args, **kwargs)

    def patched_start(self, paused=False):
        hold(self)
        return start(self, paused=True)

    BaseScheduler.add_job, BaseScheduler.start = patched_add_job, patched_start


def _scheduled_jobs() -> list:
    return [job for scheduler in _state["schedulers"] for job in scheduler.get_jobs()]


def _job_label(job) -> str:
    name = getattr(job.func, "__qualname__", None) or str(job.func)
    return f"{job.id}={name}" if JOB_FUNCTIONS.get(job.id) is None else job.id


def _find_job(job_id: str):
    jobs = _scheduled_jobs()
    by_id = [j for j in jobs if j.id == job_id]
    if by_id:
        return by_id[0]
    wanted = JOB_FUNCTIONS.get(job_id)
    by_func = [j for j in jobs if wanted and getattr(j.func, "__name__", None) == wanted]
    if len(by_func) > 1:
        raise LookupError(f"the proxy scheduled {len(by_func)} jobs running {wanted}: "
                          + ", ".join(_job_label(j) for j in by_func))
    if not by_func:
        known = ", ".join(_job_label(j) for j in jobs) or "none"
        raise LookupError(f"the proxy scheduled no job {job_id!r} (no job runs {wanted}; scheduled: {known})")
    return by_func[0]


async def _settle(timeout: float = 10.0) -> list[str]:
    """Wait until request follow-up work (success logging -> spend queues) has finished.

    LiteLLM's logging worker queue is drained first (`flush()`), then tasks are awaited. Tasks
    already running after start-up, or alive longer than any request's follow-up (a background
    loop started lazily), are not waited for; the latter join the baseline once seen.
    """
    me = asyncio.current_task()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    baseline = _state["baseline_tasks"]
    for worker in _logging_workers():
        await asyncio.wait_for(worker.flush(), timeout)
        # its loop, started by the first call, runs for good: without this, the first settle
        # of every proxy waited LONG_LIVED_S for it to count as long-lived
        loop_task = getattr(worker, "_worker_task", None)
        if isinstance(loop_task, asyncio.Task):
            baseline.add(loop_task)
    first_seen: dict = _state.setdefault("first_seen", weakref.WeakKeyDictionary())
    while True:
        now = loop.time()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done() and t not in baseline]
        for task in pending:
            first_seen.setdefault(task, now)
        # a task asleep past the age at which it counts as long-lived is one now (1.108's
        # reservation lease renewal sleeps half a Redis TTL after every call, say)
        young = [t for t in pending if now - first_seen[t] < LONG_LIVED_S
                 and _SLEEPING_UNTIL.get(t, now) - first_seen[t] < LONG_LIVED_S]
        for task in pending:
            if task not in young:
                baseline.add(task)
        if not young:
            return []
        if now > deadline:
            return [_task_label(t) for t in young]
        await asyncio.sleep(0.01)


#: task -> the loop time its `asyncio.sleep` ends (_track_sleeps)
_SLEEPING_UNTIL: "weakref.WeakKeyDictionary[asyncio.Task, float]" = weakref.WeakKeyDictionary()


def _track_sleeps() -> None:
    """Note when each task's `asyncio.sleep` ends, for settle (before LiteLLM imports asyncio's
    sleep by name). The loop may be uvloop, whose timers cannot be read."""
    real_sleep = asyncio.sleep

    async def sleep(delay, result=None):
        task = asyncio.current_task()
        if task is None or delay <= 0:
            return await real_sleep(delay, result)
        _SLEEPING_UNTIL[task] = asyncio.get_running_loop().time() + delay
        try:
            return await real_sleep(delay, result)
        finally:
            _SLEEPING_UNTIL.pop(task, None)

    asyncio.sleep = sleep


def _logging_workers() -> list:
    """LiteLLM's queue-based logging worker (1.8x+): success callbacks, spend updates included."""
    module = sys.modules.get("litellm.litellm_core_utils.logging_worker")
    worker = getattr(module, "GLOBAL_LOGGING_WORKER", None) if module else None
    return [worker] if worker is not None and hasattr(worker, "flush") else []


def _task_label(task) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or task.get_name()


def _count_engine_timeouts() -> None:
    """Count the Prisma engine requests prisma-client-py gave up on (its HTTP timeout, 30 s).

    The harness's engine (the wasm bridge) is slower than the native one; a job that lost a
    request that way failed for the harness's sake, not the release's, and says so (`run-job`).
    """
    try:
        import httpx
        from prisma.engine.http import HTTPEngine
    except Exception:  # a release without prisma-client-py's HTTP engine: nothing to count
        return
    original = HTTPEngine.request

    async def request(self, *args, **kwargs):
        try:
            return await original(self, *args, **kwargs)
        except httpx.TimeoutException:
            _state["engine_timeouts"] = _state.get("engine_timeouts", 0) + 1
            raise

    HTTPEngine.request = request


async def _run_job(job_id: str) -> dict:
    job = _find_job(job_id)
    started, timeouts = time.perf_counter(), _state.get("engine_timeouts", 0)
    result = job.func(*job.args, **job.kwargs)
    if inspect.isawaitable(result):
        await result
    return {"job": job_id, "seconds": round(time.perf_counter() - started, 4),
            "engine_timeouts": _state.get("engine_timeouts", 0) - timeouts}


#: how long a wait for a job started with `start-job` may take, unless the caller says otherwise
JOB_WAIT_S = 30.0


def _background_jobs(state: dict) -> list[dict]:
    """The jobs `start-job` started and no `wait-jobs` has collected yet: {"job", "task"}."""
    return state.setdefault("background_jobs", [])


def _op_start_job(body: dict, app, state: dict) -> dict:
    """Start a scheduled job as a task and answer at once, so two replicas' jobs can overlap."""
    name = body["job"]
    _find_job(name)  # a job the release lacks fails here, not inside the task
    if any(b["job"] == name and not b["task"].done() for b in _background_jobs(state)):
        raise RuntimeError(f"{name} started earlier is still running: wait for it first (wait_jobs)")
    task = asyncio.ensure_future(_run_job(name))
    baseline = state.get("baseline_tasks")
    if baseline is not None:
        baseline.add(task)  # settle waits for requests' follow-up work, not for this job
    _background_jobs(state).append({"job": name, "task": task})
    return {"job": name, "started": True}


async def _op_wait_jobs(body: dict, app, state: dict) -> dict:
    """Wait (at most `timeout` s) for the started jobs; report each finished one (its seconds or
    its error) once. With `cancel`, the ones still running then are cancelled (the run's end)."""
    timeout = float(body.get("timeout", JOB_WAIT_S))
    jobs = _background_jobs(state)
    if jobs:
        await asyncio.wait([b["task"] for b in jobs], timeout=timeout)
    finished, still_running = [], []
    for entry in list(jobs):
        task = entry["task"]
        if not task.done():
            still_running.append(entry["job"])
            if body.get("cancel"):
                task.cancel()
                jobs.remove(entry)
            continue
        jobs.remove(entry)
        if task.cancelled():
            finished.append({"job": entry["job"], "seconds": None, "error": "cancelled"})
        elif task.exception() is not None:
            exc = task.exception()
            finished.append({"job": entry["job"], "seconds": None, "error": f"{type(exc).__name__}: {exc}"})
        else:
            finished.append({"job": entry["job"], "seconds": task.result()["seconds"], "error": None})
    return {"finished": finished, "still_running": still_running}


#: a pause never resumed lets its calls go by itself after this many seconds
PAUSE_S = 30.0


def _pauses(state: dict) -> dict[str, dict]:
    return state.setdefault("pauses", {})


def _resolve(at: str):
    """`module:Qualified.name` -> (the object holding the attribute, its name, the raw attribute)."""
    import importlib

    module_name, _, qualname = at.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"pause point {at!r} is not <module>:<qualified function>")
    try:
        owner = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"unsupported: this release has no module {module_name} ({exc})") from None
    *path, attr = qualname.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            raise LookupError(f"unsupported: this release has no {module_name}:{qualname}")
    raw = vars(owner).get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
    if raw is None:
        raise LookupError(f"unsupported: this release has no {module_name}:{qualname}")
    return owner, attr, raw


def _op_pause(body: dict, app, state: dict) -> dict:
    """Wrap the function at `at` so that each call waits, `before` or `after` it ran, until
    `resume` (at most PAUSE_S s). The attribute is replaced on its module or class: a caller
    that looks it up there (`ResetBudgetJob._reset_budget_for_key(...)`, `module.f(...)`) meets
    the barrier; a name bound elsewhere earlier with `from x import f` still holds the original."""
    name, at, when = body["name"], body["at"], body.get("when", "before")
    if name in _pauses(state):
        raise ValueError(f"pause {name!r} is armed already")
    owner, attr, raw = _resolve(at)
    kind = staticmethod if isinstance(raw, staticmethod) else classmethod if isinstance(raw, classmethod) else None
    func = raw.__func__ if kind else raw
    if not inspect.iscoroutinefunction(func):
        # a waiting synchronous call would block the event loop that must serve `resume`
        raise LookupError(f"unsupported: {at} is not an async function (only those can be paused)")
    pause = {"at": at, "when": when, "reached": asyncio.Event(), "released": asyncio.Event(),
             "hits": 0, "timed_out": False, "restore": lambda: setattr(owner, attr, raw)}

    async def barrier():
        pause["hits"] += 1
        pause["reached"].set()
        try:
            await asyncio.wait_for(pause["released"].wait(), float(body.get("timeout", PAUSE_S)))
        except asyncio.TimeoutError:
            pause["timed_out"] = True
            pause["released"].set()  # let every later call go too

    async def paused(*args, **kwargs):
        if when == "before":
            await barrier()
        result = await func(*args, **kwargs)
        if when == "after":
            await barrier()
        return result

    paused.__wrapped__ = func
    setattr(owner, attr, kind(paused) if kind else paused)
    _pauses(state)[name] = pause
    return {"name": name, "armed": at}


def _pause_report(name: str, pause: dict) -> dict:
    return {"name": name, "at": pause["at"], "hits": pause["hits"], "timed_out": pause["timed_out"]}


def _op_resume(body: dict, app, state: dict) -> dict:
    """Let the paused calls go and put the original back; without a name, every pause (the run's end)."""
    pauses = _pauses(state)
    names = [body["name"]] if body.get("name") else list(pauses)
    missing = [n for n in names if n not in pauses]
    if missing:
        raise LookupError(f"no pause {missing[0]!r} is armed (armed: {', '.join(pauses) or 'none'})")
    resumed = []
    for name in names:
        pause = pauses.pop(name)
        pause["restore"]()
        pause["released"].set()
        resumed.append(_pause_report(name, pause))
    return {"resumed": resumed}


async def _op_wait_paused(body: dict, app, state: dict) -> dict:
    """Wait (at most `timeout` s) until a call has reached the barrier of pause `name`."""
    pause = _pauses(state).get(body["name"])
    if pause is None:
        raise LookupError(f"no pause {body['name']!r} is armed")
    try:
        await asyncio.wait_for(pause["reached"].wait(), float(body.get("timeout", PAUSE_S)))
    except asyncio.TimeoutError:
        pass
    return {**_pause_report(body["name"], pause), "reached": pause["reached"].is_set()}


def _op_lazy_imports(body: dict, app, state: dict) -> dict:
    return {"modules": sorted(_release_modules() - state.get("modules_at_fork", set()))}


def _op_info(body: dict, app, state: dict) -> dict:
    from apscheduler.schedulers.base import STATE_PAUSED

    schedulers = state["schedulers"]
    return {
        "litellm_version": _litellm_version(),
        "pid": os.getpid(),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "children_peak_rss_mb": _children_peak_rss_mb(),
        "uptime_s": round(time.time() - state["started_at"], 3),
        "jobs": [_job_label(j) for j in _scheduled_jobs()],
        "scheduler_paused": bool(schedulers) and all(s.state == STATE_PAUSED for s in schedulers),
    }


def _op_clock(body: dict, app, state: dict) -> dict:
    return {"now": _clock_now().isoformat(), "frozen": state["freezer"] is not None}


def _op_freeze(body: dict, app, state: dict) -> dict:
    return {"now": _freeze(body.get("at"))}


def _op_advance(body: dict, app, state: dict) -> dict:
    return {"now": _advance(float(body["seconds"]))}


async def _op_run_job(body: dict, app, state: dict) -> dict:
    # the same job started earlier and still running is awaited first (bounded): jobs of one
    # replica do not overlap unless the scenario starts them on different replicas
    earlier = [b["task"] for b in _background_jobs(state) if b["job"] == body["job"] and not b["task"].done()]
    if earlier:
        _done, pending = await asyncio.wait(earlier, timeout=JOB_WAIT_S)
        if pending:
            raise RuntimeError(f"{body['job']} started earlier is still running after {JOB_WAIT_S:.0f}s")
    return await _run_job(body["job"])


async def _op_settle(body: dict, app, state: dict) -> dict:
    return {"still_running": await _settle(float(body.get("timeout", 10)))}


def _op_reset(body: dict, app, state: dict) -> dict:
    _op_resume({}, app, state)  # a pause the last scenario left armed ends with it
    for entry in _background_jobs(state):  # a job the last scenario left running ends with it
        entry["task"].cancel()
    _background_jobs(state).clear()
    _unfreeze()
    caches = list(state["caches"])
    for cache in caches:
        cache.flush_cache()
    return {"caches_flushed": len(caches)}


#: The control operations by the name the harness calls them (harness/proxy/control.py): each
#: takes the request's JSON body, LiteLLM's app and the agent's state, and returns the JSON
#: answer (or an awaitable of it); an exception is answered as a 500 with its text, which the
#: harness fails the step with. The read-only views are agent_views'.
OPERATIONS = {
    "info": _op_info,
    "lazy-imports": _op_lazy_imports,
    "clock": _op_clock,
    "freeze": _op_freeze,
    "advance": _op_advance,
    "run-job": _op_run_job,
    "start-job": _op_start_job,
    "wait-jobs": _op_wait_jobs,
    "pause": _op_pause,
    "resume": _op_resume,
    "wait-paused": _op_wait_paused,
    "settle": _op_settle,
    "reset": _op_reset,
    **agent_views.OPERATIONS,
}


def _with_control_routes(app):
    """LiteLLM's app, with /__harness/ served in front of its middleware stack.

    Before 1.82 LiteLLM has a `BaseHTTPMiddleware`, which runs the endpoint in a child task:
    behind it, settle would wait on the request task that is waiting for settle itself.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    control_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    token = os.environ["HARNESS_CONTROL_TOKEN"]

    async def control(request: Request):
        if request.headers.get("x-harness-token") != token:
            return JSONResponse({"error": "bad harness token"}, status_code=403)
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        op = request.path_params["op"]
        operation = OPERATIONS.get(op)
        if operation is None:
            return JSONResponse({"error": f"unknown control operation {op!r}"}, status_code=404)
        try:
            out = operation(body, app, _state)
            if inspect.isawaitable(out):
                out = await out
        except Exception as exc:  # reported to the harness, which fails the step with it
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)
        return JSONResponse(out)

    control_app.add_api_route("/__harness/{op}", control, methods=["GET", "POST"], include_in_schema=False)

    async def front(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/__harness/"):
            await control_app(scope, receive, send)
        else:
            await app(scope, receive, send)

    return front


def _litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


def _wrap_lifespan(app) -> None:
    """Run LiteLLM's own start-up, then note the tasks it left running (settle ignores them)."""
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_):
        async with original(app_) as state:
            _state["baseline_tasks"] = weakref.WeakSet(asyncio.all_tasks())
            print(f"harness-agent: proxy started in {time.time() - _state['started_at']:.2f}s", file=sys.stderr, flush=True)
            yield state

    app.router.lifespan_context = lifespan


def _prepare():
    """Import LiteLLM's app, with the caches tracked and the schedulers captured (the slow part)."""
    _track_in_memory_caches()  # before the proxy module builds its caches
    _capture_schedulers()  # before it imports AsyncIOScheduler
    _count_engine_timeouts()
    _track_sleeps()
    from litellm.proxy.proxy_server import app

    _wrap_lifespan(app)
    return app


def _serve(app) -> None:
    import uvicorn

    # before the proxy starts its Prisma engine, which inherits the environment
    os.environ["HARNESS_CLOCK_FILE"] = str(Path.cwd() / "harness-clock.json")
    _publish_clock()

    threading.Thread(target=_watch_parent, daemon=True, name="harness-parent-watch").start()
    uvicorn.run(
        _with_control_routes(app),
        host=os.environ.get("HARNESS_PROXY_HOST", "127.0.0.1"),
        port=int(os.environ["HARNESS_PROXY_PORT"]),
        log_level=os.environ.get("HARNESS_UVICORN_LOG_LEVEL", "warning"),
        access_log=False,
    )


def _zygote() -> None:
    """Import LiteLLM once, then fork a replica for every `spawn` line the harness writes.

    Importing LiteLLM is most of a proxy's start (6-13 s); a fork of this process starts with it
    done. The import leaves only the main thread, so forking is safe; this process starts no
    thread either (children are reaped by a SIGCHLD handler). The harness holds the other end of
    stdin: when it closes (the harness stopped or died), every replica's process group is
    killed and the zygote exits. Replies are JSON lines on stdout.
    """
    import signal

    started = time.time()
    importing = threading.Event()
    importing.set()
    watcher = threading.Thread(target=_exit_when_stdin_closes, args=(importing,), daemon=True)
    watcher.start()
    app = _prepare()
    importing.clear()
    watcher.join()  # forks must find the main thread alone
    _prime_replicas()
    # LiteLLM's objects move to the permanent generation: a replica's first full collection
    # would otherwise walk all of them and write their gc headers, copying most of the heap
    # from its fork (0.4 s of every proxy start, measured on 1.85.0)
    gc.freeze()
    children: dict[int, int | None] = {}

    def reap(_signum, _frame) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children[pid] = os.waitstatus_to_exitcode(status)

    signal.signal(signal.SIGCHLD, reap)
    # replies get a private copy of stdout; whatever the release prints goes to the log
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    reply = os.fdopen(reply_fd, "w")
    print(json.dumps({"ready": True, "import_s": round(time.time() - started, 2), "pid": os.getpid()}), file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "spawn":
            zygote_pid = os.getpid()
            pid = os.fork()
            if pid == 0:
                _die_with(zygote_pid)
                _replica(app, request, reply_fd)  # never returns
            children[pid] = None
            out = {"pid": pid}
        elif request["op"] == "status":
            out = {"exit_codes": {str(k): v for k, v in children.items() if v is not None}}
        else:
            out = {"error": f"unknown zygote operation {request['op']!r}"}
        print(json.dumps(out), file=reply, flush=True)
    for pid, code in children.items():
        if code is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    os._exit(0)


#: the modules earlier replicas of this release imported after their fork (the harness keeps the
#: list, harness.proxy.proxy.remember_lazy_imports): the zygote imports them before forking
WARM_IMPORTS = Path(sys.prefix) / "harness-warm-imports.txt"


def _release_modules() -> set[str]:
    """The loaded modules that come from the release's own site-packages (not a scenario's)."""
    import sysconfig

    roots = tuple({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    return {name for name, module in list(sys.modules.items())
            if str(getattr(module, "__file__", None) or "").startswith(roots)}


def _warm_imports() -> None:
    """Import what replicas import lazily on their first requests (LiteLLM imports mcp, the
    guardrail translations and more on the first call: ~0.2 s of every new proxy's first call).
    A module whose import starts a thread ends the list: forks must find the main thread alone."""
    import importlib

    try:
        names = WARM_IMPORTS.read_text().split()
    except OSError:
        return
    started, done, threads = time.time(), 0, threading.active_count()  # 1 in the zygote
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - gone in this release, or fails outside a request: skipped
            continue
        done += 1
        if threading.active_count() > threads:
            print(f"harness-agent: warm import of {name} started a thread; the rest are left to the replicas",
                  file=sys.stderr, flush=True)
            break
    print(f"harness-agent: {done} of {len(names)} warm imports in {time.time() - started:.2f}s", file=sys.stderr, flush=True)


def _prime_replicas() -> None:
    """Do once here what every replica would do first: import uvicorn and what earlier replicas
    imported lazily, and fill freezegun's cache of which module attributes are time functions (its
    first `start()` scans every loaded module, 0.4 s with LiteLLM's; later ones take 0.04 s). One
    freeze and unfreeze, with nothing between."""
    import freezegun
    import uvicorn  # noqa: F401 - imported for the forks

    _warm_imports()

    freezer = freezegun.freeze_time(datetime.now(timezone.utc), tick=False, real_asyncio=True)
    freezer.start()
    freezer.stop()


def _exit_when_stdin_closes(importing: threading.Event) -> None:
    """While LiteLLM imports (6-13 s, stdin unread), exit as soon as the harness's end of stdin
    closes (it died, even by SIGKILL), instead of noticing only once the import is done."""
    import select

    poller = select.poll()
    poller.register(sys.stdin.fileno(), 0)  # POLLHUP and POLLERR are always reported
    while importing.is_set():
        if poller.poll(50):
            os._exit(0)  # no replica exists yet


def _die_with(parent: int) -> None:
    """SIGKILL this process when `parent` (the zygote, single-threaded) ends, however it ends."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the zygote's stdin EOF path still kills replicas when it exits normally
    if os.getppid() != parent:  # the zygote died before the request took effect
        os._exit(1)


def _replica(app, request: dict, reply_fd: int) -> None:
    """In a fresh fork: its own session and log, its own environment, then serve."""
    import signal

    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(reply_fd)  # the harness must see the zygote's replies end when the zygote does
        os.setsid()  # its own process group: a replica fault (SIGKILL) takes its engine, not the zygote
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["cwd"])
        sys.path.append(request["cwd"])  # a scenario's modules (last: they shadow nothing) can import each other
        os.environ.update(request["env"])
        _state["started_at"] = time.time()
        _state["modules_at_fork"] = _release_modules()
        _serve(app)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - a replica must never return into the zygote's loop
        print(f"harness-agent: replica failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = 1
    os._exit(code)


def main() -> None:
    if os.environ.get("HARNESS_ZYGOTE") == "1":
        _zygote()
        return
    _serve(_prepare())


if __name__ == "__main__":
    main()
