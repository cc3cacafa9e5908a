"""Redis for the harness: providers (`container`, `embedded`, `url`), built like harness.db's.

    server = start_redis()                # HARNESS_REDIS=auto|container|embedded|url
    server.flush()                        # each scenario starts on a clean Redis (the harness's db only)
    server.cache_settings() / server.coordination_settings() / server.env()   # for the proxy
    server.stop()

`auto` uses `HARNESS_REDIS_URL` when set, else a container when a Docker engine answers within
2 s and the image (HARNESS_REDIS_IMAGE) is present locally, else an embedded redis-server.
"""

from __future__ import annotations

import os
import time

from harness.db.base import redact_url
from harness.db.container import image_present_at, probe_engine
from harness.errors import HarnessError

from .base import PREFIX, RedisServer
from .container import ContainerRedis, redis_image, start_container
from .embedded import EmbeddedRedis, start_embedded
from .urlserver import UrlRedis, start_url
from .wiring import VIAS

KINDS = ("auto", "container", "embedded", "url")

__all__ = ["KINDS", "VIAS", "PREFIX", "RedisServer", "ContainerRedis", "EmbeddedRedis", "UrlRedis", "start_redis", "redis_image"]


def start_redis(kind: str | None = "auto", url: str | None = None) -> RedisServer:
    """Start (or attach to) a Redis server. Stop it with `stop()` or use it as a context manager.

    `kind` comes from the argument, else env `HARNESS_REDIS` (default auto); `url` from the
    argument, else env `HARNESS_REDIS_URL`.
    """
    explicit = kind not in (None, "", "auto")
    source = "requested" if explicit else "HARNESS_REDIS"
    if not explicit:
        kind = os.environ.get("HARNESS_REDIS") or "auto"
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise HarnessError(f"unknown Redis kind {kind!r}", hint="use one of: " + ", ".join(KINDS))
    url = url or os.environ.get("HARNESS_REDIS_URL") or None

    if kind == "url":
        if not url:
            raise HarnessError("--redis url needs a server URL", hint="pass --redis-url or set HARNESS_REDIS_URL=redis://...")
        return start_url(url, reason=f"url {source}: {redact_url(url)}")
    if kind == "embedded":
        server = start_embedded(reason="embedded " + source)
        server.reason += f": Redis {server.version} ({server.source}: {server.binary})"
        return server
    if kind == "container":
        probe = probe_engine()
        server = start_container(probe, reason=f"container {source}: {probe.describe()}")
        server.reason += f"; image {server.image} (Redis {server.version})"
        return server

    # auto
    if url:
        return start_url(url, reason=f"HARNESS_REDIS_URL is set: using {redact_url(url)}")
    t0 = time.monotonic()
    probe = probe_engine()
    probe_s = time.monotonic() - t0
    if probe.ok:
        image = redis_image()
        if image_present_at(probe.host, image):
            server = start_container(probe, reason=probe.describe())
            server.reason += f"; using container {image} (Redis {server.version})"
            return server
        why = f"{probe.describe()} but image {image} is not present locally (no pull in auto mode)"
    else:
        why = probe.describe()
    server = start_embedded(reason=why)
    server.reason = (f"{why}; using embedded Redis {server.version} ({server.source}) "
                     f"(engine check took {probe_s:.2f} s)")
    return server
