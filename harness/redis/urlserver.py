"""An existing Redis server given by URL. The harness owns one database index there, and nothing else.

LiteLLM's own keys (spend counters, caches) carry no prefix we could set, so a key prefix cannot
keep them apart from other data: the harness claims a whole database instead. The index is the
URL's path (`redis://host:6379/7`), or, with none, the first of 15, 14, ... 1 it can claim (so
parallel harness processes get one each; 0, the usual home of real data, is never picked).
A database is claimed only when it is empty, or holds the owner mark of a harness process of
this machine that is gone; the mark (`litellm-harness:owner`) is set in the same transaction.
`flush()` and `stop()` empty only that database; every other database and key is left alone.
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import unquote, urlsplit

from harness.errors import HarnessError
from harness.services.messages import first_line, redact_url
from harness.services.processes import owner_alive, process_start_ticks, register_cleanup, unregister_cleanup
from harness.services.providers import Choice

from .base import PREFIX, RedisServer

OWNER_KEY = PREFIX + "owner"
AUTO_DBS = tuple(range(15, 0, -1))


class UrlRedis(RedisServer):
    kind = "url"

    def __init__(self, url: str, *, reason: str = "") -> None:
        super().__init__(reason=reason)
        hint = "use redis://[:password@]host[:port][/db]"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise HarnessError("the Redis URL cannot be parsed", hint=hint) from None
        if parts.scheme != "redis" or not parts.hostname:
            raise HarnessError(f"the Redis URL must be redis://host... (got {redact_url(url)})", hint=hint)
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise HarnessError(f"the Redis URL's path must be a database index (got /{path})", hint=hint)
        self.host, self.port = parts.hostname, port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        self._given = redact_url(url)
        self._candidates = (int(path),) if path else AUTO_DBS
        self._mark = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "start_ticks": process_start_ticks(os.getpid())})
        self._claimed = False

    def start(self) -> "UrlRedis":
        import redis

        self.db = self._candidates[0]
        try:
            self._wait_ready(0)
        except HarnessError as exc:
            raise HarnessError(f"cannot reach Redis at {self._given}: {exc.message.split(': ', 1)[-1]}",
                               hint="check that the server runs and the URL (password, port) is right") from None
        refused = []
        for db in self._candidates:
            self.db = db
            try:
                why = self._claim()
            except redis.ResponseError as exc:  # e.g. "DB index is out of range"
                why = first_line(exc)
            if why is None:
                self._claimed = True
                register_cleanup(self)  # empties our database at exit and on SIGTERM/SIGHUP
                self.reason += f"; database {db} is the harness's"
                return self
            refused.append(f"{db}: {why}")
        raise HarnessError(f"no database of Redis at {self._given} can be the harness's ({'; '.join(refused[:3])})",
                           hint="name an empty database index in the URL, e.g. redis://host:6379/9")

    def _claim(self) -> str | None:
        """Take database `self.db` (None), or say why not."""
        import redis

        with self.client() as conn, conn.pipeline() as pipe:
            try:
                pipe.watch(OWNER_KEY)  # a claim by someone else in between aborts ours
                owner, size = pipe.get(OWNER_KEY), pipe.dbsize()
                if owner is None and size:
                    return f"holds {size} keys the harness did not write"
                if owner is not None and self._owner_lives(owner):
                    return f"in use by another harness ({owner.decode(errors='replace')})"
                pipe.multi()
                if owner is not None:
                    pipe.flushdb()  # a dead harness's leftovers
                    self.cleaned.append(f"emptied database {self.db} left by {owner.decode(errors='replace')}")
                pipe.set(OWNER_KEY, self._mark)
                pipe.execute()
            except redis.WatchError:
                return "claimed by another harness just now"
        return None

    @staticmethod
    def _owner_lives(raw: bytes) -> bool:
        try:
            owner = json.loads(raw)
            if owner["host"] != socket.gethostname():
                return True  # another machine's: we cannot tell, so it stays theirs
            return owner_alive(int(owner["pid"]), owner.get("start_ticks"))
        except (ValueError, KeyError, TypeError):
            return True

    def flush(self) -> None:
        """Empty the harness's database and keep the owner mark (one transaction)."""
        with self.client() as conn, conn.pipeline(transaction=True) as pipe:
            pipe.flushdb().set(OWNER_KEY, self._mark).execute()

    def stop(self) -> None:
        """Empty the harness's database (owner mark included) if it is still ours; idempotent."""
        super().stop()
        unregister_cleanup(self)
        if not self._claimed:
            return
        self._claimed = False
        try:
            with self.client() as conn:
                if conn.get(OWNER_KEY) == self._mark.encode():
                    conn.flushdb()
        except Exception:  # noqa: BLE001 - the server went away: nothing of ours to leave there
            pass


def start(choice: Choice) -> UrlRedis:
    return UrlRedis(choice.url, reason=choice.reason).start()
