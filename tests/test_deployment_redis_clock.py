"""Redis key expiry follows `advance_clock` (harness.redis.clock), on a real embedded redis-server."""

from __future__ import annotations

import pytest
import redis

from harness.redis import start_redis
from harness.redis.clock import advance_ttls


@pytest.fixture(scope="module")
def server():
    with start_redis("embedded") as srv:
        yield srv


@pytest.fixture()
def conn(server):
    server.flush()
    with server.client() as c:
        yield c


def other_db(server, index: int) -> redis.Redis:
    assert index != server.db
    return redis.Redis(host=server.host, port=server.port, password=server.password, db=index)


def test_ttls_move_with_the_clock(server, conn):
    conn.set("short", 1, ex=60)
    conn.set("long", 1, ex=300)
    conn.set("forever", 1)
    conn.hset("hash", "f", 1)
    conn.expire("hash", 100)
    assert advance_ttls(server, 120) == {"expired": 2, "shifted": 1}
    assert conn.exists("short") == 0 and conn.exists("hash") == 0
    assert 175 <= conn.ttl("long") <= 180
    assert conn.get("forever") == b"1" and conn.ttl("forever") == -1


def test_repeated_advances_add_up_and_nothing_moves_backwards(server, conn):
    conn.set("k", 1, px=10_000)
    advance_ttls(server, 3)
    advance_ttls(server, 3.5)
    assert 3_000 <= conn.pttl("k") <= 3_500
    assert advance_ttls(server, 0) == {"expired": 0, "shifted": 0}
    assert advance_ttls(server, -50) == {"expired": 0, "shifted": 0}
    assert conn.pttl("k") > 3_000


def test_a_key_whose_ttl_equals_the_step_is_gone(server, conn):
    conn.set("edge", 1, px=5_000)
    advance_ttls(server, 6)
    assert conn.exists("edge") == 0


def test_only_the_harness_database_is_touched(server, conn):
    with other_db(server, 3) as neighbour:
        neighbour.flushdb()
        neighbour.set("theirs-short", 1, ex=60)
        neighbour.set("theirs-long", 1, ex=300)
        conn.set("ours", 1, ex=60)
        try:
            assert advance_ttls(server, 120) == {"expired": 1, "shifted": 0}
            assert conn.exists("ours") == 0
            assert neighbour.get("theirs-short") == b"1" and neighbour.ttl("theirs-short") > 55
            assert neighbour.ttl("theirs-long") > 295
        finally:
            neighbour.flushdb()


def test_many_keys_in_batches(server, conn):
    with conn.pipeline(transaction=False) as pipe:
        for i in range(1_200):
            pipe.set(f"k{i}", 1, ex=60 if i % 2 else 600)
        pipe.execute()
    assert advance_ttls(server, 120, batch=100) == {"expired": 600, "shifted": 600}
    assert conn.dbsize() == 600


def test_a_server_that_is_gone_is_one_line_error():
    from harness.errors import HarnessError

    with start_redis("embedded") as srv:
        srv.halt("kill")
        with pytest.raises(HarnessError, match="could not move Redis's key expiry with the clock"):
            advance_ttls(srv, 10)
