"""The warm daemon: one spare, already imported zygote per recently used release, handed over.

A per-user background process (`python -m harness daemon start`) keeps, for each recent
(release, environment) key, one spare zygote that has imported LiteLLM. A session asks for the
key over a Unix socket (`take`); the daemon sends the zygote's stdin and stdout pipes and a
pidfd with SCM_RIGHTS, drops its own copies and starts importing the next spare. From then on
the session alone holds the zygote's stdin, as if it had started the zygote itself: when the
session ends or dies (even by SIGKILL) the pipe closes and the zygote kills its replicas and
exits. Spares the daemon still holds die the same way when the daemon dies.

It also keeps a warm harness process per (harness sources, environment) key, the runner
(harness/commands/runner.py): `python -m harness run|matrix|check|bisect|explore ...` hands its
command line, working directory, environment and stdio to it (`run`) and the runner's fork runs
it, so a repeat run does not import the harness again. A key's first run is refused (the client
runs the command itself) while its runner starts.

And it keeps one embedded PostgreSQL server warm (`postgres`): a session whose database is
embedded uses it instead of starting its own, so the release's template database is built once
and every later run only clones it. A run's clones are its own (dropped when it ends); the clones
of a run that died (named by its pid, harness.db.template.clone_name) are dropped by the daemon.

Never stale: the key hashes everything the zygote's import depends on (`fingerprint`): the
release's python and its environment marker, the agent's sources, the harness version and the
environment the zygote gets (minus a few variables that only describe the shell). The daemon
recomputes the key of a spare before it hands it over, and refuses a client whose daemon code
differs from its own. No daemon, or `HARNESS_DAEMON=off`: every session imports as before.

    HARNESS_DAEMON=use    (default) a running daemon is used; none running: import here
    HARNESS_DAEMON=start  start the daemon when none runs (idle timeout 30 min), then use it
    HARNESS_DAEMON=off    never ask a daemon
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from .. import __version__
from ..errors import HarnessError
from ..services.processes import is_running
from ..settings import runtime_dir
from .zygote import AGENT, Zygote

PROTOCOL = 1
MODES = ("use", "start", "off")
DEFAULT_IDLE_S = 30 * 60
DEFAULT_MAX_RELEASES = 3
#: a spare's import may take this long (a loaded machine, a cold disk)
IMPORT_TIMEOUT_S = 300.0
#: a key's next spare is imported when the run that took the last one ends, or this long after
REWARM_AFTER_S = 60.0
#: how long the log of a handed-over zygote that ended is kept
LOG_KEEP_S = 600.0
#: how often the daemon drops the clones of runs that died
SWEEP_EVERY_S = 5.0
#: a runner's start (importing the harness) may take this long
RUNNER_START_S = 60.0
#: runners kept, least recently used first out (one per harness checkout and environment)
MAX_RUNNERS = 3
#: variables that describe the calling shell, not the zygote's import
VOLATILE = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES", "PYTEST_CURRENT_TEST", "HARNESS_DAEMON"})
#: what a spare's import depends on besides its environment: the files the zygote runs
STANDALONE = AGENT.parent


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_fingerprint() -> str:
    """The daemon's protocol as this harness speaks it: a client with another is refused."""
    here = Path(__file__).parent
    return _sha(b"".join((here / name).read_bytes() for name in ("daemon.py", "zygote.py"))
                + f"{PROTOCOL} {__version__}".encode())[:16]


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def fingerprint(spec: dict[str, Any]) -> str:
    """The key of a zygote built from `spec` (python, root, agent, env), read from the files now."""
    agent = Path(spec["agent"])
    sources = sorted(agent.parent.glob("*.py"))
    return _sha(json.dumps({
        "protocol": PROTOCOL,
        "harness": __version__,
        "python": spec["python"],
        "release": _stat(Path(spec["root"]) / "harness-release.json"),
        "agent": str(agent),
        "sources": [[p.name, _sha(p.read_bytes())] for p in sources],
        "env": {k: v for k, v in sorted(spec["env"].items()) if k not in VOLATILE},
    }).encode())[:24]


def harness_sources(root: Path) -> list[list[Any]]:
    """What a runner's import of the harness at `root` depends on: its files' sizes and times."""
    return [[str(p.relative_to(root)), *(_stat(p) or [])] for p in sorted(root.rglob("*.py"))]


