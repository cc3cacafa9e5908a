"""Many entities of one kind written straight into the proxy's tables (COPY), and counted back.

For bugs that need a population no management API builds in seconds (the reset job's paging
and bind-variable limits need tens of thousands of end users on one budget). Each kind names
its table, its id column and the columns the seed fills (`SEEDABLE`); the release's own table
decides whether it can be written (`harness.db.bulk.missing_columns`), so a release whose
schema lacks a column is told, not guessed at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..db.bulk import copy_rows, missing_columns, table_columns

#: the most rows one seed writes (a scenario's bound, and PostgreSQL's COPY stays well inside it)
MAX_SEED = 200_000


@dataclass(frozen=True)
class SeedKind:
    table: str
    id_column: str
    #: where the budget tier's id goes (None: the kind takes no tier)
    budget_column: str | None
    spend_column: str = "spend"


SEEDABLE: dict[str, SeedKind] = {
    "end_user": SeedKind("LiteLLM_EndUserTable", "user_id", "budget_id"),
}


class CannotSeed(Exception):
    """The release's table cannot take these rows (a column missing or required): the reason."""


@dataclass(frozen=True)
class Seeded:
    count: int
    seconds: float


def seed_id(prefix: str, index: int) -> str:
    """The id of the `index`th seeded row: sortable, e.g. crowd-00000042."""
    return f"{prefix}{index:08d}"


def seed(conn, kind: str, prefix: str, count: int, spend: float, budget_id: str | None,
         progress: Callable[[int, float], None] | None = None) -> Seeded:
    """Write `count` rows of `kind` with ids `prefix00000000...`, all in one transaction."""
    if not 0 < count <= MAX_SEED:
        raise ValueError(f"count {count} is outside 1..{MAX_SEED}")
    shape = SEEDABLE[kind]
    columns = [shape.id_column, shape.spend_column]
    if budget_id is not None:
        if shape.budget_column is None:
            raise CannotSeed(f"a {kind} takes no budget tier")
        columns.append(shape.budget_column)
    problems = missing_columns(table_columns(conn, shape.table), columns)
    if problems:
        raise CannotSeed(f"{shape.table}: " + "; ".join(problems))
    tail = (spend,) if budget_id is None else (spend, budget_id)
    started = time.perf_counter()
    written = copy_rows(conn, shape.table, columns, ((seed_id(prefix, i), *tail) for i in range(count)), progress=progress)
    return Seeded(written, time.perf_counter() - started)


@dataclass(frozen=True)
class SeededCount:
    rows: int
    #: rows whose spend is off the expected value by more than the tolerance
    off: int
    #: the smallest and largest spend among them (None when no row is off)
    off_min: float | None
    off_max: float | None


def count_seeded(conn, kind: str, prefix: str, spend: float | None, tolerance: float,
                 at_least: bool = False) -> SeededCount:
    """One aggregate over the kind's rows whose id starts with `prefix`: how many, and how many
    have a spend other than `spend` (below it, with `at_least`)."""
    shape = SEEDABLE[kind]
    table, spend_col = f'"{shape.table}"', f'"{shape.spend_column}"'
    if spend is None:
        off = "false"
    elif at_least:
        off = f"{spend_col} IS NULL OR {spend_col} < %(spend)s - %(tol)s"
    else:
        off = f"{spend_col} IS NULL OR abs({spend_col} - %(spend)s) > %(tol)s"
    row = conn.execute(
        # named columns: the harness's view returns dict rows, where equal names would collide
        f"SELECT count(*) AS seeded, count(*) FILTER (WHERE {off}) AS off, min({spend_col}) FILTER (WHERE {off}) AS off_min, "
        f"max({spend_col}) FILTER (WHERE {off}) AS off_max FROM {table} WHERE starts_with(\"{shape.id_column}\", %(prefix)s)",
        {"spend": spend, "tol": tolerance, "prefix": prefix},
    ).fetchone()
    values = list(row.values()) if isinstance(row, dict) else list(row)
    return SeededCount(int(values[0]), int(values[1]), values[2], values[3])
