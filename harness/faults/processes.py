"""Process faults: signal a process group (a replica), take a Redis server down and back.

    stop_group(proxy_proc, how="term")        # SIGTERM, SIGKILL after `grace` s -> "terminated"|"killed"|"gone"
    control = RedisControl(server)            # an embedded or (local engine) container harness.redis server
    control.snapshot("before")                # SAVE, kept as snapshots/before.rdb
    control.stop(how="save"|"term"|"kill")    # a fault: Redis is down (ends by itself after max_seconds)
    control.start(data="keep"|"empty"|"before")   # same port and password; ends the fault
    control.restart(how="save", data="keep")
    control.flush()
    control.events                            # FaultEvents, started/ended

`data="keep"` loads dir/dump.rdb: after `how="save"` that is everything; after `term` or `kill`
(Redis saves nothing by itself here) it is what the last SAVE wrote, an older state, or nothing.
Only a server the harness runs is its to stop: an embedded one, or a container on this
machine's engine (its data dir on this host). A `url` server is faulted through the relay
(`refuse`, `blackhole`) and `flush` only.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

from harness.errors import HarnessError
from harness.services.processes import stop_group  # noqa: F401 - harness.faults offers it to fault steps

from .events import FaultEvent, FaultLog, check_max_seconds

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class RedisControl:
    """Down/up/flush faults on an embedded `harness.redis` server (see the module docstring)."""

    def __init__(self, server) -> None:
        if not getattr(server, "process_faults", False):
            raise HarnessError(f"only a Redis the harness runs (embedded, or a container on this machine's engine) can be "
                               f"stopped and started, not this {getattr(server, 'kind', type(server).__name__)} one; "
                               "use flush_redis or redis_network (refuse, blackhole) instead")
        self.server = server
        self.log = FaultLog()
        self._lock = threading.RLock()
        self._down: FaultEvent | None = None
        self._timer: threading.Timer | None = None
        self.target = f"redis-server 127.0.0.1:{server.port}"

    @property
    def events(self) -> list[FaultEvent]:
        return self.log.events

    def _snapshots(self) -> Path:
        folder = self.server.dump_path.parent / "snapshots"
        folder.mkdir(exist_ok=True)
        return folder

    def snapshot(self, name: str = "snapshot") -> Path:
        """SAVE now and keep a copy under `name` for `start(data=name)`."""
        if not _NAME.fullmatch(name or "") or name in ("keep", "empty"):
            raise HarnessError(f"snapshot name must be 1-64 of A-Z a-z 0-9 _ . - (not keep/empty), not {name!r}")
        with self._lock, self.server.client() as conn:
            conn.save()
            dest = self._snapshots() / f"{name}.rdb"
            shutil.copyfile(self.server.dump_path, dest)
        return dest

    def stop(self, how: str = "save", *, max_seconds: float | None = None) -> FaultEvent:
        """Take the server down (see `EmbeddedRedis.halt`); it comes back with data="keep" after
        `max_seconds` (default 120) unless `start()` comes first."""
        seconds = check_max_seconds(max_seconds)
        with self._lock:
            if self._down is not None:
                raise HarnessError("Redis is already down (start() it first)")
            event = self.log.begin(self.target, "redis_down", {"how": how})
            try:
                self.server.halt(how)
            except BaseException:
                self.log.finish(event, "failed")
                raise
            self._down = event
            self._timer = threading.Timer(seconds, self._expire, (self._down,))
            self._timer.daemon = True
            self._timer.start()
            return self._down

    def start(self, data: str = "keep", *, _end: str = "switched") -> None:
        """Bring the server back on its port: `keep` loads dump.rdb, `empty` starts with nothing,
        a snapshot name restores that snapshot. Ends the `redis_down` fault."""
        with self._lock:
            if self._down is None:
                raise HarnessError("Redis is not down (stop() it first)")
            dump = self.server.dump_path
            if data == "empty":
                dump.unlink(missing_ok=True)
            elif data != "keep":
                source = self._snapshots() / f"{data}.rdb"
                if not _NAME.fullmatch(data) or not source.is_file():
                    known = sorted(p.stem for p in self._snapshots().glob("*.rdb"))
                    raise HarnessError(f"no Redis snapshot {data!r}; use keep, empty or one of: {', '.join(known) or '(none taken)'}")
                shutil.copyfile(source, dump)
            self._timer.cancel()
            self.server.resume()
            self._down.detail["data"] = data
            self.log.finish(self._down, _end)
            self._down = self._timer = None

    def restart(self, how: str = "save", data: str = "keep") -> FaultEvent:
        event = self.stop(how)
        self.start(data)
        return event

    def flush(self) -> FaultEvent:
        self.server.flush()
        return self.log.begin(self.target, "redis_flush", {"db": self.server.db}, instant=True)

    def _expire(self, event: FaultEvent) -> None:
        with self._lock:
            if self._down is not event:
                return
            if self.server.stopped:   # the server was stopped for good meanwhile
                self.log.finish(event, "stopped")
                self._down = self._timer = None
                return
            self.start("keep", _end="expired")

    def close(self) -> None:
        """End a pending down fault (the server comes back) and its timer."""
        with self._lock:
            if self._down is not None and not self.server.stopped:
                self.start("keep", _end="stopped")
