"""Steps for populations: many entities seeded straight into the database, checked by one count.

The reset job's paging and bind-variable bugs (PR #40639: a shared budget with more than
~32,700 end users never resets) need tens of thousands of rows; the management API would take
minutes to make them, COPY writes 33,000 in about 0.3 s (benchmarks/bench_seed.py). The rows have
ids the proxy has never read, so none of its caches holds them and there is nothing to invalidate.
"""

from __future__ import annotations

import time
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..errors import HarnessError
from ..names import EntityKind, Name
from ..proxy.entities import Entity
from ..proxy.seeding import MAX_SEED, CannotSeed, count_seeded, seed, seed_id
from .base import Expectation, Step, StepContext, Unsupported

SeedKind = Literal["end_user"]
#: an id prefix: plain characters only, so it needs no quoting anywhere (and stays a `Name` with the number)
Prefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$",
                              description="the rows' ids are this plus an 8-digit number: crowd-00000000, ...")]


class SeedEntities(Step):
    """Write `count` entities of a `kind` (ids `prefix00000000`...) straight into the database with COPY, on a budget tier, with a `spend`."""

    action: ClassVar[str] = "seed_entities"
    replica_scoped: ClassVar[bool] = False
    not_scoped_because: ClassVar[str] = "it writes the deployment's database, which every replica shares"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"budget": ("budget",)}

    kind: SeedKind = Field("end_user", description="what to seed (end_user: LiteLLM_EndUserTable rows)")
    count: int = Field(gt=0, le=MAX_SEED, description=f"how many rows (at most {MAX_SEED:,})")
    prefix: Prefix
    budget: Name | None = Field(None, description="a budget tier from create_budget that every row points at (budget_id)")
    spend: float = Field(0.0, ge=0, description="every row's spend")
    name: Name | None = Field(None, description="the first seeded row becomes an entity of this name (for "
                              "expect_state, expect_request, spend)")

    def created(self) -> list[tuple[str, EntityKind]]:
        return [(self.name, self.kind)] if self.name is not None else []

    def run(self, ctx: StepContext) -> str:
        budget_id = ctx.id_of(self.budget)

        def told(rows: int, seconds: float) -> None:
            ctx.progress(f"seed_entities: {rows:,}/{self.count:,} {self.kind} rows ({seconds:.1f}s)")

        try:
            seeded = seed(ctx.db.conn, self.kind, self.prefix, self.count, self.spend, budget_id, progress=told)
        except CannotSeed as exc:
            raise Unsupported(f"cannot seed {self.kind} rows on this release: {exc}") from None
        except Exception as exc:  # a duplicate id, a broken connection: the harness's problem, in one line
            if type(exc).__module__.startswith("psycopg"):
                raise HarnessError(f"seed_entities: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
            raise
        if self.name is not None:
            ctx.entities[self.name] = Entity(self.kind, self.name, seed_id(self.prefix, 0), created_via="db")
        rate = seeded.count / seeded.seconds if seeded.seconds > 0 else float("inf")
        return f"seeded {seeded.count:,} {self.kind} rows in {seeded.seconds:.2f}s ({rate:,.0f} rows/s)"


class ExpectSeeded(Step):
    """The rows `seed_entities` wrote under `prefix`: `count` of them, each with `spend` (or `spend_at_least`), by one COUNT query."""

    action: ClassVar[str] = "expect_seeded"
    replica_scoped: ClassVar[bool] = False
    not_scoped_because: ClassVar[str] = "it reads the deployment's database, which every replica shares"

    kind: SeedKind = "end_user"
    prefix: Prefix
    count: int = Field(gt=0, le=MAX_SEED, description="how many rows must carry the prefix")
    spend: float | None = Field(None, ge=0, description="every row's spend (within `tolerance`), e.g. 0 after a reset")
    spend_at_least: float | None = Field(None, ge=0)
    tolerance: float = Field(1e-6, ge=0)

    @model_validator(mode="after")
    def _one_spend(self) -> "ExpectSeeded":
        if self.spend is not None and self.spend_at_least is not None:
            raise ValueError("give `spend` or `spend_at_least`, not both")
        return self

    def run(self, ctx: StepContext) -> str:
        started = time.perf_counter()
        at_least = self.spend_at_least is not None
        wanted = self.spend_at_least if at_least else self.spend
        found = count_seeded(ctx.db.conn, self.kind, self.prefix, wanted, self.tolerance, at_least=at_least)
        seconds = time.perf_counter() - started
        if found.rows != self.count:
            raise Expectation(f"{found.rows:,} {self.kind} rows have ids starting {self.prefix!r}, expected {self.count:,}",
                              self.count, found.rows)
        if found.off:
            rule = f"spend >= {wanted:g}" if at_least else f"spend {wanted:g}"
            raise Expectation(
                f"{found.off:,} of {found.rows:,} seeded {self.kind} rows ({self.prefix}...) do not have {rule}: "
                f"their spend lies in {found.off_min:g}..{found.off_max:g}" if found.off_min is not None else
                f"{found.off:,} of {found.rows:,} seeded {self.kind} rows ({self.prefix}...) have no spend",
                wanted, f"{found.off} rows off",
            )
        what = "" if wanted is None else (f", each spend >= {wanted:g}" if at_least else f", each spend {wanted:g}")
        return f"{found.rows:,} {self.kind} rows{what} (counted in {seconds:.2f}s)"
