"""Processes of the harness's servers: who owns what, stopping them, and stopping them at exit.

    owner_alive(pid, start_ticks)              # the process recorded as an owner still runs
    stop_process(pid, match=..., ladder=...)   # signals in turn while its command line names `match`
    ServerProcess(folder, match=..., ladder=...).launch(args)   # a server run in its run folder, watched
    stop_group(proc, how="term")               # a process group: SIGTERM, SIGKILL after `grace` s
    register_cleanup(server)                   # server.stop() at exit and on SIGTERM/SIGHUP
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

from harness.errors import HarnessError
from harness.standalone.watchdog import Watchdog, handover, stop_matching, wait_gone

#: (signal, seconds to wait for the end) in turn
Ladder = tuple[tuple[int, float], ...]

#: how `stop_group` signals: SIGTERM (SIGKILL after the grace period), or SIGKILL at once
_GROUP_SIGNALS = {"term": signal.SIGTERM, "kill": signal.SIGKILL}


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a parent reaps its children, but not instantly)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    rest = data.rsplit(")", 1)[-1].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def owner_alive(pid: int, start_ticks: int | None) -> bool:
    """True if process `pid` runs and (when known) is the same process that was recorded."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_ticks is None:
        return True
    now = process_start_ticks(pid)
    return now is None or now == start_ticks


def stop_process(pid: int, *, match: str, ladder: Ladder, child: subprocess.Popen | None = None) -> bool:
    """Send `pid` each signal of `ladder` until it is gone, while its command line contains
    `match` (a recycled pid is left alone): the watchdog's way, so one way. `child`: our Popen
    of it, reaped too. False when no such process ran."""
    stopped = stop_matching(pid, match, ladder)
    if child is not None:
        child.poll()  # reaps it: no zombie of ours stays behind
    return stopped


class ServerProcess:
    """A server the harness runs itself in its run folder (harness.services.leftovers): in its
    own session, so a Ctrl-C in the terminal does not kill it before we stop it, and watched by
    a watchdog that stops it and removes the folder when the harness dies without stopping it.
    Its command line must contain `match` (a path in the folder): the watchdog, the clean-up and
    `stop()` recognise it by that."""

    def __init__(self, folder: Path, *, match: str, ladder: Ladder) -> None:
        self.folder, self.match, self.ladder = folder, match, ladder
        self.proc: subprocess.Popen | None = None
        self.watchdog: Watchdog | None = None

    def launch(self, args: list[str], **popen) -> subprocess.Popen:
        """Start the server (again: `resume`, another port); its watchdog replaces the previous one."""
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True, **popen)
        self.watchdog = handover(self.watchdog, Watchdog(self.proc.pid, match=self.match, remove=self.folder))
        return self.proc

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        """Stop the server, dismiss its watchdog and remove the run folder; idempotent."""
        if self.proc is not None:
            stop_process(self.proc.pid, match=self.match, ladder=self.ladder, child=self.proc)
        self.watchdog = handover(self.watchdog, None)
        shutil.rmtree(self.folder, ignore_errors=True)


def stop_group(target: subprocess.Popen | int, *, how: str = "term", grace: float = 10.0) -> str:
    """Signal the process group led by `target` (a Popen or a pid started with start_new_session).
    `term`: SIGTERM, then SIGKILL after `grace` s; `kill`: SIGKILL. Returns "terminated",
    "killed", or "gone" (it had already ended)."""
    if how not in _GROUP_SIGNALS:
        raise HarnessError(f"unknown way to stop a process {how!r}; use one of: {', '.join(_GROUP_SIGNALS)}")
    proc = target if isinstance(target, subprocess.Popen) else None
    pid = proc.pid if proc is not None else int(target)
    if proc is not None and proc.poll() is not None:
        return "gone"
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return "gone"
    if pgid != pid or pgid == os.getpgrp():   # never the harness's own group, nor a non-leader's
        raise HarnessError(f"pid {pid} does not lead its own process group (started with start_new_session?)")

    def signal_and_wait(sig: int, timeout: float) -> bool:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        if proc is not None:
            try:
                proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        return wait_gone(pid, timeout)

    if how == "term" and signal_and_wait(signal.SIGTERM, grace):
        return "terminated"
    if signal_and_wait(signal.SIGKILL, 10):
        return "killed"
    raise HarnessError(f"process group {pgid} survived SIGKILL for 10 s")


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now (a server started on it may still lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- stopping servers however the harness ends ------------------------------------------------

_cleanups: set = set()
_handlers_installed = False
_handlers_lock = threading.Lock()


def _run_cleanups() -> None:
    for obj in list(_cleanups):
        _cleanups.discard(obj)
        try:
            obj.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_run_cleanups)


def _exit_on_signal(signum, frame) -> None:  # noqa: ARG001
    raise SystemExit(128 + signum)


def unregister_cleanup(server) -> None:
    _cleanups.discard(server)


def register_cleanup(server) -> None:
    """Stop `server` at interpreter exit, and on SIGTERM/SIGHUP if nobody else handles them.

    The signal handlers are only installed where the default action (die without running
    atexit) would otherwise leak the server; a handler someone else set is left alone.
    """
    global _handlers_installed
    _cleanups.add(server)
    with _handlers_lock:
        if _handlers_installed or threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                if signal.getsignal(sig) == signal.SIG_DFL:
                    signal.signal(sig, _exit_on_signal)
            except (ValueError, OSError):  # pragma: no cover
                pass
        _handlers_installed = True
