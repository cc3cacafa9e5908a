"""A TCP relay on 127.0.0.1 in front of a server (Redis first), with switchable fault modes.

    relay = Relay("127.0.0.1", redis.port, protocol="redis").start()   # clients use relay.port
    relay.set_mode("latency", latency_ms=200, jitter_ms=50)
    relay.set_mode("fail_commands", commands=["INCRBYFLOAT", "GET"])   # fnmatch patterns
    relay.set_mode("pass")                                             # ends the fault
    relay.events   # FaultEvents with started_at / ended_at
    relay.stop()

Modes: `pass` forward; `latency` add latency_ms (+ up to jitter_ms) per chunk in each direction;
`blackhole` accept and read but never answer nor forward (clients time out; connections that
lost bytes are closed when it ends, their request/reply streams being out of step); `refuse`
close every connection with a reset and reset new ones at once (the server is "down");
`reset` reset the open connections once and go on passing; `fail_commands` (protocol="redis")
answer the matching commands with `-ERR harness fault` without forwarding them;
`fail_statements` (protocol="postgres") makes the server reject the Query/Parse messages whose SQL
matches `match` (a regex, searched), letting the first `after` matches through and failing the
next `times` (all, if None); `delay_statements` holds those matches back `latency_ms` (+ jitter)
instead. The PostgreSQL side is read with harness.faults.pgwire (SSL and GSS encryption requests
are refused by the relay, so the stream stays readable; see that module for how a failure keeps
the client's session usable).

Why hand-written: Toxiproxy, the maintained tool, does not install here (no Debian package;
PyPI's toxiproxy-python and npm's clients talk to a Go server that no registry ships, and the
testcontainers module pulls an image from a registry we cannot reach), and it has no RESP-aware
fault: failing one Redis command needs the protocol parsed anyway.

Bounds: the target must be a loopback address; every fault ends by itself after `max_seconds`
(default 120 s, at most 600 s); at most `max_connections` (64) open connections, more are reset
at once; after `max_bytes` (256 MiB, both directions, the relay's whole life) it switches to
`refuse` until stopped; one RESP message may buffer at most 16 MiB (else that connection closes).

The relay is an asyncio server on its own daemon thread; the sync methods wait for the loop to
apply them, so a mode is in force when `set_mode` returns.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import fnmatch
import ipaddress
import random
import re
import socket
import struct
import threading

from harness.errors import HarnessError

from . import pgwire, resp
from .events import FaultEvent, FaultLog, check_max_seconds

MODES = ("pass", "latency", "blackhole", "refuse", "reset", "fail_commands", "fail_statements",
         "delay_statements")
STATEMENT_MODES = ("fail_statements", "delay_statements")
PROTOCOLS = ("tcp", "redis", "postgres")
MAX_CONNECTIONS = 64
MAX_BYTES = 256 * 1024 * 1024
MAX_MESSAGE = 16 * 1024 * 1024
MAX_LATENCY_MS = 60_000
FAULT_REPLY = "ERR harness fault"
#: After these, one command no longer gets exactly one reply: the relay stops tracking replies
#: on that connection (it just forwards, and fail_commands no longer applies to it).
_UNTRACKED = {b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE", b"MONITOR"}
_SERVER = object()   # a reply slot the server will fill (vs. bytes the relay answers itself)


def _loopback(host: str) -> str:
    host = "127.0.0.1" if host == "localhost" else host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise HarnessError(f"the relay only fronts loopback servers; {host!r} is not a loopback address")


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed server's kernel would."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class _Mode:
    def __init__(self, name: str = "pass", latency_ms: float = 0, jitter_ms: float = 0,
                 commands: tuple[str, ...] = (), match: re.Pattern | None = None, after: int = 0,
                 times: int | None = None) -> None:
        self.name, self.latency_ms, self.jitter_ms, self.commands = name, latency_ms, jitter_ms, commands
        self.match, self.after, self.times = match, after, times
        self.matched = 0   # statements matched so far in this fault, every connection

    def _latency(self) -> float:
        return (self.latency_ms + random.uniform(0, self.jitter_ms)) / 1000

    def delay(self) -> float:
        return self._latency() if self.name == "latency" else 0.0

    def statement_action(self, sql: str | None) -> str | None:
        """"fail", "delay" or None for a statement's SQL (counting the matches)."""
        if self.name not in STATEMENT_MODES or sql is None or not self.match.search(sql):
            return None
        self.matched += 1
        n = self.matched - self.after
        if n <= 0 or (self.times is not None and n > self.times):
            return None
        return "fail" if self.name == "fail_statements" else "delay"

    def fails(self, words: list[bytes]) -> bool:
        if self.name != "fail_commands" or not words:
            return False
        name = words[0].decode("latin-1")
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.commands)


