"""PostgreSQL in a Docker container through testcontainers' `PostgresContainer`.

The engine (probe, leftovers of killed runs, Ryuk) is harness.services.docker's; only the
container itself is PostgreSQL's.
"""

from __future__ import annotations

import os

from harness.errors import HarnessError
from harness.services.docker import EngineProbe, OwnedContainer, owner_labels, prepare_engine, publishes_on_our_loopback
from harness.services.messages import first_line
from harness.services.processes import register_cleanup
from harness.services.providers import Choice, new_password

from .base import Server, make_url

DEFAULT_IMAGE = "postgres:16-alpine"


def pg_image() -> str:
    return os.environ.get("HARNESS_PG_IMAGE", "").strip() or DEFAULT_IMAGE


class ContainerServer(OwnedContainer, Server):
    kind = "container"

    def __init__(self, probe: EngineProbe, *, image: str | None = None, reason: str = "") -> None:
        super().__init__()
        self.probe = probe
        self.image = image or pg_image()
        self.reason = reason
        self.user = "postgres"
        self._password = new_password()
        self.host = "127.0.0.1"
        self.port = 0
        self._container = None
        self.ryuk = False
        self.cleaned: list[str] = []

    def url(self, dbname: str) -> str:
        return make_url(self.user, self._password, self.host, self.port, dbname)

    def start(self) -> "ContainerServer":
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # older testcontainers
            from testcontainers.postgres import PostgresContainer

        host = self.probe.host
        self.cleaned, self.ryuk = prepare_engine(self.probe, "db", self.image, what="PostgreSQL",
                                                 env_var="HARNESS_PG_IMAGE", fallback="--db embedded")

        # published loopback ports are only ours when we share the engine's network
        local = publishes_on_our_loopback(host)
        labels = owner_labels("db")
        try:
            pg = PostgresContainer(
                self.image,
                username=self.user,
                password=self._password,
                dbname="postgres",
                driver=None,
                command="postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                labels=labels,
            )
            if local:
                # publish on loopback only, random free port
                pg.ports = {"5432/tcp": ("127.0.0.1", None)}
            self._container = pg
            register_cleanup(self)
            pg.start()
        except HarnessError:
            self.stop()
            raise
        except Exception as exc:  # noqa: BLE001 - docker / testcontainers errors -> one line
            self.stop()
            msg = first_line(exc)
            hint = None
            if "pull access denied" in msg or "not found" in msg.lower() or "manifest" in msg:
                hint = (f"image {self.image} is not present locally and cannot be pulled: build one locally "
                        "(see docs) and set HARNESS_PG_IMAGE, or use --db embedded")
            raise HarnessError(f"PostgreSQL container {self.image} did not start: {msg}", hint=hint) from None

        self.host = "127.0.0.1" if local else pg.get_container_host_ip()
        self.port = int(pg.get_exposed_port(5432))
        self._read_version()
        return self


def start(choice: Choice) -> ContainerServer:
    return ContainerServer(choice.probe, reason=choice.reason).start()
