"""A warm harness process for the daemon (`python -m harness.commands.runner`): it imports the
harness once, then forks one child per command line a client hands over, so that a repeat
`python -m harness run ...` starts in milliseconds, not the ~0.5 s of Python importing the
harness, pydantic, rich and psycopg again.

The daemon (harness.proxy.daemon) starts it with one end of a socket pair in HARNESS_RUNNER_FD
and keeps it per (harness sources, environment) key; it sends each client's request on it with
the client's stdin, stdout, stderr and connection (SCM_RIGHTS). The child takes them as its own,
takes the client's working directory, environment and arguments, says its pid to the client
(which forwards its signals: Ctrl-C is the child's Ctrl-C) and runs the command exactly as
`python -m harness` would; its exit code goes to the client last. If the client dies, even by
SIGKILL, the child is SIGKILLed at once (the connection's end is its signal), so what it
started is left to the same watchdogs as after a SIGKILL of a harness started by hand.

The runner itself stays single-threaded (forks must find the main thread alone) and exits when
the daemon's end of the socket pair closes.
"""

from __future__ import annotations

import atexit
import gc
import io
import os
import signal
import socket
import sys
import threading

from ..proxy.daemon import read_line, send_line


def _reap(_signum, _frame) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        print(f"run pid {pid} ended: exit code {os.waitstatus_to_exitcode(status)}", file=sys.stderr, flush=True)


def _text(fd: int) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.FileIO(fd, "w" if fd else "r", closefd=False), encoding="utf-8",
                            errors="backslashreplace" if fd == 2 else "strict", line_buffering=fd != 0)


def _die_with_client(conn: socket.socket, finished: threading.Event) -> None:
    """SIGKILL this run when the client's end of the connection closes before the run finished
    (the client was killed)."""
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
    if not finished.is_set():
        os.kill(os.getpid(), signal.SIGKILL)


def _child(request: dict, fds: list[int]) -> None:
    """In the fork: become the client's `python -m harness ...` and run it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgrp()  # its own process group, as a shell job is
    stdin, stdout, stderr, conn_fd = fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin, sys.stdout, sys.stderr = _text(0), _text(1), _text(2)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    conn = socket.socket(fileno=conn_fd)
    conn.setblocking(True)  # the daemon read it with a timeout, which left the descriptor non-blocking
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["python -m harness", *request["argv"]]
    finished = threading.Event()
    threading.Thread(target=_die_with_client, args=(conn, finished), daemon=True).start()
    send_line(conn, {"pid": os.getpid()})
    from .. import cli

    try:
        code = cli.main(request["argv"])
    except SystemExit as exc:  # argparse's exits (--help, a bad option)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:  # a second Ctrl-C during the clean-up
        code = 130
    # what the interpreter's exit would do (atexit: the harness's last clean-ups), then the code:
    # when the client exits, everything this run started is stopped
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    finished.set()
    try:
        send_line(conn, {"exit": code})
    except OSError:
        pass
    os._exit(code)


def _preload() -> None:
    """Import what the commands import only when they run, and build the built-in steps' models
    (the harness's own code only: plugins and the release index are read by each run, fresh)."""
    import importlib

    for name in ("harness.execution.engine", "harness.execution.session", "harness.scenario.loader",
                 "harness.db", "harness.proxy.proxy", "harness.reports.html"):
        importlib.import_module(name)
    from ..steps import builtin

    builtin()


def main() -> int:
    channel = socket.socket(fileno=int(os.environ.pop("HARNESS_RUNNER_FD")))
    from .. import cli

    cli.parser()  # imports every command module
    _preload()
    gc.freeze()  # what is imported stays out of the forks' collections (no copy-on-write of it)
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon's session; its children take theirs from the client
    send_line(channel, {"ready": True, "pid": os.getpid()})
    while True:
        try:
            request, fds = read_line(channel, None)
        except (ConnectionError, OSError, ValueError):
            return 0  # the daemon closed its end: it stopped
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            channel.close()
            _child(request, fds)  # never returns
        for fd in fds:
            os.close(fd)
        send_line(channel, {"forked": pid})  # the daemon sends the next request only after this


if __name__ == "__main__":
    sys.exit(main())
