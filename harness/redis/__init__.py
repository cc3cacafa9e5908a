"""Redis for the harness: providers (`container`, `embedded`, `url`), built like harness.db's.

    server = start_redis()                # HARNESS_REDIS=auto|container|embedded|url
    server.flush()                        # each scenario starts on a clean Redis (the harness's db only)
    server.cache_settings() / server.coordination_settings() / server.env()   # for the proxy
    server.stop()

`auto` uses `HARNESS_REDIS_URL` when set, else a container when a Docker engine answers within
2 s and the image (HARNESS_REDIS_IMAGE) is present locally, else an embedded redis-server
(harness.services.providers). A provider is a module with `start(choice)` and a line in `PROVIDERS`.
"""

from __future__ import annotations

from harness.services.providers import Service, select

from . import container, embedded, urlserver
from .base import PREFIX, RedisServer
from .container import ContainerRedis, redis_image
from .embedded import EmbeddedRedis
from .urlserver import UrlRedis
from .wiring import VIAS

PROVIDERS = {"container": container.start, "embedded": embedded.start, "url": urlserver.start}
REDIS = Service(name="Redis", noun="Redis", option="--redis", variable="HARNESS_REDIS",
                url_noun="server URL", url_example="redis://...", image=redis_image, providers=PROVIDERS)
KINDS = REDIS.kinds

__all__ = ["KINDS", "VIAS", "PREFIX", "RedisServer", "ContainerRedis", "EmbeddedRedis", "UrlRedis", "start_redis", "redis_image"]


def start_redis(kind: str | None = "auto", url: str | None = None) -> RedisServer:
    """Start (or attach to) a Redis server. Stop it with `stop()` or use it as a context manager.

    `kind` comes from the argument, else env `HARNESS_REDIS` (default auto); `url` from the
    argument, else env `HARNESS_REDIS_URL`.
    """
    return select(REDIS, kind, url)