class _Conn:
    def __init__(self, relay: "Relay", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.relay, self.creader, self.cwriter = relay, reader, writer
        self.swriter: asyncio.StreamWriter | None = None
        self.tracked = relay.protocol == "redis"
        self.pending: collections.deque = collections.deque()   # reply slots, in request order
        self.lost = False   # bytes were dropped (blackhole): the streams are out of step
        # postgres: "startup" (untyped first message), "typed", or None (no longer parsed)
        self.pg_state: str | None = "startup" if relay.protocol == "postgres" else None

    def abort(self) -> None:
        _abort(self.cwriter)
        if self.swriter is not None:
            _abort(self.swriter)

    async def run(self) -> None:
        try:
            sreader, self.swriter = await asyncio.wait_for(
                asyncio.open_connection(self.relay.target_host, self.relay.target_port), 5)
        except (OSError, asyncio.TimeoutError):
            _abort(self.cwriter)   # the server behind is down: so are we, for this client
            return
        tasks = [asyncio.ensure_future(self._pump(self.creader, True)),
                 asyncio.ensure_future(self._pump(sreader, False))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            if self.lost:
                self.abort()
            else:
                self._close()

    def _close(self) -> None:
        for writer in (self.cwriter, self.swriter):
            if writer is not None:
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, upstream: bool) -> None:
        try:
            await self._forward(reader, upstream)
        except (ConnectionError, OSError):
            pass   # either side went away (or we reset it): the connection ends

    async def _forward(self, reader: asyncio.StreamReader, upstream: bool) -> None:
        buf = bytearray()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            relay = self.relay
            if not relay._account(len(chunk)):
                return
            mode = relay._mode
            if mode.name == "blackhole":
                self.lost = True
                relay._log.count(relay._event, "bytes_dropped", len(chunk))
                continue
            delay = mode.delay()
            if delay:
                await asyncio.sleep(delay)
            writer = self.swriter if upstream else self.cwriter
            if upstream and self.pg_state is not None:
                buf += chunk
                if len(buf) > MAX_MESSAGE:
                    relay._log.count(relay._event, "connections_closed")
                    self.abort()
                    return
                await self._statements(buf, relay)
                continue
            # requests are parsed while tracked; replies also while slots are left to answer
            if self.tracked or (not upstream and (self.pending or buf)):
                buf += chunk
                if len(buf) > MAX_MESSAGE:
                    relay._log.count(relay._event, "connections_closed")
                    self.abort()
                    return
                if upstream:
                    self._requests(buf, relay)
                else:
                    self._replies(buf)
            else:
                writer.write(chunk)
            await writer.drain()

    async def _statements(self, buf: bytearray, relay: "Relay") -> None:
        """PostgreSQL: forward complete messages in order, rewriting or holding back matched statements."""
        pos, forward = 0, bytearray()
        try:
            while self.pg_state is not None:
                if self.pg_state == "startup":
                    got = pgwire.startup_end(buf, pos)
                    if got is None:
                        break
                    end, code = got
                    if code in (pgwire.SSL_REQUEST, pgwire.GSSENC_REQUEST):
                        self.cwriter.write(b"N")   # refused: the client goes on in plain text
                    else:
                        forward += buf[pos:end]
                        self.pg_state = "typed" if code != pgwire.CANCEL_REQUEST else None
                    pos = end
                    continue
                got = pgwire.message_end(buf, pos)
                if got is None:
                    break
                end, _ = got
                message = bytes(buf[pos:end])
                action = relay._mode.statement_action(pgwire.statement(message))
                if action == "fail":
                    relay._log.count(relay._event, "statements_failed")
                    message = pgwire.failing_message(message)
                elif action == "delay":
                    relay._log.count(relay._event, "statements_delayed")
                    self.swriter.write(bytes(forward))
                    forward.clear()
                    await asyncio.sleep(relay._mode._latency())
                forward += message
                pos = end
        except (pgwire.PgWireError, UnicodeDecodeError):
            self.pg_state = None   # not the protocol we know: forward as it comes
        if self.pg_state is None:
            forward += buf[pos:]
            pos = len(buf)
        del buf[:pos]
        self.swriter.write(bytes(forward))
        await self.swriter.drain()

    def _requests(self, buf: bytearray, relay: "Relay") -> None:
        """Forward complete commands in order; answer failed ones in their reply slot."""
        pos, forward = 0, bytearray()
        try:
            while self.tracked:
                got = resp.request_end(buf, pos)
                if got is None:
                    break
                end, words = got
                if relay._mode.fails(words):
                    relay._log.count(relay._event, "commands_failed")
                    self.pending.append(resp.error_reply(FAULT_REPLY))
                else:
                    forward += buf[pos:end]
                    if words and (words[0] in _UNTRACKED or words[:2] == [b"CLIENT", b"REPLY"]):
                        self.tracked = False   # earlier slots still get their replies
                    elif words:
                        self.pending.append(_SERVER)
                pos = end
        except resp.RespError:
            self.tracked = False   # not RESP after all: forward as it comes
        if not self.tracked:
            forward += buf[pos:]
            pos = len(buf)
        del buf[:pos]
        self.swriter.write(bytes(forward))
        self._answer_own()

    def _replies(self, buf: bytearray) -> None:
        """Pass each complete reply into its slot, then any of the relay's own that follow."""
        pos = 0
        try:
            while self.tracked or self.pending:
                end = resp.reply_end(buf, pos)
                if end is None:
                    break
                if not resp.is_push(buf, pos):
                    if self.pending and self.pending[0] is _SERVER:
                        self.pending.popleft()
                    else:
                        self._untrack()   # a reply no command asked for: we lost count
                self.cwriter.write(bytes(buf[pos:end]))
                pos = end
                self._answer_own()
        except resp.RespError:
            self._untrack()
        if not (self.tracked or self.pending):
            self.cwriter.write(bytes(buf[pos:]))
            pos = len(buf)
        del buf[:pos]

    def _answer_own(self) -> None:
        while self.pending and self.pending[0] is not _SERVER:
            self.cwriter.write(self.pending.popleft())

    def _untrack(self) -> None:
        """Give up on reply order: send the relay's own answers now and forward from here on."""
        self.tracked = False
        for item in self.pending:
            if item is not _SERVER:
                self.cwriter.write(item)
        self.pending.clear()


class Relay:
    """127.0.0.1:`port` -> target_host:target_port. See the module docstring for the modes."""

    def __init__(self, target_host: str, target_port: int, *, protocol: str = "tcp", port: int = 0,
                 max_connections: int = MAX_CONNECTIONS, max_bytes: int = MAX_BYTES) -> None:
        if protocol not in PROTOCOLS:
            raise HarnessError(f"unknown relay protocol {protocol!r}; use one of: {', '.join(PROTOCOLS)}")
        if not (isinstance(target_port, int) and 0 < target_port < 65536):
            raise HarnessError(f"relay target port must be 1..65535, not {target_port!r}")
        self.target_host, self.target_port = _loopback(target_host), target_port
        self.protocol, self.host, self.port = protocol, "127.0.0.1", port
        self.max_connections, self.max_bytes = max_connections, max_bytes
        self.name = f"relay 127.0.0.1:? -> {self.target_host}:{target_port}"
        self.bytes_relayed = 0
        self.connections_total = 0
        self._mode = _Mode()
        self._event: FaultEvent | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._log = FaultLog()
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # --- sync API -----------------------------------------------------------------------
    def start(self) -> "Relay":
        loop = asyncio.new_event_loop()

        async def listen():
            self._server = await asyncio.start_server(self._accept, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]

        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="harness-relay", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(listen(), loop).result(10)
        except OSError as exc:
            self.stop()
            raise HarnessError(f"relay could not listen on 127.0.0.1:{self.port}: {exc.strerror or exc}") from None
        self.name = f"relay 127.0.0.1:{self.port} -> {self.target_host}:{self.target_port}"
        atexit.register(self.stop)
        return self

    def set_mode(self, mode: str, *, latency_ms: float = 0, jitter_ms: float = 0,
                 commands: list[str] | tuple[str, ...] = (), match: str | None = None, after: int = 0,
                 times: int | None = None, max_seconds: float | None = None) -> FaultEvent | None:
        """Switch mode (ending the current fault); returns the new fault's event (None for pass)."""
        if mode not in MODES:
            raise HarnessError(f"unknown relay mode {mode!r}; use one of: {', '.join(MODES)}")
        seconds = check_max_seconds(max_seconds)
        for name, value in (("latency_ms", latency_ms), ("jitter_ms", jitter_ms)):
            if not isinstance(value, (int, float)) or not 0 <= value <= MAX_LATENCY_MS:
                raise HarnessError(f"relay {name} must be 0..{MAX_LATENCY_MS}, not {value!r}")
        if mode == "latency" and not latency_ms + jitter_ms:
            raise HarnessError("relay mode latency needs latency_ms or jitter_ms above 0")
        if isinstance(commands, str):
            commands = [commands]
        patterns = tuple(str(c).upper() for c in commands)
        if mode == "fail_commands":
            if self.protocol != "redis":
                raise HarnessError("relay mode fail_commands needs protocol='redis'")
            if not patterns or not all(patterns):
                raise HarnessError("relay mode fail_commands needs commands, e.g. ['INCRBYFLOAT', 'GET*']")
        pattern = None
        if mode in STATEMENT_MODES:
            if self.protocol != "postgres":
                raise HarnessError(f"relay mode {mode} needs protocol='postgres'")
            if not match:
                raise HarnessError(f"relay mode {mode} needs match, a regex of the SQL, e.g. 'UPDATE .*\"LiteLLM_VerificationToken\"'")
            try:
                pattern = re.compile(match)
            except re.error as exc:
                raise HarnessError(f"relay match {match!r} is not a valid regex: {exc}") from None
            if not (isinstance(after, int) and after >= 0) or not (times is None or (isinstance(times, int) and times >= 1)):
                raise HarnessError(f"relay after must be >= 0 and times >= 1 (or None: all), not {after!r}, {times!r}")
            if mode == "delay_statements" and not latency_ms + jitter_ms:
                raise HarnessError("relay mode delay_statements needs latency_ms or jitter_ms above 0")
        if self._loop is None:
            raise HarnessError("the relay is not running (start() it first)")
        detail = {k: v for k, v in (("latency_ms", latency_ms), ("jitter_ms", jitter_ms),
                                    ("commands", list(patterns)), ("match", match)) if v}
        if pattern is not None:
            detail.update(after=after, times=times)
        new = _Mode(mode, latency_ms, jitter_ms, patterns, pattern, after, times)

        async def apply():
            return self._switch(new, detail, seconds)

        return asyncio.run_coroutine_threadsafe(apply(), self._loop).result(10)

    @property
    def mode(self) -> str:
        return self._mode.name

    @property
    def events(self) -> list[FaultEvent]:
        return self._log.events

    @property
    def connections(self) -> int:
        return len(self._conns)

    def stop(self) -> None:
        """Idempotent: ends the fault, closes every connection and the thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        atexit.unregister(self.stop)

        async def shutdown():
            self._end_fault("stopped")
            if self._server is not None:
                self._server.close()
            for conn in list(self._conns):
                conn.abort()
            for _ in range(200):   # let the handlers see their resets and finish (at most 2 s)
                if not self._conns:
                    break
                await asyncio.sleep(0.01)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            loop.close()

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Relay {self.name} mode={self.mode}>"

    # --- loop thread --------------------------------------------------------------------
    def _switch(self, new: _Mode, detail: dict, seconds: float, end: str = "switched") -> FaultEvent | None:
        self._end_fault(end)
        if new.name == "reset":   # one-shot: the open connections go, then everything passes
            event = self._log.begin(self.name, "reset", instant=True)
            self._drop_all(event)
            return event
        self._mode = new
        if new.name == "pass":
            return None
        self._event = self._log.begin(self.name, new.name, detail)
        self._expiry = self._loop.call_later(seconds, self._expire, self._event)
        if new.name == "refuse":
            self._drop_all(self._event)
        return self._event

    def _expire(self, event: FaultEvent) -> None:
        if self._event is event:
            self._switch(_Mode(), {}, 0, end="expired")

    def _end_fault(self, end: str) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        was = self._mode.name
        self._log.finish(self._event, end)
        self._event, self._mode = None, _Mode()
        if was == "blackhole":   # their request/reply streams lost bytes: they cannot go on
            for conn in [c for c in self._conns if c.lost]:
                conn.abort()

    def _drop_all(self, event: FaultEvent | None) -> None:
        for conn in list(self._conns):
            conn.abort()
            self._log.count(event, "connections_closed")

    def _account(self, n: int) -> bool:
        self.bytes_relayed += n
        if self.bytes_relayed <= self.max_bytes:
            return True
        if self._mode.name != "refuse":
            self._switch(_Mode("refuse"), {"cap": f"max_bytes {self.max_bytes}"}, 1, end="capped")
            self._expiry.cancel()   # a cap holds until stop()
        return False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        if self._mode.name == "refuse" or len(self._conns) >= self.max_connections:
            self._log.count(self._event, "connections_refused")
            _abort(writer)
            return
        conn = _Conn(self, reader, writer)
        self._conns.add(conn)
        try:
            await conn.run()
        except (ConnectionError, OSError):
            conn.abort()
        finally:
            self._conns.discard(conn)
