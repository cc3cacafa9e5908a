"""`python -m harness run|matrix|check|bisect|explore ...` through the warm daemon's runner.

With a daemon running (and HARNESS_DAEMON not `off`), `harness/__main__.py` first offers the
command line to it: the daemon hands this process's stdin, stdout and stderr, working directory,
environment and arguments to a warm harness process (harness/commands/runner.py), whose fork
runs the command; this process only forwards signals (Ctrl-C, SIGTERM, SIGHUP) to it and exits
with its exit code. Refused (no daemon, another harness version, its runner still starting): the
command runs here, as always. This module is imported before anything heavy, so it uses the
standard library and the daemon's wire only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

from ..proxy import daemon

#: the commands worth a warm start (the others are quick, or manage the daemon itself)
REMOTE_COMMANDS = frozenset({"run", "matrix", "check", "bisect", "explore", "validate"})
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HARNESS_ROOT = Path(__file__).resolve().parents[1]


def runner_spec() -> dict:
    """How the daemon starts a runner for this harness checkout, interpreter and environment."""
    return {"argv": [sys.executable, "-m", "harness.commands.runner"], "root": str(HARNESS_ROOT),
            "env": dict(os.environ)}


def run_remote(argv: list[str]) -> int | None:
    """The command's exit code after the daemon's runner ran it, or None: run it here."""
    if not argv or argv[0] not in REMOTE_COMMANDS or os.environ.get("HARNESS_DAEMON", "use").strip().lower() == "off":
        return None
    try:
        path = daemon.socket_path()
    except Exception:  # noqa: BLE001 - a daemon folder we may not use: run here, which says why if it matters
        return None
    if not path.exists():
        return None
    spec = runner_spec()
    message = {"op": "run", "code": daemon.code_fingerprint(), "key": daemon.runner_key(spec), "runner": spec,
               "argv": argv, "cwd": os.getcwd()}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(str(path))
        daemon.send_line(sock, message, [0, 1, 2])
        reply, fds = daemon.read_line(sock, 30)
    except (OSError, ValueError, ConnectionError):
        sock.close()
        return None
    for fd in fds:
        os.close(fd)
    if "pid" not in reply:
        sock.close()
        return None
    return _follow(sock, int(reply["pid"]))


def _follow(sock: socket.socket, pid: int) -> int:
    """Forward signals to the run until it ends; its exit code (1 when it ended without one)."""
    def forward(signum, _frame) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    code = None
    sock.settimeout(None)
    buffer = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except InterruptedError:
            continue
        except OSError:
            break
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.startswith(b'{"exit"'):
                code = json.loads(line)["exit"]
    sock.close()
    if code is None:
        print(f"error: the run (pid {pid}, in the warm daemon's runner) ended without an exit code", file=sys.stderr)
        return 1
    return int(code)
