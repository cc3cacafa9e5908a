"""The step registry: every step type, from the family modules here and from plugins.

A family module declares its step classes (subclasses of `Step` with an `action`); nothing
else lists them. Plugins add theirs through the entry point group `litellm_harness.steps`: the
entry point names a module (every step class defined in it) or one step class.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType

from .base import Step

FAMILIES = ("entities", "spend", "clock", "jobs", "interleavings", "expectations", "management", "faults", "bulk")
ENTRY_POINT_GROUP = "litellm_harness.steps"


def _declared_in(module: ModuleType) -> list[type[Step]]:
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Step) and obj.__module__ == module.__name__ and "action" in vars(obj)
    ]


@lru_cache(maxsize=None)
def builtin() -> dict[str, type[Step]]:
    steps: dict[str, type[Step]] = {}
    for family in FAMILIES:
        for cls in _declared_in(importlib.import_module(f"{__name__}.{family}")):
            steps[cls.action] = cls
    return steps


def _add(steps: dict[str, type[Step]], cls: type[Step], origin: str) -> None:
    from ..errors import HarnessError

    if cls.action in steps and steps[cls.action] is not cls:
        raise HarnessError(f"step plugin {origin}: action `{cls.action}` is already defined by {steps[cls.action].__module__}")
    steps[cls.action] = cls


@lru_cache(maxsize=None)
def registry() -> dict[str, type[Step]]:
    """Built-in steps, then every plugin's (an action may be defined once)."""
    from ..errors import HarnessError

    steps = dict(builtin())
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"{ep.name} ({ep.value})"
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin is a one-line problem, not a traceback
            raise HarnessError(f"step plugin {origin} failed to load: {type(exc).__name__}: {exc}") from None
        if isinstance(loaded, ModuleType):
            classes = _declared_in(loaded)
        elif isinstance(loaded, type) and issubclass(loaded, Step) and "action" in vars(loaded):
            classes = [loaded]
        else:
            raise HarnessError(f"step plugin {origin}: expected a module or a Step subclass with an `action`")
        for cls in classes:
            _add(steps, cls, origin)
    return steps


def readme_table(steps: dict[str, type[Step]] | None = None) -> str:
    """The README's step table (between the `steps-table` markers), one row per step."""
    steps = builtin() if steps is None else steps
    rows = ["| step | family | fields | what it does |", "|---|---|---|---|"]
    for action, cls in steps.items():
        fields = ", ".join(f"`{f.alias or n}`" for n, f in cls.model_fields.items())
        doc = cls.one_line_doc().replace("|", "\\|")
        rows.append(f"| `{action}` | {cls.family_name()} | {fields or '-'} | {doc} |")
    return "\n".join(rows)


__all__ = ["ENTRY_POINT_GROUP", "FAMILIES", "Step", "builtin", "readme_table", "registry"]
