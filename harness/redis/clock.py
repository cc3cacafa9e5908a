"""The scenario's clock in Redis: key expiry follows `advance_clock`.

Redis expires keys on its own (real) clock, which the scenario cannot move: a proxy frozen at
noon that sets a 60 s TTL on a spend counter, then advances its clock 2 minutes, would still
find the key. So when the scenario's clock moves forward by S seconds, the harness moves every
key of its database S seconds nearer its expiry: keys with less than S left are deleted, the
others get their remaining TTL minus S. Keys without a TTL are left alone. Only the harness's
own database index is touched (SCAN there), so a shared `url` server's other data is not.
"""

from __future__ import annotations

from harness.errors import HarnessError


def advance_ttls(server, seconds: float, batch: int = 500) -> dict[str, int]:
    """Shift every TTL in the harness's database by `seconds`: {"expired": n, "shifted": m}."""
    import redis

    if seconds <= 0:
        return {"expired": 0, "shifted": 0}
    step_ms = int(round(seconds * 1000))
    expired = shifted = 0
    try:
        with server.client() as conn:
            keys = list(conn.scan_iter(count=batch))
            for start in range(0, len(keys), batch):
                chunk = keys[start:start + batch]
                with conn.pipeline(transaction=False) as pipe:
                    for key in chunk:
                        pipe.pttl(key)
                    ttls = pipe.execute()
                with conn.pipeline(transaction=False) as pipe:
                    for key, ttl in zip(chunk, ttls):
                        if ttl is None or ttl < 0:  # -1: no expiry; -2: gone meanwhile
                            continue
                        if ttl <= step_ms:
                            pipe.delete(key)
                            expired += 1
                        else:
                            pipe.pexpire(key, ttl - step_ms)
                            shifted += 1
                    pipe.execute()
    except redis.RedisError as exc:
        raise HarnessError(f"could not move Redis's key expiry with the clock: {exc}") from None
    return {"expired": expired, "shifted": shifted}
