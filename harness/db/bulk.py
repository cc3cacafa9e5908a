"""Many rows into one table fast: PostgreSQL COPY, with the table's columns read from the server.

Releases add and drop columns (LiteLLM_EndUserTable gained `models` between 1.82.3 and
1.108.7), so a writer never hard-codes a table's shape: `table_columns` reads it from
information_schema, and `missing_columns` says which of the wanted ones the release lacks and
which columns it requires (NOT NULL, no default) that the writer would leave empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .base import quote_ident

#: rows between two progress reports of `copy_rows`
PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    nullable: bool
    has_default: bool

    @property
    def required(self) -> bool:
        """A row without a value here is refused."""
        return not self.nullable and not self.has_default


def table_columns(conn, table: str, schema: str = "public") -> dict[str, Column]:
    """The table's columns by name, in their order; empty when the table does not exist."""
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    columns = {}
    for row in rows:
        name, data_type, nullable, default = row.values() if isinstance(row, dict) else row
        columns[name] = Column(name, data_type, nullable == "YES", default is not None)
    return columns


def missing_columns(columns: dict[str, Column], wanted: Iterable[str]) -> list[str]:
    """What stops a COPY of `wanted` columns: each wanted column the table lacks, and each
    required column it has that `wanted` leaves out (one phrase each; empty: it can be written)."""
    wanted = list(wanted)
    problems = [f"no column {name}" for name in wanted if name not in columns]
    problems += [f"column {c.name} ({c.data_type}) is required and the writer does not fill it"
                 for c in columns.values() if c.required and c.name not in wanted]
    return problems


def copy_rows(conn, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]], *,
              progress: Callable[[int, float], None] | None = None, every: int = PROGRESS_EVERY) -> int:
    """COPY `rows` (tuples in `columns` order) into `table` in one transaction: all or none.

    `progress(rows_so_far, seconds)` is told every `every` rows. Returns the rows written.
    """
    names = ", ".join(quote_ident(c) for c in columns)
    started, written = time.perf_counter(), 0
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY {quote_ident(table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                written += 1
                if progress is not None and written % every == 0:
                    progress(written, time.perf_counter() - started)
    return written
