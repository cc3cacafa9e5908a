"""Redis in a Docker container through testcontainers' `RedisContainer`.

Engine probe, owner labels, clean-up of a killed run's containers and the Ryuk decision are
harness.db.container's (one way to do each); only the container itself differs.
"""

from __future__ import annotations

import os

from harness.db.base import new_password, one_line, register_cleanup
from harness.db.container import EngineProbe, OwnedContainer, owner_labels, prepare_engine, probe_engine, publishes_on_our_loopback
from harness.errors import HarnessError

from .base import RedisServer

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

    def start(self) -> "ContainerRedis":
        import time

        from testcontainers.community.redis import RedisContainer

        t0 = time.monotonic()
        self.cleaned, self.ryuk = prepare_engine(self.probe, ROLE, self.image, what="Redis",
                                                 env_var="HARNESS_REDIS_IMAGE", fallback="--redis embedded")
        local = publishes_on_our_loopback(self.probe.host)
        try:
            ctr = RedisContainer(self.image, password=self.password, labels=owner_labels(ROLE))
            if local:
                ctr.ports = {"6379/tcp": ("127.0.0.1", None)}  # loopback only, random free port
                # inside a container (/.dockerenv) testcontainers would answer the bridge's gateway,
                # where nothing is published; its PING readiness check runs from here, not inside
                ctr.get_container_host_ip = lambda: "127.0.0.1"
            self._container = ctr
            register_cleanup(self)
            ctr.start()  # waits for PING
        except Exception as exc:  # noqa: BLE001 - docker / testcontainers errors -> one line
            self.stop()
            raise HarnessError(f"Redis container {self.image} did not start: {one_line(exc)}",
                               hint="check the image (HARNESS_REDIS_IMAGE) or use --redis embedded") from None
        self.host = ctr.get_container_host_ip()
        self.port = int(ctr.get_exposed_port(6379))
        self._wait_ready(30)
        self.start_seconds = time.monotonic() - t0
        return self



def start_container(probe: EngineProbe | None = None, *, reason: str = "") -> ContainerRedis:
    probe = probe or probe_engine()
    if not probe.ok:
        raise HarnessError(
            f"--redis container: {probe.describe()}",
            hint=("start dockerd (as root: scripts/docker-engine.sh start, then export the lines it prints), "
                  "or set DOCKER_HOST / tc.host, or use --redis embedded"),
        )
    return ContainerRedis(probe, reason=reason).start()
