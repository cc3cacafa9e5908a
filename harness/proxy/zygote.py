"""A parent process that has imported one release's LiteLLM, and forks proxies from it.

Importing LiteLLM is most of a proxy's start, so every proxy of a release (each replica of a
deployment, each distinct proxy setting) is a fork of one zygote: harness/standalone/agent.py
with HARNESS_ZYGOTE=1. The harness writes `spawn` requests on the zygote's stdin and reads the
replica's pid back; the zygote exits, killing its replicas, when that pipe closes, so a
harness that dies (even by SIGKILL) leaves nothing running.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import HarnessError

#: run by the release's python, as a script (it imports nothing of the harness)
AGENT = Path(__file__).parent.parent / "standalone" / "agent.py"


class Zygote:
    def __init__(self, release, env: dict[str, str], run_dir: Path, agent: Path = AGENT):
        self.release = release
        self.env = env
        self.run_dir = run_dir
        self.agent = agent
        self.log_path = run_dir / "zygote.log"
        #: our child (`start`), or None when adopted
        self.process: subprocess.Popen | None = None
        self.pid: int | None = None
        self.import_s: float | None = None
        #: set when the warm daemon handed it over: where it came from, for the progress line
        self.adopted_from: dict[str, Any] | None = None
        self._stdin = None  # binary file on the zygote's stdin
        self._stdout_fd: int | None = None
        self._pidfd: int | None = None  # adopted: readable once the zygote has exited
        self._lock = threading.Lock()
        self._buffer = b""

    def start(self, timeout: float, progress=None) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(self.release.python), str(self.agent)],
                env={**self.env, "HARNESS_ZYGOTE": "1"},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                cwd=self.run_dir, start_new_session=True,
            )
        self.pid = self.process.pid
        self._stdin, self._stdout_fd = self.process.stdin, self.process.stdout.fileno()
        ready = self._reply(timeout, progress, started, what="import LiteLLM")
        self.import_s = ready.get("import_s")

    @classmethod
    def adopt(cls, release, env: dict[str, str], log_path: Path, pid: int, stdin_fd: int, stdout_fd: int,
              pidfd: int, import_s: float | None, origin: dict[str, Any]) -> "Zygote":
        """A ready zygote another process started (the warm daemon): we now hold its only stdin."""
        zygote = cls(release, env, log_path.parent)
        zygote.log_path = log_path
        zygote.pid, zygote._pidfd, zygote.import_s, zygote.adopted_from = pid, pidfd, import_s, origin
        zygote._stdin, zygote._stdout_fd = os.fdopen(stdin_fd, "wb"), stdout_fd
        return zygote

    def spawn(self, env: dict[str, str], cwd: Path, log: Path) -> int:
        """Fork a proxy with `env` on top of the zygote's; returns its pid (it leads its own group)."""
        with self._lock:
            self._send({"op": "spawn", "env": env, "cwd": str(cwd), "log": str(log)})
            return int(self._reply(30, None, time.monotonic(), what="fork a proxy")["pid"])

    def exit_code(self, pid: int) -> int | None:
        """The exit code of a replica that has ended (the zygote reaps it), else None."""
        if not self.alive:
            return None
        with self._lock:
            self._send({"op": "status"})
            codes = self._reply(10, None, time.monotonic(), what="report its replicas")["exit_codes"]
        return codes.get(str(pid))

    @property
    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        if self._pidfd is not None:
            return not select.select([self._pidfd], [], [], 0)[0]
        return False

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    def stop(self, grace: float = 10.0) -> None:
        """Close its stdin (it kills its replicas' groups and exits), SIGKILL it after `grace` s."""
        proc, pidfd, stdin, stdout_fd = self.process, self._pidfd, self._stdin, self._stdout_fd
        self.process = self._pidfd = self._stdin = self._stdout_fd = None
        if stdin is None:
            return
        try:
            stdin.close()
        except OSError:
            pass
        if proc is not None:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=5)
            proc.stdout.close()
            return
        # adopted: not our child (its parent, the daemon, reaps it); the pidfd names it safely
        if not select.select([pidfd], [], [], grace)[0]:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            select.select([pidfd], [], [], 5)
        os.close(pidfd)
        os.close(stdout_fd)

    # -- the pipe -------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if not self.alive:
            raise HarnessError(f"the litellm {self.release.version} zygote has exited; last log lines:\n{self.log_tail()}")
        try:
            self._stdin.write((json.dumps(message) + "\n").encode())
            self._stdin.flush()
        except OSError as exc:
            raise HarnessError(f"the litellm {self.release.version} zygote stopped listening ({exc})") from None

    def _reply(self, timeout: float, progress, started: float, what: str) -> dict[str, Any]:
        deadline, last_note = started + timeout, started
        fd = self._stdout_fd
        while True:
            if b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                reply = json.loads(line)
                if "error" in reply:
                    raise HarnessError(f"the zygote could not {what}: {reply['error']}")
                return reply
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 65536)
                self._buffer += chunk
                if chunk:
                    continue
            if not self.alive:
                raise HarnessError(f"the litellm {self.release.version} proxy exited with code {self.returncode} "
                                   f"before it could {what}; last log lines:\n{self.log_tail()}")
            now = time.monotonic()
            if now > deadline:
                tail = self.log_tail()
                self.stop()
                raise HarnessError(f"the litellm {self.release.version} zygote did not {what} within {timeout:.0f}s; "
                                   f"last log lines:\n{tail}")
            if progress is not None and now - last_note > 10:
                progress(f"still importing litellm {self.release.version} ({now - started:.0f}s)")
                last_note = now

    def log_tail(self, lines: int = 25) -> str:
        from .proxy import read_tail

        return read_tail(self.log_path, lines)