def runner_key(spec: dict[str, Any]) -> str:
    """The key of a runner started from `spec` (argv, env, harness root), read from the files now."""
    return _sha(json.dumps({
        "protocol": PROTOCOL,
        "argv": spec["argv"],
        "root": spec["root"],
        "sources": harness_sources(Path(spec["root"])),
        "env": {k: v for k, v in sorted(spec["env"].items()) if k not in VOLATILE},
    }).encode())[:24]


def spec_for(release, env: dict[str, str], agent: Path = AGENT) -> dict[str, Any]:
    return {"label": release.version, "python": str(release.python), "root": str(release.root),
            "agent": str(agent), "env": env}


def daemon_dir() -> Path:
    """The daemon's socket, pid, lock and log: a 0700 folder of this user's runtime dir."""
    path = runtime_dir() / "daemon"
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise HarnessError(f"{path} must belong to you and be private (mode 0700): the daemon is not used")
    return path


def socket_path() -> Path:
    return daemon_dir() / "daemon.sock"


def mode() -> str:
    value = os.environ.get("HARNESS_DAEMON", "use").strip().lower() or "use"
    if value not in MODES:
        raise HarnessError(f"HARNESS_DAEMON={value!r}: use one of {', '.join(MODES)}")
    return value


# --------------------------------------------------------------------------------------------
# the wire: one JSON line each way per connection (a take's answer carries the fds)


def read_line(sock: socket.socket, timeout: float | None) -> tuple[dict[str, Any], list[int]]:
    sock.settimeout(timeout)
    data, fds = b"", []
    while b"\n" not in data:
        chunk, got, _flags, _addr = socket.recv_fds(sock, 65536, 4, socket.MSG_CMSG_CLOEXEC)
        fds += got
        if not chunk:
            for fd in fds:
                os.close(fd)
            raise ConnectionError("the other side closed the connection")
        data += chunk
    return json.loads(data.split(b"\n", 1)[0]), fds


def send_line(sock: socket.socket, message: dict[str, Any], fds: list[int] = ()) -> None:
    data = (json.dumps(message) + "\n").encode()
    sent = socket.send_fds(sock, [data], list(fds)) if fds else 0
    if sent < len(data):  # never an empty send: the peer may have read it all and closed (EPIPE)
        sock.sendall(data[sent:])


def request(message: dict[str, Any], timeout: float | None = 5.0) -> tuple[dict[str, Any], list[int]] | None:
    """Ask the running daemon; None when none answers (no socket, or a stale one)."""
    path = socket_path()
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2.0)
        sock.connect(str(path))
        send_line(sock, message)
        return read_line(sock, timeout)
    except (ConnectionError, FileNotFoundError, socket.timeout, OSError):
        return None
    finally:
        sock.close()


# --------------------------------------------------------------------------------------------
# the client side


def status() -> dict[str, Any] | None:
    answer = request({"op": "status"})
    return answer[0] if answer else None


