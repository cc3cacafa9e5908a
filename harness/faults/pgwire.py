"""Just enough of PostgreSQL's frontend protocol (v3) for the relay to find and rewrite statements.

Only the client's side is read. The first message of a connection has no type byte (length,
then a code: a StartupMessage, an SSLRequest, a GSSENCRequest or a CancelRequest); every later
one is a type byte and a length that counts itself. Of those, Query ('Q': the SQL) and Parse
('P': a statement name, the SQL, parameter types) carry statement text.

A statement is failed by rewriting it into one the server itself rejects at parse analysis
(`failing_message`): the server then answers exactly as for any failed statement, an
ErrorResponse and, for a Query, ReadyForQuery with the right transaction status (a transaction
becomes aborted); for a Parse it skips the Bind/Describe/Execute that follow until Sync, which it
answers with ReadyForQuery. So the client's session survives in every protocol state, with no
reply of ours to slot into the server's stream.

`message_end` takes a buffer that may hold several messages and a partial last one and returns
where the message at `pos` ends, or None when it is not all there yet. Malformed input raises
PgWireError (the relay then stops parsing that connection).
"""

from __future__ import annotations

import struct

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
#: a client's first message is at most this long (the server's own limit is 10000 bytes)
MAX_STARTUP = 10_000
#: the relation the rewritten statement names: its "does not exist" error carries this text
FAULT_RELATION = "harness fault: statement failed"
FAULT_SQL = f'SELECT * FROM "{FAULT_RELATION}"'


class PgWireError(ValueError):
    pass


def startup_end(buf: bytes | bytearray, pos: int = 0) -> tuple[int, int] | None:
    """(end, code) of the untyped first message at `pos` (code: protocol version or a request code)."""
    if len(buf) - pos < 8:
        return None
    length, code = struct.unpack_from("!ii", buf, pos)
    if not 8 <= length <= MAX_STARTUP:
        raise PgWireError(f"bad startup message length {length}")
    return (pos + length, code) if len(buf) - pos >= length else None


def message_end(buf: bytes | bytearray, pos: int = 0) -> tuple[int, bytes] | None:
    """(end, type byte) of the typed message at `pos`."""
    if len(buf) - pos < 5:
        return None
    kind = bytes(buf[pos:pos + 1])
    (length,) = struct.unpack_from("!i", buf, pos + 1)
    if length < 4:
        raise PgWireError(f"bad length {length} of message {kind!r}")
    end = pos + 1 + length
    return (end, kind) if len(buf) >= end else None


def _cstring(body: bytes, pos: int) -> tuple[str, int]:
    end = body.find(b"\0", pos)
    if end < 0:
        raise PgWireError("unterminated string")
    return body[pos:end].decode("utf-8", "replace"), end + 1


def statement(message: bytes) -> str | None:
    """The SQL of a whole Query or Parse message; None for every other message."""
    kind, body = message[:1], message[5:]
    if kind == b"Q":
        return _cstring(body, 0)[0]
    if kind == b"P":
        _, pos = _cstring(body, 0)   # the prepared statement's name
        return _cstring(body, pos)[0]
    return None


def failing_message(message: bytes) -> bytes:
    """The Query or Parse message with its SQL replaced by one the server rejects when it parses it
    (same statement name and parameter types, so what follows it is handled as usual)."""
    kind, body = message[:1], message[5:]
    sql = FAULT_SQL.encode() + b"\0"
    if kind == b"Q":
        new = sql
    elif kind == b"P":
        name_end = body.index(b"\0") + 1
        sql_end = body.index(b"\0", name_end) + 1
        new = body[:name_end] + sql + body[sql_end:]
    else:
        raise PgWireError(f"only Query and Parse messages carry a statement, not {kind!r}")
    return kind + struct.pack("!i", len(new) + 4) + new


def query(sql: str) -> bytes:
    """A Query message (for tests and captured-byte fixtures)."""
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!i", len(body) + 4) + body


def parse(sql: str, name: str = "", param_types: tuple[int, ...] = ()) -> bytes:
    """A Parse message (for tests)."""
    body = (name.encode() + b"\0" + sql.encode() + b"\0"
            + struct.pack(f"!h{len(param_types)}i", len(param_types), *param_types))
    return b"P" + struct.pack("!i", len(body) + 4) + body
