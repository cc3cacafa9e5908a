"""`${name.field}`: a step's value naming a field of an entity an earlier step created.

Any string in a step (a path, a JSON body, a header, `extra`) may hold references. A string
that is exactly one reference becomes the field's value (a number stays a number); inside a
longer string the value is written in. The loader checks the syntax and that the name and the
field exist (`file:line`); the runner fills them in just before the step runs. A key's
`token` is its secret: the runner collects every key secret, and reports redact them.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ..errors import shorten

REFERENCE = re.compile(r"\$\{([^}]*)\}")
_INSIDE = re.compile(r"^([A-Za-z0-9_.-]{1,64})\.([a-z_]+)$")
SYNTAX_HELP = "write `${name.field}`, e.g. `${k1.token}` or `${acme.id}`"

#: the fields each kind offers: `id`, `name`, and what its database row holds
COMMON = ("id", "name")
FIELDS: dict[str, tuple[str, ...]] = {
    "key": (*COMMON, "token", "token_hash", "budget_id", "team_id", "user_id", "organization_id"),
    "organization": (*COMMON, "organization_id", "budget_id"),
    "team": (*COMMON, "team_id", "organization_id"),
    "user": (*COMMON, "user_id"),
    "end_user": (*COMMON, "user_id", "budget_id"),
    "budget": (*COMMON, "budget_id"),
    "team_member": (*COMMON, "user_id", "team_id", "budget_id"),
    "tag": (*COMMON, "tag_name", "budget_id"),
}
#: fields read from the entity itself; the rest come from its database row
_FROM_ENTITY: dict[str, Callable[[Any], Any]] = {
    "id": lambda e: e.id,
    "name": lambda e: e.name,
    "token": lambda e: e.secret,
    "token_hash": lambda e: e.id,
}


def scan(value: Any, path: tuple = ()) -> list[tuple[tuple, str, str]]:
    """Every reference in a raw value: (path to the string, entity name, field); ValueError on bad syntax."""
    found: list[tuple[tuple, str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += scan(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += scan(item, path + (i,))
    elif isinstance(value, str):
        for match in REFERENCE.finditer(value):
            inside = _INSIDE.match(match.group(1))
            if inside is None:
                raise _BadReference(path, f"`{match.group(0)}` is not a reference: {SYNTAX_HELP}")
            found.append((path, inside.group(1), inside.group(2)))
        if "${" in REFERENCE.sub("", value):
            raise _BadReference(path, f"an unclosed `${{` in {shorten(repr(value))}: {SYNTAX_HELP}")
    return found


class _BadReference(ValueError):
    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path


BadReference = _BadReference


def check(kind: str, name: str, field: str) -> str | None:
    """Why `${name.field}` is wrong for an entity of `kind`, or None."""
    allowed = FIELDS.get(kind, COMMON)
    if field not in allowed:
        return f"`${{{name}.{field}}}`: {_a(kind)} has no field `{field}`; fields: {', '.join(allowed)}"
    return None


def value_of(entity: Any, field: str, row_of: Callable[[Any], dict | None]) -> Any:
    if field in _FROM_ENTITY:
        return _FROM_ENTITY[field](entity)
    if field == "tag_name":
        return entity.id
    return (row_of(entity) or {}).get(field)


def fill(value: Any, lookup: Callable[[str, str], Any]) -> Any:
    if isinstance(value, dict):
        return {k: fill(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, lookup) for v in value]
    if isinstance(value, str) and "${" in value:
        whole = REFERENCE.fullmatch(value)
        if whole:
            name, field = _INSIDE.match(whole.group(1)).groups()
            return lookup(name, field)
        return REFERENCE.sub(lambda m: str(lookup(*_INSIDE.match(m.group(1)).groups())), value)
    return value


def resolve(step: Any, lookup: Callable[[str, str], Any]) -> Any:
    """The step with every reference filled in, validated again as its own type."""
    raw = step.model_dump(by_alias=True, exclude_unset=True)
    return type(step).model_validate(fill(raw, lookup))


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