def start(idle_s: float = DEFAULT_IDLE_S, max_releases: int = DEFAULT_MAX_RELEASES, timeout: float = 15.0) -> dict[str, Any]:
    """Start the daemon detached (or find the one running); returns its status."""
    running = status()
    if running is not None:
        return running
    folder = daemon_dir()
    harness_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [harness_root, os.environ.get("PYTHONPATH")])))
    with open(folder / "daemon.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.proxy.daemon", "--idle", str(idle_s), "--max-releases", str(max_releases)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=folder, env=env, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = status()
        if answer is not None:
            return answer
        if proc.poll() is not None:
            answer = status()  # another start won the lock and is answering
            if answer is not None:
                return answer
            from .proxy import read_tail

            raise HarnessError(f"the daemon exited with code {proc.returncode}; {folder / 'daemon.log'}:\n"
                               f"{read_tail(folder / 'daemon.log', 15)}")
        time.sleep(0.05)
    raise HarnessError(f"the daemon did not answer within {timeout:.0f}s (log: {folder / 'daemon.log'})")


def stop(timeout: float = 15.0) -> dict[str, Any] | None:
    """Stop the daemon and every spare it holds; returns its last status, or None if none ran."""
    answer = request({"op": "stop"}, timeout=timeout)
    if answer is None:
        return None
    pid = answer[0].get("pid")
    deadline = time.monotonic() + timeout
    while pid and is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return answer[0]


def warm(release, env: dict[str, str], agent: Path = AGENT) -> str | None:
    """Ask the running daemon to keep a spare of `release` with `env`; the refusal, if any."""
    spec = spec_for(release, env, agent)
    answer = request({"op": "warm", "code": code_fingerprint(), "key": fingerprint(spec), "spec": spec})
    if answer is None:
        return "no daemon answered"
    return answer[0].get("refused")


def take(release, env: dict[str, str], progress: Callable[[str], None], timeout: float,
         agent: Path = AGENT) -> Zygote | None:
    """A warm zygote of `release` with `env` from the daemon, or None (the caller imports itself).

    None when the mode is `off`, no daemon runs (and the mode is not `start`), or the daemon
    cannot serve this key; what happened is said on `progress` either way but the first.
    """
    how = mode()
    if how == "off":
        return None
    if how == "start" and status() is None:
        progress("starting the warm daemon (HARNESS_DAEMON=start; it stops after 30 idle minutes)")
        start()
    spec = spec_for(release, env, agent)
    key = fingerprint(spec)
    running = status()
    if running is None:
        return None
    if not any(s["key"] == key and s["state"] == "ready" for s in running["spares"]):
        progress(f"the warm daemon has no ready zygote of litellm {release.version} for this environment: "
                 "waiting for its import")
    answer = request({"op": "take", "code": code_fingerprint(), "key": key, "spec": spec, "wait_s": timeout},
                     timeout=timeout + 10)
    if answer is None:
        if how == "start":
            progress("warm daemon not used: it did not answer")
        return None
    reply, fds = answer
    if "zygote" not in reply or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        progress(f"warm daemon not used: {reply.get('refused', 'it sent no zygote')}")
        return None
    info = reply["zygote"]
    return Zygote.adopt(release, env, Path(info["log"]), info["pid"], *fds, import_s=info.get("import_s"), origin=info)


def wants_embedded(kind: str | None, url: str | None) -> bool:
    """Whether harness.db.start_server(kind, url) would start an embedded server here."""
    return _embedded_plan(kind, url) is not None


def _embedded_plan(kind: str | None, url: str | None):
    from ..db import server_plan

    try:
        plan = server_plan(kind, url)
    except HarnessError:
        return None  # a bad kind, or no engine for a container: start_server says so itself
    return plan if plan.kind == "embedded" else None


def lease_postgres(kind: str | None, url: str | None, progress: Callable[[str], None]):
    """The daemon's warm embedded server (a harness.db.LeasedServer) for a session that would start
    an embedded one, or None (mode off, no daemon, another database asked for, or the daemon
    could not start it)."""
    plan = _embedded_plan(kind, url) if mode() != "off" else None
    if plan is None or status() is None:
        return None
    answer = request({"op": "postgres", "code": code_fingerprint()}, timeout=90)
    if answer is None or "url" not in answer[0]:
        progress(f"warm daemon's PostgreSQL not used: {answer[0].get('refused', 'no answer') if answer else 'no answer'}")
        return None
    reply = answer[0]
    from ..db import LeasedServer

    server = LeasedServer(reply["url"], reason=f"embedded {plan.source}; kept warm by the daemon, pid {reply['pid']}")
    try:
        return server.start()
    except HarnessError as exc:
        progress(f"warm daemon's PostgreSQL not used: {exc}")
        return None


# --------------------------------------------------------------------------------------------
# the daemon


@dataclass
class Spare:
    key: str
    spec: dict[str, Any]
    zygote: Zygote
    created: float = field(default_factory=time.time)
    ready: bool = False
    error: str | None = None


@dataclass
class Handed:
    """A zygote handed over: still our child (we reap it), no longer ours to stop."""

    process: subprocess.Popen
    run_dir: Path
    key: str
    at: float
    rewarmed: bool = False


@dataclass
class Runner:
    """A warm harness process (harness/commands/runner.py) and the daemon's end of its socket pair."""

    key: str
    spec: dict[str, Any]
    process: subprocess.Popen | None = None
    channel: socket.socket | None = None
    ready: bool = False
    error: str | None = None
    used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, folder: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {**self.spec["env"], "HARNESS_RUNNER_FD": str(theirs.fileno()),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(self.spec["root"]).parent),
                                                          self.spec["env"].get("PYTHONPATH")]))}
        try:
            with open(folder / "runners.log", "ab") as log:
                self.process = subprocess.Popen(self.spec["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                cwd=folder, env=env, pass_fds=[theirs.fileno()])
        finally:
            theirs.close()
        self.channel = ours
        reply, fds = read_line(ours, RUNNER_START_S)
        for fd in fds:
            os.close(fd)
        if not reply.get("ready"):
            raise HarnessError(f"the runner said {reply}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()  # the runner exits when its end closes
        if self.process is not None:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Daemon:
    def __init__(self, folder: Path, idle_s: float, max_releases: int):
        self.folder = folder
        self.idle_s = idle_s
        self.max_releases = max_releases
        self.code = code_fingerprint()
        self.started = time.time()
        self.last_request = time.monotonic()
        self.cond = threading.Condition()
        self.spares: dict[str, Spare] = {}
        #: key -> (spec, last use); the spares to keep warm, least recently used first out
        self.recent: dict[str, tuple[dict[str, Any], float]] = {}
        #: zygotes handed over, still our children until they exit (we reap them)
        self.handed: list[Handed] = []
        self.ended: list[tuple[float, Path]] = []
        self.served = 0
        self.stopping = threading.Event()
        self.counter = 0
        #: the warm embedded PostgreSQL (`postgres`, a harness.db.EmbeddedServer), started on first request
        self.postgres = None
        self.postgres_lock = threading.Lock()
        self.swept = time.monotonic()
        #: warm harness processes by key (`run`), and how many command lines they ran
        self.runners: dict[str, Runner] = {}
        self.runs = 0

    def log(self, text: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", flush=True)

    # -- spares ---------------------------------------------------------------------------

    def _warm(self, key: str, spec: dict[str, Any]) -> None:
        """Start importing a spare for `key` unless one exists (called with the lock held)."""
        if key in self.spares or self.stopping.is_set():
            return
        self.counter += 1
        run_dir = self.folder / "zygotes" / f"{spec['label']}-{self.counter}"
        release = SimpleNamespace(version=spec["label"], python=spec["python"])
        spare = Spare(key, spec, Zygote(release, spec["env"], run_dir, agent=Path(spec["agent"])))
        self.spares[key] = spare
        self.log(f"importing a spare for litellm {spec['label']} ({key})")
        threading.Thread(target=self._import, args=(spare,), daemon=True).start()

    def _import(self, spare: Spare) -> None:
        try:
            spare.zygote.start(timeout=IMPORT_TIMEOUT_S)
            if fingerprint(spare.spec) != spare.key:  # its files changed while it imported
                raise HarnessError("its release or agent files changed while it imported")
        except BaseException as exc:  # noqa: BLE001 - reported to the takers, never raised in a thread
            spare.zygote.stop(grace=0)
            spare.error = (str(exc) or type(exc).__name__).splitlines()[0]
            self.log(f"spare for litellm {spare.spec['label']} failed: {spare.error}")
        with self.cond:
            spare.ready = spare.error is None
            if spare.error is not None and self.spares.get(spare.key) is spare:
                del self.spares[spare.key]
                shutil.rmtree(spare.zygote.run_dir, ignore_errors=True)
            self.cond.notify_all()
        if spare.ready:
            self.log(f"spare for litellm {spare.spec['label']} ready (pid {spare.zygote.pid}, "
                     f"imported in {spare.zygote.import_s}s)")

    def _evict(self) -> None:
        """Forget the least recently used keys beyond `max_releases` (lock held)."""
        while len(self.recent) > self.max_releases:
            key = min(self.recent, key=lambda k: self.recent[k][1])
            del self.recent[key]
            spare = self.spares.pop(key, None)
            if spare is not None:
                self._discard(spare)

    def _discard(self, spare: Spare) -> None:
        threading.Thread(target=spare.zygote.stop, kwargs={"grace": 2}, daemon=True).start()
        self.log(f"dropped the spare for litellm {spare.spec['label']} ({spare.key})")

    def _refusal(self, message: dict[str, Any]) -> str | None:
        if message.get("code") != self.code:
            return (f"the daemon (pid {os.getpid()}) runs other harness code; restart it: "
                    "python -m harness daemon stop && python -m harness daemon start")
        if fingerprint(message["spec"]) != message["key"]:
            return "the daemon sees other release or agent files than this run (changed just now?)"
        return None

    def warm(self, message: dict[str, Any], conn: socket.socket) -> None:
        """Keep a spare of this key from now on (`daemon start --litellm V`)."""
        refusal = self._refusal(message)
        if refusal is None:
            with self.cond:
                self.recent[message["key"]] = (message["spec"], time.monotonic())
                self._evict()
                self._warm(message["key"], message["spec"])
        send_line(conn, {"refused": refusal} if refusal else {"warming": message["key"]})

    def take(self, message: dict[str, Any], conn: socket.socket) -> None:
        refusal = self._refusal(message)
        if refusal is not None:
            send_line(conn, {"refused": refusal})
            return
        spec, key = message["spec"], message["key"]
        deadline = time.monotonic() + float(message.get("wait_s", IMPORT_TIMEOUT_S))
        watched: Spare | None = None  # the spare this take waits for
        with self.cond:
            self.recent[key] = (spec, time.monotonic())
            self._evict()
            while True:
                spare = self.spares.get(key)
                if spare is None:
                    if watched is not None and watched.error is not None:  # say why, do not retry forever
                        send_line(conn, {"refused": f"its import of litellm {spec['label']} failed: {watched.error}"})
                        return
                    # none yet, or another take (a second worker of the same release) got the one
                    # this take waited for: import another one now
                    self._warm(key, spec)
                    if key not in self.spares:
                        send_line(conn, {"refused": "the daemon is stopping"})
                        return
                    continue
                watched = spare
                if spare.ready and (not spare.zygote.alive or fingerprint(spare.spec) != key):
                    del self.spares[key]  # died, or its files changed since it was started
                    self._discard(spare)
                    continue
                if spare.ready:
                    del self.spares[key]
                    break
                left = deadline - time.monotonic()
                if left <= 0 or self.stopping.is_set():
                    send_line(conn, {"refused": f"its spare for litellm {spec['label']} is still importing"})
                    return
                self.cond.wait(min(left, 1.0))
        zygote = spare.zygote
        info = {"pid": zygote.pid, "import_s": zygote.import_s, "log": str(zygote.log_path),
                "age_s": round(time.time() - spare.created, 1), "daemon": os.getpid()}
        pidfd = os.pidfd_open(zygote.pid)
        try:
            send_line(conn, {"zygote": info}, [zygote._stdin.fileno(), zygote._stdout_fd, pidfd])
        except OSError as exc:  # the client went away: the spare stays ours
            os.close(pidfd)
            self.log(f"hand-over of pid {zygote.pid} failed ({exc}); kept as the spare")
            with self.cond:
                if key not in self.spares:
                    self.spares[key] = spare
                    spare.created = time.time()
                else:
                    self._discard(spare)
            return
        os.close(pidfd)
        # drop our copies: the client alone holds its stdin now
        zygote._stdin.close()
        zygote.process.stdout.close()
        with self.cond:
            self.handed.append(Handed(zygote.process, zygote.run_dir, key, time.monotonic()))
            self.served += 1
        self.log(f"handed pid {zygote.pid} (litellm {spec['label']}) over")

    def run(self, message: dict[str, Any], conn: socket.socket, fds: list[int]) -> None:
        """Hand a client's command line and stdio to the warm runner of its key; refused (the client
        runs the command itself) when the key has none ready yet, which then starts one."""
        try:
            if message.get("code") != self.code:
                send_line(conn, {"refused": "the daemon runs other harness code"})
                return
            spec, key = message["runner"], message["key"]
            if runner_key(spec) != key:
                send_line(conn, {"refused": "the daemon sees other harness files than this run"})
                return
            with self.cond:
                runner = self.runners.get(key)
                if runner is not None and runner.ready and not runner.alive:
                    del self.runners[key]
                    runner = None
                if runner is None:
                    self._start_runner(key, spec)
                    send_line(conn, {"refused": "no warm runner for this harness and environment yet (starting one)"})
                    return
                if not runner.ready:
                    send_line(conn, {"refused": runner.error or "its runner is still starting"})
                    return
                runner.used = time.monotonic()
            request = {"argv": message["argv"], "cwd": message["cwd"], "env": spec["env"]}
            with runner.lock:  # one request in flight: the runner reads a line at a time
                try:
                    send_line(runner.channel, request, [*fds, conn.fileno()])
                    forked, _ = read_line(runner.channel, 30)
                except (OSError, ValueError, ConnectionError) as exc:
                    # the runner may hold the client's fds and have forked: only a runner that never
                    # read the request leaves the client free to run the command itself
                    self.log(f"runner pid {runner.process.pid} failed a hand-over: {exc}")
                    with self.cond:
                        if self.runners.get(key) is runner:
                            del self.runners[key]
                    threading.Thread(target=runner.stop, daemon=True).start()
                    return
            self.runs += 1
            self.log(f"handed `{' '.join(message['argv'][:1])}` to runner pid {runner.process.pid} (run pid {forked.get('forked')})")
        finally:
            for fd in fds:
                os.close(fd)

    def _start_runner(self, key: str, spec: dict[str, Any]) -> None:
        """Start a runner for `key` in the background (lock held); the least recently used goes."""
        runner = self.runners[key] = Runner(key, spec)
        while len(self.runners) > MAX_RUNNERS:
            old = min(self.runners.values(), key=lambda r: r.used)
            del self.runners[old.key]
            threading.Thread(target=old.stop, daemon=True).start()

        def start() -> None:
            try:
                runner.start(self.folder)
                runner.ready = True
                self.log(f"runner pid {runner.process.pid} ready ({key})")
            except (OSError, ValueError, ConnectionError, HarnessError, socket.timeout) as exc:
                runner.error = f"its runner did not start: {exc}"
                self.log(runner.error)
                runner.stop()

        threading.Thread(target=start, daemon=True).start()

    def lease_postgres(self, message: dict[str, Any], conn: socket.socket) -> None:
        if message.get("code") != self.code:
            send_line(conn, {"refused": "the daemon runs other harness code"})
            return
        try:
            with self.postgres_lock:
                if self.postgres is None or self.postgres.pid is None or not is_running(self.postgres.pid):
                    if self.postgres is not None:
                        self.postgres.stop()
                    self.postgres = None
                    from ..db import EmbeddedServer  # here: clients import this module, and need no database code

                    started = time.monotonic()
                    self.postgres = EmbeddedServer(reason="kept warm by the daemon").start()
                    self.log(f"embedded PostgreSQL {self.postgres.version} started in {time.monotonic() - started:.1f}s "
                             f"(port {self.postgres.port})")
                server = self.postgres
        except HarnessError as exc:
            send_line(conn, {"refused": f"its embedded PostgreSQL did not start: {exc}"})
            return
        self.sweep_clones()
        send_line(conn, {"url": server.url("postgres"), "version": server.version, "pid": os.getpid()})

    def sweep_clones(self) -> None:
        """Drop the clones of runs that died without dropping them (the clone's name holds its pid)."""
        from ..db.base import CLONE_PREFIX

        self.swept = time.monotonic()
        with self.postgres_lock:
            server = self.postgres
            if server is None:
                return
            try:
                names = server.list_databases(CLONE_PREFIX)
                for name in names:
                    pid = _clone_pid(name)
                    if pid is not None and not is_running(pid):
                        server.drop_database(name)
                        self.log(f"dropped {name}: the run that made it has ended")
            except Exception as exc:  # noqa: BLE001 - a failed sweep is retried on the next one
                self.log(f"sweeping clones failed: {type(exc).__name__}: {exc}")

    def _reap(self) -> None:
        """Reap handed-over zygotes that ended; their logs stay a while (a client may read the tail).

        The next spare of a key is imported once its last zygote's run has ended, or REWARM_AFTER_S
        after the hand-over (a long `serve`): an import beside a running scenario would slow it.
        """
        now = time.monotonic()
        with self.cond:
            for handed in list(self.handed):
                ended = handed.process.poll() is not None
                if not handed.rewarmed and (ended or now - handed.at > REWARM_AFTER_S) and handed.key in self.recent:
                    handed.rewarmed = True
                    self._warm(handed.key, self.recent[handed.key][0])
                if ended:
                    self.handed.remove(handed)
                    self.ended.append((now, handed.run_dir))
            while self.ended and (now - self.ended[0][0] > LOG_KEEP_S or self.stopping.is_set()):
                shutil.rmtree(self.ended.pop(0)[1], ignore_errors=True)

    def status(self) -> dict[str, Any]:
        now = time.time()
        with self.cond:
            spares = [{"release": s.spec["label"], "key": s.key, "pid": s.zygote.pid,
                       "state": "ready" if s.ready else "importing", "age_s": round(now - s.created, 1),
                       "import_s": s.zygote.import_s, "python": s.spec["python"]}
                      for s in self.spares.values()]
        return {"pid": os.getpid(), "code": self.code, "harness": str(Path(__file__).resolve().parents[1]),
                "uptime_s": round(now - self.started, 1), "idle_s": round(time.monotonic() - self.last_request, 1),
                "idle_timeout_s": self.idle_s, "max_releases": self.max_releases, "served": self.served,
                "handed_alive": len(self.handed), "spares": spares,
                "runs": self.runs,
                "runners": [{"pid": r.process.pid if r.process else None, "key": r.key,
                             "state": "ready" if r.ready else "failed" if r.error else "starting"}
                            for r in self.runners.values()],
                "postgres": ({"version": self.postgres.version, "port": self.postgres.port, "pid": self.postgres.pid}
                             if self.postgres is not None else None)}

    # -- serving --------------------------------------------------------------------------

    def handle(self, conn: socket.socket) -> None:
        try:
            message, fds = read_line(conn, 10)
            op = message.get("op")
            if op == "run":
                self.run(message, conn, fds)
                return
            for fd in fds:
                os.close(fd)
            if op == "status":
                send_line(conn, self.status())
            elif op == "take":
                self.take(message, conn)
            elif op == "warm":
                self.warm(message, conn)
            elif op == "postgres":
                self.lease_postgres(message, conn)
            elif op == "stop":
                send_line(conn, self.status())
                self.stopping.set()
            else:
                send_line(conn, {"refused": f"unknown operation {op!r}"})
        except (OSError, ValueError, KeyError) as exc:
            self.log(f"a request failed: {type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.25)
        while not self.stopping.is_set():
            self._reap()
            if self.postgres is not None and time.monotonic() - self.swept > SWEEP_EVERY_S:
                threading.Thread(target=self.sweep_clones, daemon=True).start()
                self.swept = time.monotonic()
            busy = any(not s.ready for s in self.spares.values())
            if not busy and time.monotonic() - self.last_request > self.idle_s:
                self.log(f"idle for {self.idle_s:.0f}s: stopping")
                break
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            self.last_request = time.monotonic()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        self.shutdown()

    def shutdown(self) -> None:
        self.stopping.set()
        with self.cond:
            spares, self.spares = list(self.spares.values()), {}
            self.cond.notify_all()
        for spare in spares:  # closing their stdin ends them, mid-import too
            spare.zygote.stop(grace=2)
            shutil.rmtree(spare.zygote.run_dir, ignore_errors=True)
        self._reap()
        with self.postgres_lock:
            if self.postgres is not None:
                self.postgres.stop()
                self.postgres = None
        for runner in list(self.runners.values()):
            runner.stop()
        self.log("stopped")


def _clone_pid(name: str) -> int | None:
    """The pid in a clone's name (`lh_c_<label>_<pid>_<hex>`), or None."""
    parts = name.rsplit("_", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.proxy.daemon")
    parser.add_argument("--idle", type=float, default=DEFAULT_IDLE_S)
    parser.add_argument("--max-releases", type=int, default=DEFAULT_MAX_RELEASES)
    args = parser.parse_args(argv)
    folder = daemon_dir()
    lock = open(folder / "daemon.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("another daemon holds the lock", file=sys.stderr)
        return 1
    daemon = Daemon(folder, args.idle, args.max_releases)
    path = folder / "daemon.sock"
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o600)
    listener.listen(16)
    (folder / "daemon.pid").write_text(str(os.getpid()))

    def on_signal(_signum, _frame) -> None:
        daemon.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    daemon.log(f"started (pid {os.getpid()}, idle timeout {args.idle:.0f}s, at most {args.max_releases} releases)")
    try:
        daemon.serve(listener)
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        (folder / "daemon.pid").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
