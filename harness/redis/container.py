"""Redis in a Docker container through testcontainers' `RedisContainer`.

Engine probe, owner labels, clean-up of a killed run's containers and the Ryuk decision are
harness.services.docker's (one way to do each); only the container itself differs.

On an engine of this machine (ports published on our loopback) the container gets a fixed host
port and its /data from a host dir (a server dir of harness.redis.embedded's layout, so a killed
run's is cleaned up the same way), and runs as the harness's own user (the files stay ours; as root, as the image's `redis`).
So it can be stopped and started again like an embedded server (`halt`, `resume`,
`dump_path`: harness.faults.processes.RedisControl): same port and password, its dump kept.
Like the embedded server it saves only when told (SAVE, SHUTDOWN SAVE). On a remote engine
neither holds: only flush and network faults.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.errors import HarnessError
from harness.services.docker import EngineProbe, OwnedContainer, owner_labels, prepare_engine, publishes_on_our_loopback
from harness.services.messages import first_line
from harness.services.processes import free_port, register_cleanup
from harness.services.providers import Choice, new_password

from .base import RedisServer
from .embedded import claim_dir

DEFAULT_IMAGE = "redis:7-alpine"
ROLE = "redis"  # label io.litellm-harness=redis


def redis_image() -> str:
    return os.environ.get("HARNESS_REDIS_IMAGE", "").strip() or DEFAULT_IMAGE


class ContainerRedis(OwnedContainer, RedisServer):
    kind = "container"

    def __init__(self, probe: EngineProbe, *, image: str | None = None, reason: str = "") -> None:
        super().__init__(reason=reason)
        self.probe = probe
        self.image = image or redis_image()
        self.password = new_password()
        self.ryuk = False
        self._container = None
        #: the host dir mounted as /data (None on a remote engine: no process faults then)
        self.data_dir: Path | None = None

    def start(self) -> "ContainerRedis":
        import time

        from testcontainers.community.redis import RedisContainer

        t0 = time.monotonic()
        self.cleaned, self.ryuk = prepare_engine(self.probe, ROLE, self.image, what="Redis",
                                                 env_var="HARNESS_REDIS_IMAGE", fallback="--redis embedded")
        local = publishes_on_our_loopback(self.probe.host)
        try:
            if local:
                # mode 0777: the dir is the container's /data whatever uid the engine maps us to
                self.data_dir, cleaned = claim_dir(mode=0o777)
                self.cleaned += cleaned
            ctr = RedisContainer(self.image, password=self.password, labels=owner_labels(ROLE),
                                 # not root: run as us, so the dump files stay ours to copy and remove
                                 **({"user": f"{os.getuid()}:{os.getgid()}"} if local and os.getuid() else {}))
            # saves only when told (SAVE, SHUTDOWN SAVE), as the embedded server: a `kill` loses
            # what came after the last SAVE
            ctr.with_command(f"redis-server --requirepass {self.password} --save '' --appendonly no")
            if local:
                # loopback only; a fixed port, so a container started again (`resume`) keeps it
                ctr.ports = {"6379/tcp": ("127.0.0.1", free_port())}
                ctr.with_volume_mapping(str(self.data_dir), "/data", "rw")
                # inside a container (/.dockerenv) testcontainers would answer the bridge's gateway,
                # where nothing is published; its PING readiness check runs from here, not inside
                ctr.get_container_host_ip = lambda: "127.0.0.1"
            self._container = ctr
            register_cleanup(self)
            ctr.start()  # waits for PING
        except Exception as exc:  # noqa: BLE001 - docker / testcontainers errors -> one line
            self.stop()
            raise HarnessError(f"Redis container {self.image} did not start: {first_line(exc)}",
                               hint="check the image (HARNESS_REDIS_IMAGE) or use --redis embedded") from None
        self.host = ctr.get_container_host_ip()
        self.port = int(ctr.get_exposed_port(6379))
        self._wait_ready(30)
        self.start_seconds = time.monotonic() - t0
        return self

    # --- for harness.faults: the same contract as EmbeddedRedis's ---------------------------
    @property
    def process_faults(self) -> bool:
        return self.data_dir is not None

    @property
    def dump_path(self) -> Path:
        """Where SAVE writes and a start loads the data (the host dir mounted as /data)."""
        if self.data_dir is None:
            raise HarnessError("this Redis container keeps its data on a remote engine: only flush and network "
                               "faults apply to it")
        return self.data_dir / "dump.rdb"

    def _wrapped(self):
        if self._container is None or self.data_dir is None:
            raise HarnessError("this Redis container is stopped for good, or on a remote engine")
        return self._container.get_wrapped_container()

    @property
    def running(self) -> bool:
        try:
            ctr = self._wrapped()
            ctr.reload()
            return ctr.status == "running"
        except Exception:  # noqa: BLE001 - removed meanwhile
            return False

    def halt(self, how: str = "save") -> None:
        """Stop the container, keeping it (its port binding and data dir) for `resume()`.
        `save`: SHUTDOWN SAVE; `term`: SIGTERM (docker stop, SIGKILL after 10 s); `kill`: SIGKILL."""
        if how not in ("save", "term", "kill"):
            raise HarnessError(f"unknown way to halt Redis {how!r}; use one of: save, term, kill")
        if not self.running:
            raise HarnessError("the Redis container is not running")
        ctr = self._wrapped()
        try:
            if how == "save":
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                with self.client(retry=Retry(NoBackoff(), 0)) as conn:
                    try:
                        conn.shutdown(save=True)
                    except redis.ConnectionError:
                        pass  # the server closed the connection as it exited: that is the answer
                ctr.wait(timeout=15)
            elif how == "term":
                ctr.stop(timeout=10)
            else:
                ctr.kill()
                ctr.wait(timeout=15)
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 - docker errors -> one line
            raise HarnessError(f"could not halt the Redis container ({how}): {first_line(exc)}") from None

    def resume(self) -> None:
        """Start the stopped container again: same port and password, loading /data/dump.rdb if there."""
        if self.running:
            raise HarnessError("the Redis container is already running")
        try:
            self._wrapped().start()
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise HarnessError(f"the Redis container cannot start again: {first_line(exc)}") from None
        self._wait_ready(30)

    def stop(self) -> None:
        super().stop()
        folder, self.data_dir = self.data_dir, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def start(choice: Choice) -> ContainerRedis:
    return ContainerRedis(choice.probe, reason=choice.reason).start()
