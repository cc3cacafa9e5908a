"""The three ways a LiteLLM proxy finds Redis, as plain values (wiring them into a proxy's config
and environment is the caller's business). Bugs depend on which one a deployment uses.

- `cache`: `litellm_settings.cache` + `cache_params` (the response cache, which the proxy also
  uses for its Redis spend counters when nothing else is configured);
- `coordination`: `general_settings.coordination_redis` (newer releases: a Redis for cross-pod
  state, independent of the response cache);
- `env`: bare `REDIS_HOST` / `REDIS_PORT` / `REDIS_PASSWORD` (+ `REDIS_DB`), read by LiteLLM's
  own Redis client factory (coordination from these alone only since 1.101.0).
"""

from __future__ import annotations

VIAS = ("cache", "coordination", "env")


def connection(host: str, port: int, password: str | None, db: int, username: str | None = None) -> dict:
    """redis-py keyword arguments; `db` only when it is not the default 0 (keeps configs minimal)."""
    params: dict = {"host": host, "port": int(port)}
    if username:
        params["username"] = username
    if password:
        params["password"] = password
    if db:
        params["db"] = int(db)
    return params


def cache_settings(host: str, port: int, password: str | None, db: int = 0, username: str | None = None) -> dict:
    """The `litellm_settings` entries: `{"cache": True, "cache_params": {"type": "redis", ...}}`.

    Responses are not cached (`supported_call_types: []`): the scenarios' calls are identical,
    and a cache hit costs nothing, so spend would stop after the first call. The proxy still
    builds its Redis client from these settings and uses it for its spend counters."""
    return {"cache": True, "cache_params": {"type": "redis", **connection(host, port, password, db, username),
                                            "supported_call_types": []}}


def coordination_settings(host: str, port: int, password: str | None, db: int = 0, username: str | None = None) -> dict:
    """The `general_settings` entry: `{"coordination_redis": {...}}`."""
    return {"coordination_redis": connection(host, port, password, db, username)}


def redis_env(host: str, port: int, password: str | None, db: int = 0, username: str | None = None) -> dict[str, str]:
    """`REDIS_HOST`, `REDIS_PORT`, and `REDIS_USERNAME` / `REDIS_PASSWORD` / `REDIS_DB` when set."""
    return {f"REDIS_{k.upper()}": str(v) for k, v in connection(host, port, password, db, username).items()}
