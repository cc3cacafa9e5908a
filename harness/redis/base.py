"""What every Redis provider shares: the connection, `flush()`, the LiteLLM wiring, redaction."""

from __future__ import annotations

import time
from urllib.parse import quote

from harness.errors import HarnessError
from harness.services.messages import first_line, redact_url

from . import wiring

#: Keys the harness writes itself start with this (e.g. the owner mark on a `url` server).
PREFIX = "litellm-harness:"


def make_url(host: str, port: int, password: str | None, db: int, username: str | None = None) -> str:
    auth = f"{quote(username or '', safe='')}:{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


class RedisServer:
    """One Redis server the harness uses (the `harness.redis.RedisServer` contract).

    `kind` ("container" | "embedded" | "url"), `version` (e.g. "6.2.14"), `reason` (why this
    provider was chosen), `host`, `port`, `db` (the database index the harness owns: every key
    the proxy writes lands there), `url` (redis://:password@host:port/db), `prefix` (of keys the
    harness writes itself). `flush()` empties the harness's database only; `stop()` is idempotent.
    """

    kind: str = "?"
    prefix: str = PREFIX

    def __init__(self, *, reason: str = "") -> None:
        self.reason = reason
        self.version = ""
        self.host = "127.0.0.1"
        self.port = 0
        self.db = 0
        self.password: str | None = None
        self.username: str | None = None
        self.start_seconds = 0.0
        self.cleaned: list[str] = []
        self._stopped = False

    # --- contract -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return make_url(self.host, self.port, self.password, self.db, self.username)

    def client(self, **kwargs):
        """A new redis-py client on the harness's database."""
        import redis

        options = {"socket_timeout": 10, "socket_connect_timeout": 5, **kwargs}
        return redis.Redis(host=self.host, port=self.port, username=self.username, password=self.password,
                           db=self.db, **options)

    def flush(self) -> None:
        """Empty the harness's database (FLUSHDB of `db`): each scenario starts on a clean Redis.
        Other databases on the server are left alone."""
        with self.client() as conn:
            conn.flushdb()

    #: whether the harness can stop and start this server's process (`halt`, `resume`, `dump_path`)
    process_faults: bool = False

    @property
    def stopped(self) -> bool:
        """`stop()` was called: the server is gone for good."""
        return self._stopped

    def process_control(self):
        """A `harness.faults.processes.RedisControl` to stop, start and snapshot this server."""
        from harness.faults.processes import RedisControl

        return RedisControl(self)

    def stop(self) -> None:  # overridden by providers that own a process or container
        self._stopped = True

    # --- what the proxy gets ------------------------------------------------------------
    def cache_settings(self) -> dict:
        return wiring.cache_settings(self.host, self.port, self.password, self.db, self.username)

    def coordination_settings(self) -> dict:
        return wiring.coordination_settings(self.host, self.port, self.password, self.db, self.username)

    def env(self) -> dict[str, str]:
        return wiring.redis_env(self.host, self.port, self.password, self.db, self.username)

    # --- helpers ------------------------------------------------------------------------
    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind} version={self.version} url={redact_url(self.url)}>"

    def _wait_ready(self, timeout: float, alive=lambda: True) -> None:
        """PING until the server answers (it loads nothing: this takes milliseconds), then read its version."""
        import redis

        from redis.backoff import NoBackoff
        from redis.retry import Retry

        deadline = time.monotonic() + timeout
        last = ""
        while alive():
            try:  # no client-side retries: this loop is the retry, and a URL gets one try (timeout 0)
                with self.client(socket_timeout=2, retry=Retry(NoBackoff(), 0)) as conn:
                    conn.ping()
                    self.version = str(conn.info("server").get("redis_version", "?"))
                return
            except redis.AuthenticationError as exc:
                raise HarnessError(f"Redis at {redact_url(self.url)} refused the password: {first_line(exc)}") from None
            except redis.RedisError as exc:
                last = first_line(exc)
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
        raise HarnessError(f"Redis at {redact_url(self.url)} did not answer PING: {last or 'it exited'}")
