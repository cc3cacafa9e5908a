"""What the harness knows of each budget-holding entity: how to create it, where its state lives.

One table per kind keeps the proxy's endpoint names, id fields and database tables in one place
(`KINDS`), so the runner stays generic and a release difference is fixed here once.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import psycopg
from psycopg.rows import dict_row


@dataclass
class Entity:
    kind: str
    name: str
    id: str  # organization_id, team_id, user_id, end user id, budget_id, or the key's token hash
    secret: str | None = None  # a virtual key (sk-...), never printed
    created_via: str = "api"
    keys: tuple[str, ...] = ()  # the row's key columns' values when more than `id` (team members)

    @property
    def row_keys(self) -> tuple[str, ...]:
        return self.keys or (self.id,)


@dataclass(frozen=True)
class EntityState:
    spend: float | None
    budget_reset_at: datetime | None
    max_budget: float | None = None


@dataclass(frozen=True)
class Kind:
    create_path: str
    id_field: str  # in the create response
    #: the info endpoint, its query parameter, and (spend, budget_reset_at) from its answer;
    #: None where the proxy has no per-entity info endpoint (the database is the only reading)
    info_path: str | None
    info_param: str | None
    from_info: Callable[[dict[str, Any]], tuple[Any, Any]] | None
    #: where spend lives, and the row's key condition
    table: str
    where: str
    #: budget_reset_at lives on the linked LiteLLM_BudgetTable row (budget_id) instead of `table`
    reset_on_budget_row: bool
    #: the entity's row: spend, budget_reset_at, max_budget, then more columns for reports
    sql: str
    has_spend: bool = True


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _org_info(d: dict) -> tuple[Any, Any]:
    budget = d.get("litellm_budget_table") or {}
    return d.get("spend"), budget.get("budget_reset_at")


def _team_info(d: dict) -> tuple[Any, Any]:
    info = d.get("team_info") or d
    return info.get("spend"), info.get("budget_reset_at")


def _key_info(d: dict) -> tuple[Any, Any]:
    info = d.get("info") or d
    return info.get("spend"), info.get("budget_reset_at")


def _user_info(d: dict) -> tuple[Any, Any]:
    info = d.get("user_info") or d
    return info.get("spend"), info.get("budget_reset_at")


def _end_user_info(d: dict) -> tuple[Any, Any]:
    budget = d.get("litellm_budget_table") or {}
    return d.get("spend"), _first(budget.get("budget_reset_at"), d.get("budget_reset_at"))


KINDS: dict[str, Kind] = {
    "organization": Kind(
        "/organization/new", "organization_id", "/organization/info", "organization_id", _org_info,
        '"LiteLLM_OrganizationTable"', "organization_id = %s", True,
        'SELECT o.spend, b.budget_reset_at, b.max_budget, b.budget_duration, o.organization_id, o.organization_alias, '
        'o.budget_id FROM "LiteLLM_OrganizationTable" o LEFT JOIN "LiteLLM_BudgetTable" b ON b.budget_id = o.budget_id '
        "WHERE o.organization_id = %s",
    ),
    "team": Kind(
        "/team/new", "team_id", "/team/info", "team_id", _team_info,
        '"LiteLLM_TeamTable"', "team_id = %s", False,
        'SELECT spend, budget_reset_at, max_budget, budget_duration, team_id, team_alias, organization_id '
        'FROM "LiteLLM_TeamTable" WHERE team_id = %s',
    ),
    "user": Kind(
        "/user/new", "user_id", "/user/info", "user_id", _user_info,
        '"LiteLLM_UserTable"', "user_id = %s", False,
        'SELECT spend, budget_reset_at, max_budget, budget_duration, user_id, teams, organization_id '
        'FROM "LiteLLM_UserTable" WHERE user_id = %s',
    ),
    "key": Kind(
        "/key/generate", "key", "/key/info", "key", _key_info,
        '"LiteLLM_VerificationToken"', "token = %s", False,
        'SELECT spend, budget_reset_at, max_budget, budget_duration, key_alias, team_id, organization_id, user_id, '
        'budget_id FROM "LiteLLM_VerificationToken" WHERE token = %s',
    ),
    "end_user": Kind(
        "/customer/new", "user_id", "/customer/info", "end_user_id", _end_user_info,
        '"LiteLLM_EndUserTable"', "user_id = %s", True,
        'SELECT e.spend, b.budget_reset_at, b.max_budget, b.budget_duration, e.user_id, e.budget_id, e.blocked '
        'FROM "LiteLLM_EndUserTable" e LEFT JOIN "LiteLLM_BudgetTable" b ON b.budget_id = e.budget_id '
        "WHERE e.user_id = %s",
    ),
    "budget": Kind(
        "/budget/new", "budget_id", None, None, None,
        '"LiteLLM_BudgetTable"', "budget_id = %s", False,
        'SELECT NULL::float AS spend, budget_reset_at, max_budget, budget_duration, budget_id '
        'FROM "LiteLLM_BudgetTable" WHERE budget_id = %s',
        has_spend=False,
    ),
    "tag": Kind(
        "/tag/new", "name", None, None, None,
        '"LiteLLM_TagTable"', "tag_name = %s", True,
        'SELECT t.spend, b.budget_reset_at, b.max_budget, b.budget_duration, t.tag_name, t.budget_id '
        'FROM "LiteLLM_TagTable" t LEFT JOIN "LiteLLM_BudgetTable" b ON b.budget_id = t.budget_id '
        "WHERE t.tag_name = %s",
    ),
    "team_member": Kind(
        "/team/member_add", "", None, None, None,
        '"LiteLLM_TeamMembership"', "user_id = %s AND team_id = %s", True,
        'SELECT m.spend, b.budget_reset_at, b.max_budget, b.budget_duration, m.user_id, m.team_id, m.budget_id '
        'FROM "LiteLLM_TeamMembership" m LEFT JOIN "LiteLLM_BudgetTable" b ON b.budget_id = m.budget_id '
        "WHERE m.user_id = %s AND m.team_id = %s",
    ),
}


def missing_row(entity: Entity) -> str:
    """What a reading found missing: the kind's table and the key values it looked for."""
    kind = KINDS[entity.kind]
    columns = re.findall(r"(\w+) = %s", kind.where)
    keys = ", ".join(f"{c}={v}" for c, v in zip(columns, entity.row_keys))
    return f"no {kind.table.strip(chr(34))} row for {entity.kind} {entity.name} ({keys})"


