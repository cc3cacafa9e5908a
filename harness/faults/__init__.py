"""Fault injection, bounded and on loopback only: a TCP/RESP relay with switchable modes
(`relay.py`), process and Redis-server control (`processes.py`), the fault log (`events.py`),
and what fault steps act on, by name (`injectors.py`)."""

from .events import MAX_FAULT_CEILING, MAX_FAULT_SECONDS, FaultEvent, FaultLog
from .processes import RedisControl, stop_group
from .relay import MODES, Relay

__all__ = ["MAX_FAULT_CEILING", "MAX_FAULT_SECONDS", "FaultEvent", "FaultLog", "MODES", "Relay", "RedisControl", "stop_group"]
