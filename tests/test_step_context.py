"""The runner's ScenarioRun is the StepContext steps are written against: it defines every
method the Protocol declares, with the same signature, and sets every attribute to a value of
the declared kind."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

from harness.execution.scenario_run import ScenarioRun
from harness.proxy.entities import Database
from harness.scenario import load
from harness.steps.base import StepContext


def _fits(value: object, hint: object) -> bool:
    """`value` is of the declared kind: an instance of the class (of a generic's origin), or
    has every member of a Protocol."""
    if isinstance(hint, type) and getattr(hint, "_is_protocol", False):
        members = {*typing.get_type_hints(hint), *(n for n in vars(hint) if not n.startswith("_"))}
        return all(hasattr(value, name) for name in members)
    origin = typing.get_origin(hint) or hint
    return isinstance(value, origin) if isinstance(origin, type) else True


def mismatches(protocol: type, cls: type, instance: object) -> list[str]:
    """What `cls` (and an `instance` of it, for the attributes __init__ sets) lacks of `protocol`."""
    problems = []
    for name, hint in typing.get_type_hints(protocol).items():
        if not hasattr(instance, name):
            problems.append(f"attribute `{name}` is missing")
        elif not _fits(getattr(instance, name), hint):
            problems.append(f"attribute `{name}` is a {type(getattr(instance, name)).__name__}, not a {hint}")
    for name, member in vars(protocol).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        implementation = vars(cls).get(name)  # its own, not the Protocol's empty body
        if not inspect.isfunction(implementation):
            problems.append(f"method `{name}` is missing")
        elif inspect.signature(implementation) != inspect.signature(member):
            problems.append(f"`{name}{inspect.signature(implementation)}` is not `{name}{inspect.signature(member)}`")
    return problems


class _Replica:
    """A bare target: ScenarioRun makes it a fleet of one."""

    alive = True


def test_scenario_run_implements_the_step_context(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - run_reset_job\n")
    run = ScenarioRun(load(path), fleet=_Replica(), db=Database("postgresql://127.0.0.1:1/unused"))
    assert mismatches(StepContext, ScenarioRun, run) == []


def test_the_check_sees_a_missing_member_a_wrong_value_and_a_changed_signature() -> None:
    class Partial(StepContext):
        def __init__(self):
            self.entities, self.config = [], ""  # not a dict; a str has no `at`

        def entity(self, name):  # no annotations
            return None

    problems = mismatches(StepContext, Partial, Partial())
    assert "attribute `target` is missing" in problems and "method `injector` is missing" in problems
    assert any(p.startswith("attribute `entities` is a list") for p in problems)
    assert any(p.startswith("attribute `config` is a str") for p in problems)
    assert any(p.startswith("`entity(self, name)` is not") for p in problems)