def token_hash(secret: str) -> str:
    """LiteLLM stores sha256(key) as the token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Database:
    """The harness's own view of the clone the proxy uses (reads, and rows it must write)."""

    def __init__(self, url: str):
        self.url = url
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def row(self, entity: Entity) -> dict[str, Any] | None:
        with self.conn.cursor() as cur:
            cur.execute(KINDS[entity.kind].sql, entity.row_keys)
            return cur.fetchone()

    def set_state(self, entity: Entity, spend: float | None, reset_at: datetime | None, set_reset: bool) -> None:
        """Write spend and/or budget_reset_at where the proxy keeps them for this kind."""
        kind = KINDS[entity.kind]
        with self.conn.transaction(), self.conn.cursor() as cur:
            if spend is not None:
                if not kind.has_spend:
                    raise ValueError(f"a {entity.kind} has no spend of its own")
                cur.execute(f"UPDATE {kind.table} SET spend = %s WHERE {kind.where}", (spend, *entity.row_keys))
            if set_reset:
                naive = reset_at.astimezone(timezone.utc).replace(tzinfo=None) if reset_at else None  # Prisma stores UTC
                if kind.reset_on_budget_row:
                    cur.execute(
                        f'UPDATE "LiteLLM_BudgetTable" SET budget_reset_at = %s WHERE budget_id = '
                        f"(SELECT budget_id FROM {kind.table} WHERE {kind.where})",
                        (naive, *entity.row_keys),
                    )
                else:
                    cur.execute(f"UPDATE {kind.table} SET budget_reset_at = %s WHERE {kind.where}", (naive, *entity.row_keys))

    def state(self, entity: Entity) -> EntityState | None:
        row = self.row(entity)
        if row is None:
            return None
        return EntityState(
            spend=None if row["spend"] is None else float(row["spend"]),
            budget_reset_at=parse_time(row["budget_reset_at"]),
            max_budget=row["max_budget"],
        )

    def insert_organization(self, alias: str, max_budget: float | None, budget_duration: str | None, models: list[str]) -> str:
        """An organization written as /organization/new writes it (budget row, then org row).

        For releases whose /organization/* endpoints are licence-gated: the auth path still
        enforces organization budgets, so the bug can be reproduced with rows alone.
        """
        budget_id, org_id = str(uuid.uuid4()), str(uuid.uuid4())
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                'INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, budget_duration, created_by, updated_by) '
                "VALUES (%s, %s, %s, 'harness', 'harness')",
                (budget_id, max_budget, budget_duration),
            )
            cur.execute(
                'INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, models, '
                "created_by, updated_by) VALUES (%s, %s, %s, %s, 'harness', 'harness')",
                (org_id, alias, budget_id, models),
            )
        return org_id
