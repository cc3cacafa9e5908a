"""A server that outlives the harness is stopped as soon as the harness is gone.

`Watchdog(pid, match=..., remove=...)` starts this file as a small separate process (its own
session, so a Ctrl-C aimed at the harness does not reach it) holding the read end of a pipe
whose write end only the harness holds. However the harness ends (exit, crash, SIGKILL), the
kernel closes that end; the watchdog then reads EOF and stops the server: SIGQUIT (PostgreSQL's
immediate shutdown, Redis's quit), then SIGKILL, and removes its data directory. A harness that
stops the server itself first says `done`, and the watchdog leaves quietly.

The clean-up of leftovers at the next start stays as the second line of defence (a watchdog
killed together with the harness).

Standard library only: it runs as a script (`python watchdog.py FD PID MATCH [DIR]`). Its way
of stopping a server (`stop_matching`) is the harness's too (harness.services.processes).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


class Watchdog:
    """Stops process `pid` (if its command line still contains `match`) when this process ends."""

    def __init__(self, pid: int, *, match: str, remove: Path | None = None) -> None:
        read_end, self._write_end = os.pipe()  # neither end is inherited by other children (PEP 446)
        try:
            self.process = subprocess.Popen(
                # -I: isolated (no PYTHON* variables, user site or script folder on sys.path): stdlib only
                [sys.executable, "-I", __file__, str(read_end), str(pid), match, str(remove or "")],
                pass_fds=(read_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            os.close(read_end)

    def done(self) -> None:
        """The harness stopped the server itself: the watchdog leaves without acting."""
        if self._write_end is None:
            return
        try:
            os.write(self._write_end, b"done")
        except OSError:
            pass
        os.close(self._write_end)
        self._write_end = None
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def handover(previous: Watchdog | None, new: Watchdog | None) -> Watchdog | None:
    """`new`, once the watchdog it replaces (if any) was told its server is stopped: the one way
    a provider swaps watchdogs (restart on a new port, stop)."""
    if previous is not None:
        previous.done()
    return new


#: (signal, seconds to wait for the end) in turn
_LADDER = ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))


def command_line_has(pid: int, match: str) -> bool:
    """Guard against a recycled pid: does process `pid`'s command line contain `match`?"""
    try:
        return match.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether process `pid` ends within `timeout` s (a zombie has ended: it only waits to be reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return True
        if stat.rsplit(b")", 1)[-1].split()[0] == b"Z":
            return True
        time.sleep(0.02)
    return False


def stop_matching(pid: int, match: str, ladder: tuple[tuple[int, float], ...]) -> bool:
    """Send `pid` each signal of `ladder` ((signal, seconds to wait), ...) until it is gone, as
    long as its command line contains `match`. False when no such process ran."""
    if not command_line_has(pid, match):
        return False
    for sig, wait in ladder:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if wait_gone(pid, wait) or not command_line_has(pid, match):
            break
    return True


def _watch(fd: int, pid: int, match: str, remove: str) -> None:
    message = b""
    while True:
        chunk = os.read(fd, 64)  # blocks until the harness writes or is gone
        if not chunk:
            break
        message += chunk
    if message == b"done":
        return
    stop_matching(pid, match, _LADDER)
    if remove:
        shutil.rmtree(remove, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
