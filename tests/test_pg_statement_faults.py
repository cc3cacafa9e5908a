"""PostgreSQL statement faults: the frontend-protocol reader on captured bytes, then the relay in
front of the real embedded PostgreSQL with psycopg (simple protocol: `execute(..., prepare=False)`
with no parameters sends a Query; with parameters psycopg 3 sends Parse/Bind/Describe/Execute/Sync,
the extended protocol Prisma's engine uses)."""

from __future__ import annotations

import struct
import time

import psycopg
import pytest

from harness.db import start_server
from harness.errors import HarnessError
from harness.faults import Relay
from harness.faults import pgwire
from harness.steps.faults import PostgresNetwork

# what a client opens with: an SSLRequest (these 8 bytes are psycopg's and libpq's), then a StartupMessage
# (written to the protocol spec here; the tests below drive the real client)
SSL_REQUEST = bytes.fromhex("0000000804d2162f")
STARTUP = (struct.pack("!ii", 0, 196608) + b"user\0harness\0database\0db\0\0")
STARTUP = struct.pack("!i", len(STARTUP)) + STARTUP[4:]
EXTENDED = (pgwire.parse('UPDATE "public"."LiteLLM_VerificationToken" SET spend = $1', "s1", (701,))
            + b"B" + struct.pack("!i", 4 + 12) + b"\0s1\0" + b"\0\0\0\0\0\0"   # Bind (no params, simplified)
            + b"S" + struct.pack("!i", 4))


def test_startup_and_messages_are_found_at_every_split():
    stream = SSL_REQUEST + STARTUP + pgwire.query("SELECT 1") + EXTENDED
    for cut in range(len(stream) + 1):
        part = stream[:cut]
        found, pos, first = [], 0, 2
        while True:
            got = pgwire.startup_end(part, pos) if first else pgwire.message_end(part, pos)
            if got is None:
                break
            found.append(got[1])
            pos, first = got[0], max(first - 1, 0)
        full = [pgwire.SSL_REQUEST, 196608, b"Q", b"P", b"B", b"S"]
        assert found == full[:len(found)]
        assert pos <= cut
    assert pgwire.statement(pgwire.query("SELECT 1")) == "SELECT 1"
    assert pgwire.statement(EXTENDED[:EXTENDED.index(b"B\0")]).startswith('UPDATE "public"')
    assert pgwire.statement(b"S\0\0\0\4") is None


def test_failing_message_keeps_the_statement_name_and_parameter_types():
    original = pgwire.parse("UPDATE t SET a = $1", "s7", (701, 25))
    failed = pgwire.failing_message(original)
    assert failed == pgwire.parse(pgwire.FAULT_SQL, "s7", (701, 25))
    assert pgwire.failing_message(pgwire.query("UPDATE t")) == pgwire.query(pgwire.FAULT_SQL)
    with pytest.raises(pgwire.PgWireError):
        pgwire.message_end(b"Q\0\0\0\1")
    with pytest.raises(pgwire.PgWireError):
        pgwire.startup_end(struct.pack("!ii", 1 << 20, 196608))


def test_step_checks_its_fields():
    with pytest.raises(ValueError, match="needs `match`"):
        PostgresNetwork(mode="fail_statements")
    with pytest.raises(ValueError, match="not a valid regex"):
        PostgresNetwork(mode="fail_statements", match="(")
    with pytest.raises(ValueError, match="are for modes"):
        PostgresNetwork(mode="refuse", times=1)
    with pytest.raises(ValueError, match="latency_ms"):
        PostgresNetwork(mode="delay_statements", match="UPDATE")
    assert PostgresNetwork(mode="fail_statements", match="UPDATE", times=1).times == 1


@pytest.fixture(scope="module")
def server():
    with start_server("embedded") as srv:
        with srv.admin() as conn:
            conn.execute("DROP TABLE IF EXISTS harness_pgfault")
            conn.execute("CREATE TABLE harness_pgfault (id int PRIMARY KEY, spend float8)")
        yield srv


@pytest.fixture()
def relay(server):
    with server.admin() as conn:
        conn.execute("TRUNCATE harness_pgfault")
        conn.execute("INSERT INTO harness_pgfault VALUES (1, 0)")
    url = server.url(server.maintenance_db)
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    with Relay(host, int(port), protocol="postgres").start() as rel:
        rel.url = url.replace(f":{port}/", f":{rel.port}/")
        yield rel
    assert not rel._thread.is_alive()


def _spend(server) -> float:
    with server.admin() as conn:
        return conn.execute("SELECT spend FROM harness_pgfault WHERE id = 1").fetchone()[0]


@pytest.mark.slow
def test_fail_statements_on_the_extended_protocol_after_and_times(server, relay):
    relay.set_mode("fail_statements", match=r"UPDATE\s+harness_pgfault", after=1, times=2)
    with psycopg.connect(relay.url, autocommit=True, sslmode="prefer") as conn:   # SSL refused by the relay
        update = "UPDATE harness_pgfault SET spend = spend + %s WHERE id = 1"
        conn.execute(update, (1.0,))                        # the first match passes (after: 1)
        for _ in range(2):                                  # the next two fail
            with pytest.raises(psycopg.errors.UndefinedTable, match="harness fault"):
                conn.execute(update, (10.0,))
        conn.execute(update, (100.0,))                      # times used up: passes again
        assert conn.execute("SELECT %s::int", (7,)).fetchone() == (7,)   # session intact
    assert _spend(server) == 101.0
    event = relay.events[0]
    assert event.fault == "fail_statements" and event.effects["statements_failed"] == 2


@pytest.mark.slow
def test_a_failed_statement_aborts_its_transaction_as_a_real_failure_would(server, relay):
    relay.set_mode("fail_statements", match="UPDATE", times=1)
    with psycopg.connect(relay.url) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("UPDATE harness_pgfault SET spend = 5 WHERE id = 1", prepare=False)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        conn.rollback()
        conn.execute("UPDATE harness_pgfault SET spend = 6 WHERE id = 1", prepare=False)   # simple Query
        conn.commit()
    assert _spend(server) == 6.0


@pytest.mark.slow
def test_delay_statements_and_pass(server, relay):
    relay.set_mode("delay_statements", match="SELECT pg_backend_pid", latency_ms=300)
    with psycopg.connect(relay.url, autocommit=True) as conn:
        t0 = time.monotonic()
        conn.execute("SELECT 1")
        fast = time.monotonic() - t0
        t0 = time.monotonic()
        conn.execute("SELECT pg_backend_pid()")
        slow = time.monotonic() - t0
        print(f"\nunmatched {fast * 1000:.0f} ms, delayed {slow * 1000:.0f} ms")
        assert slow >= 0.3
        relay.set_mode("pass")
        conn.execute("SELECT pg_backend_pid()")
    assert relay.events[0].end == "switched"


def test_statement_modes_need_the_postgres_protocol_and_a_match():
    with Relay("127.0.0.1", 9, protocol="tcp").start() as rel:
        with pytest.raises(HarnessError, match="protocol='postgres'"):
            rel.set_mode("fail_statements", match="UPDATE")
    with Relay("127.0.0.1", 9, protocol="postgres").start() as rel:
        with pytest.raises(HarnessError, match="needs match"):
            rel.set_mode("fail_statements")
        with pytest.raises(HarnessError, match="times"):
            rel.set_mode("fail_statements", match="x", times=0)
