"""Fault building blocks on a real embedded redis-server, spoken to with redis-py through the relay.

Timing is printed, never asserted tightly: the lower bounds below hold on any machine (latency
can only add up), the upper ones are generous deadlines for "it happened at all".
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.errors import HarnessError
from harness.faults import Relay
from harness.faults import resp
from harness.faults.processes import RedisControl, stop_group
from harness.redis import start_redis


@pytest.fixture(scope="module")
def server():
    with start_redis("embedded") as srv:
        yield srv


@pytest.fixture()
def relay(server):
    server.flush()
    with Relay("127.0.0.1", server.port, protocol="redis").start() as rel:
        yield rel
    assert not rel._thread.is_alive()


def client(server, relay, **kw) -> redis.Redis:
    """No client-side retries: each fault must show as the error it causes."""
    options = {"socket_timeout": 5, "socket_connect_timeout": 2, "retry": Retry(NoBackoff(), 0), **kw}
    return redis.Redis(host=relay.host, port=relay.port, password=server.password, db=server.db, **options)


def test_pass_through(server, relay):
    conn = client(server, relay)
    big = b"x" * (3 * 1024 * 1024 + 7)   # arrives in many reads on both sides
    assert conn.ping() is True
    assert conn.set("k", big) is True
    assert conn.get("k") == big
    assert conn.incrbyfloat("spend", 0.25) == 0.25
    assert relay.events == [] and relay.mode == "pass"


def test_latency(server, relay):
    conn = client(server, relay)
    conn.ping()
    t0 = time.monotonic()
    conn.ping()
    base = time.monotonic() - t0
    relay.set_mode("latency", latency_ms=100, jitter_ms=20)
    rtts = []
    for _ in range(3):
        t0 = time.monotonic()
        assert conn.ping() is True
        rtts.append(time.monotonic() - t0)
    relay.set_mode("pass")
    print(f"\nPING through the relay: {base * 1000:.1f} ms; with latency 100 ms + 0..20 ms jitter each way: "
          + ", ".join(f"{r * 1000:.0f}" for r in rtts) + " ms")
    assert min(rtts) >= 0.19   # 100 ms each direction, at least


def test_blackhole_times_out_then_pass_recovers(server, relay):
    conn = client(server, relay, socket_timeout=0.5)
    assert conn.set("k", "v")
    event = relay.set_mode("blackhole")
    t0 = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        conn.get("k")
    print(f"\nblackhole: client timed out after {time.monotonic() - t0:.2f} s")
    fresh = client(server, relay, socket_timeout=0.5)
    with pytest.raises(redis.TimeoutError):   # new connections are accepted, never answered
        fresh.ping()
    relay.set_mode("pass")
    assert conn.get("k") == b"v" and fresh.ping()
    assert event.effects.get("bytes_dropped", 0) > 0 and event.end == "switched"


def test_refuse_then_pass_recovers(server, relay):
    conn = client(server, relay)
    assert conn.ping()
    event = relay.set_mode("refuse")
    with pytest.raises(redis.ConnectionError):   # the open connection was reset
        conn.ping()
    with pytest.raises(redis.ConnectionError):   # and so is a new one
        client(server, relay).ping()
    assert relay.connections == 0
    relay.set_mode("pass")
    assert conn.ping() and client(server, relay).ping()
    assert event.effects["connections_closed"] == 1 and event.effects["connections_refused"] >= 1


def test_reset_drops_open_connections_once(server, relay):
    conn = client(server, relay)
    assert conn.ping()
    before = relay.connections_total
    event = relay.set_mode("reset")
    assert relay.mode == "pass" and event.started_at == event.ended_at and event.end == "instant"
    assert event.effects == {"connections_closed": 1}
    # redis-py's pool sees the reset socket before using it and reconnects: nothing else changed
    assert conn.ping() and relay.connections_total == before + 1


def test_fail_commands_fails_only_the_matching_ones(server, relay):
    conn = client(server, relay)
    direct = server.client()
    conn.set("spend", "1")
    event = relay.set_mode("fail_commands", commands=["incrby*", "GET"])
    with pytest.raises(redis.ResponseError, match="harness fault"):
        conn.incrbyfloat("spend", 5)
    with pytest.raises(redis.ResponseError, match="harness fault"):
        conn.get("spend")
    assert conn.set("other", "2") and conn.mget("spend", "other") == [b"1", b"2"]
    assert direct.get("spend") == b"1"   # never reached the server
    relay.set_mode("pass")
    assert conn.incrbyfloat("spend", 5) == 6.0
    assert event.effects["commands_failed"] == 2


def test_pipelined_commands_keep_their_replies_in_order(server, relay):
    conn = client(server, relay)
    relay.set_mode("fail_commands", commands=["GET"])
    pipe = conn.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"p{i}", i)
        pipe.get(f"p{i}")
        pipe.incr("n")
    out = pipe.execute(raise_on_error=False)
    assert out[0::3] == [True] * 50
    assert all(isinstance(r, redis.ResponseError) and "harness fault" in str(r) for r in out[1::3])
    assert out[2::3] == list(range(1, 51))


def test_partial_reads_on_a_raw_socket(server, relay):
    """The same pipeline sent three bytes at a time: commands split anywhere still parse."""
    relay.set_mode("fail_commands", commands=["GET"])
    pw = server.password.encode()
    cmds = [[b"AUTH", pw], [b"SELECT", str(server.db).encode()], [b"SET", b"a", b"x\r\ny"], [b"GET", b"a"],
            [b"STRLEN", b"a"], [b"GET", b"b"], [b"PING"]]
    wire = b"".join(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in c) for c in cmds)
    wire += b"PING\r\n"   # an inline command too
    expected = b"+OK\r\n+OK\r\n+OK\r\n-ERR harness fault\r\n:4\r\n-ERR harness fault\r\n+PONG\r\n+PONG\r\n"
    with socket.create_connection((relay.host, relay.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(wire), 3):
            sock.sendall(wire[i:i + 3])
            time.sleep(0.001)
        got = b""
        while len(got) < len(expected):
            chunk = sock.recv(4096)
            assert chunk, got
            got += chunk
    assert got == expected


def _command(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        assert chunk, got
        got += chunk
    return got


def test_subscribe_ends_tracking_after_earlier_replies(server, relay):
    """A failed command queued behind a forwarded one still gets its answer in place when the
    connection turns to Pub/Sub in the same write; the messages then pass untouched."""
    relay.set_mode("fail_commands", commands=["GET"])
    with socket.create_connection((relay.host, relay.port), timeout=5) as sock:
        sock.sendall(_command(b"AUTH", server.password.encode()) + _command(b"SET", b"a", b"1")
                     + _command(b"GET", b"a") + _command(b"SUBSCRIBE", b"ch"))
        head = b"+OK\r\n+OK\r\n-ERR harness fault\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
        assert _read_exactly(sock, len(head)) == head
        assert server.client().publish("ch", "hi") == 1
        message = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        assert _read_exactly(sock, len(message)) == message


def test_resp_parser_finds_the_same_boundaries_at_every_split():
    wire = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\nPING\r\n"
    for cut in range(len(wire) + 1):
        head = wire[:cut]
        got = resp.request_end(head, 0)
        assert got is None or got[0] == 20   # the first command is bytes 0..20
    assert resp.request_end(wire, 0) == (20, [b"GET", b"A"])
    assert resp.request_end(wire, 20) == (34, [b"PING"])
    assert resp.request_end(wire, 34) == (40, [b"PING"])
    assert resp.request_end(wire, 40) is None
    reply = b"*3\r\n$-1\r\n:1\r\n%1\r\n+k\r\n|1\r\n+a\r\n+b\r\n,1.5\r\n+next\r\n"
    end = len(reply) - len(b"+next\r\n")
    for cut in range(end):
        assert resp.reply_end(reply[:cut], 0) is None
    assert resp.reply_end(reply, 0) == end
    with pytest.raises(resp.RespError):
        resp.reply_end(b"?what\r\n", 0)


def test_fault_log_and_expiry(server, relay):
    conn = client(server, relay)
    event = relay.set_mode("refuse", max_seconds=0.3)
    assert event.active and relay.mode == "refuse"
    deadline = time.monotonic() + 5
    while relay.mode != "pass" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay.mode == "pass" and conn.ping()
    relay.set_mode("latency", latency_ms=1)
    relay.stop()
    first, second = relay.events
    assert (first.fault, first.end, second.fault, second.end) == ("refuse", "expired", "latency", "stopped")
    assert first.started_at < first.ended_at <= second.started_at < second.ended_at
    assert 0.3 <= first.seconds < 5
    assert first.as_dict()["started_at"].endswith("+00:00")


def test_bounds_and_bad_input(server):
    with Relay("127.0.0.1", server.port, protocol="redis", max_connections=2, max_bytes=64 * 1024).start() as rel:
        a, b, c = (client(server, rel) for _ in range(3))
        assert a.ping() and b.ping()
        with pytest.raises(redis.ConnectionError):
            c.ping()
        with pytest.raises(redis.RedisError):
            a.set("big", b"x" * 100_000)   # over max_bytes: the relay refuses from here on
        assert rel.mode == "refuse" and rel.events[-1].detail == {"cap": "max_bytes 65536"}
        for bad, kw in (("warp", {}), ("latency", {}), ("latency", {"latency_ms": -1}),
                        ("fail_commands", {}), ("pass", {"max_seconds": 601}), ("pass", {"max_seconds": "x"})):
            with pytest.raises(HarnessError) as info:
                rel.set_mode(bad, **kw)
            assert "\n" not in str(info.value)
    with pytest.raises(HarnessError, match="loopback"):
        Relay("192.0.2.1", 6379)   # refused before anything connects anywhere
    with pytest.raises(HarnessError, match="protocol='redis'"):
        with Relay("127.0.0.1", server.port).start() as tcp:
            tcp.set_mode("fail_commands", commands=["GET"])


def test_redis_restart_keeping_restoring_or_emptying_data(server, relay):
    control = RedisControl(server)
    port, conn = server.port, client(server, relay)
    conn.set("spend", "1")
    control.snapshot("one")
    conn.set("spend", "2")
    t0 = time.monotonic()
    control.restart(how="save", data="keep")
    print(f"\nrestart keeping data: {time.monotonic() - t0:.2f} s")
    assert server.port == port and conn.get("spend") == b"2"

    down = control.stop(how="kill")
    with pytest.raises(redis.ConnectionError):   # through the relay: the server behind is gone
        client(server, relay).ping()
    control.start(data="one")
    assert conn.get("spend") == b"1"
    assert down.detail == {"how": "kill", "data": "one"} and down.started_at < down.ended_at

    control.stop(how="term")
    control.start(data="empty")
    assert conn.get("spend") is None
    conn.set("x", "1")
    assert control.flush().end == "instant" and conn.dbsize() == 0
    with pytest.raises(HarnessError, match="no Redis snapshot 'nope'"):
        control.stop(how="kill")
        control.start(data="nope")
    control.start()
    assert [e.fault for e in control.events] == ["redis_down"] * 3 + ["redis_flush", "redis_down"]
    assert all(not e.active for e in control.events)


def test_redis_down_ends_by_itself(server, relay):
    control = RedisControl(server)
    control.stop(how="save", max_seconds=0.5)
    deadline = time.monotonic() + 10
    while control.events[-1].active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.running and control.events[-1].end == "expired"
    assert client(server, relay).ping()
    with pytest.raises(HarnessError, match="embedded"):
        RedisControl(object())


def test_stop_group_terms_then_kills():
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                                 " print(1, flush=True); time.sleep(60)"], start_new_session=True, stdout=subprocess.PIPE)
    try:
        assert stubborn.stdout.readline() == b"1\n"   # its handler is in place
        assert stop_group(polite) == "terminated"
        assert stop_group(stubborn, grace=0.3) == "killed"
        assert stop_group(polite) == "gone"
        with pytest.raises(HarnessError):
            stop_group(polite, how="nicely")
    finally:
        for proc in (polite, stubborn):
            proc.kill()
            proc.wait()
        stubborn.stdout.close()
    with pytest.raises(HarnessError, match="process group"):
        own = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            stop_group(own)
        finally:
            own.kill()
            own.wait()


def test_nothing_left_running(server):
    rel = Relay("127.0.0.1", server.port, protocol="redis").start()
    client(server, rel).ping()
    port, thread = rel.port, rel._thread
    rel.stop()
    rel.stop()   # idempotent
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not [t for t in threading.enumerate() if t.name == "harness-relay"]
