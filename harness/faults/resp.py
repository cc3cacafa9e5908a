"""Just enough RESP (Redis's wire protocol) for the relay to find command and reply boundaries.

Both functions take a buffer that may hold several pipelined messages and a partial last one:
they return where the message at `pos` ends, or None when it is not all there yet (read more).
Malformed input raises RespError (the relay then stops parsing that connection).
"""

from __future__ import annotations


class RespError(ValueError):
    pass


def _line(buf: bytes | bytearray, pos: int) -> tuple[bytes, int] | None:
    end = buf.find(b"\r\n", pos)
    return None if end < 0 else (bytes(buf[pos:end]), end + 2)


def _int(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise RespError(f"bad length {text[:20]!r}") from None


def request_end(buf: bytes | bytearray, pos: int = 0) -> tuple[int, list[bytes]] | None:
    """(end, the first two words upper-cased) of the command at `pos`: a RESP array of bulk
    strings (what clients send), or an inline command line (`PING\\r\\n`, as telnet sends).
    An empty command (`\\r\\n`, `*0`) gets no reply from Redis: its word list is empty."""
    if pos >= len(buf):
        return None
    if buf[pos:pos + 1] != b"*":  # inline command
        end = buf.find(b"\n", pos)
        if end < 0:
            return None
        return end + 1, [w.upper() for w in bytes(buf[pos:end]).split()[:2]]
    got = _line(buf, pos)
    if got is None:
        return None
    header, p = got
    words: list[bytes] = []
    for i in range(_int(header[1:])):
        got = _line(buf, p)
        if got is None:
            return None
        bulk, q = got
        if bulk[:1] != b"$":
            raise RespError(f"expected a bulk string in a command, got {bulk[:20]!r}")
        end = q + _int(bulk[1:]) + 2
        if len(buf) < end:
            return None
        if buf[end - 2:end] != b"\r\n":
            raise RespError("bulk string not terminated by CRLF")
        if i < 2:
            words.append(bytes(buf[q:end - 2]).upper())
        p = end
    return p, words


_SIMPLE = frozenset(b"+-:_,#(")
_BULK = frozenset(b"$!=")
_AGGREGATE = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}


def reply_end(buf: bytes | bytearray, pos: int = 0) -> int | None:
    """End of the complete RESP2/RESP3 reply at `pos` (nested aggregates included)."""
    got = _line(buf, pos)
    if got is None:
        return None
    line, nxt = got
    kind = line[0] if line else -1
    if kind in _SIMPLE:
        return nxt
    if kind in _BULK:
        n = _int(line[1:])
        end = nxt + n + 2
        return nxt if n < 0 else (end if len(buf) >= end else None)
    if kind in _AGGREGATE:
        n = _int(line[1:])
        p: int | None = nxt
        for _ in range(max(n, 0) * _AGGREGATE[kind]):
            p = reply_end(buf, p)
            if p is None:
                return None
        # an attribute map (RESP3 `|`) describes the reply that follows it: they end together
        return reply_end(buf, p) if kind == ord("|") else p
    raise RespError(f"not a RESP reply: {line[:20]!r}")


def is_push(buf: bytes | bytearray, pos: int) -> bool:
    """RESP3 push data (`>`): sent by the server on its own, not a reply to a command."""
    return buf[pos:pos + 1] == b">"


def error_reply(message: str) -> bytes:
    return b"-" + message.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"
