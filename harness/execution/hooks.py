"""What commands attach to a run: progress, verdict lines, reports, bundles, JUnit.

A hook is any object with some of these methods (subclass `Hooks` and override what you need),
as pytest-bdd's and Tavern's hook specs are. The engine calls them in the process that runs the
command, in this order, also for cells that ran in worker processes:

    before_run(plan)                           `Engine.run` starts a Plan (`plan.cell_count` cells)
    progress(message, version)                 a line worth showing while it runs
    detail(message, version)                   a line for a verbose log (a reset between scenarios)
    before_scenario(scenario, version)         a cell starts
    after_step(scenario, version, step)        one step's StepResult
    after_scenario(result)                     one cell's ScenarioResult (its verdict decided)
    after_release(version, results, seconds)   every cell of one release
    after_run(run)                             the whole RunOutcome

`before_run` and `after_run` frame `Engine.run` only (run, matrix, check); `bisect` and the
pytest plugin ask for releases and cells one at a time, so their hooks see neither.

`wants_rows`: the engine reads each scenario's budget-related database rows before the next
scenario empties the tables, into `ScenarioResult.database_rows` (bug-report bundles).
`wants_readings`: after each step the scenario's clock and each entity's spend and budget, into
`StepResult.readings` (timelines); nothing is read when no hook wants them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from ..scenario.model import Scenario
    from .plan import Plan
    from .results import RunOutcome, ScenarioResult, StepResult


class Hooks:
    wants_rows: bool = False
    wants_readings: bool = False

    def before_run(self, plan: "Plan") -> None:
        pass

    def progress(self, message: str, version: str | None = None) -> None:
        pass

    def detail(self, message: str, version: str | None = None) -> None:
        pass

    def before_scenario(self, scenario: "Scenario", version: str) -> None:
        pass

    def after_step(self, scenario: "Scenario", version: str, step: "StepResult") -> None:
        pass

    def after_scenario(self, result: "ScenarioResult") -> None:
        pass

    def after_release(self, version: str, results: "list[ScenarioResult]", seconds: float) -> None:
        pass

    def after_run(self, run: "RunOutcome") -> None:
        pass


class HookList(Hooks):
    """Several hooks as one, called in the order given."""

    def __init__(self, hooks: Iterable[Hooks] = ()):
        self.hooks = [h for h in hooks if h is not None]
        self.wants_rows = any(h.wants_rows for h in self.hooks)
        self.wants_readings = any(h.wants_readings for h in self.hooks)

    def before_run(self, plan):
        for h in self.hooks:
            h.before_run(plan)

    def progress(self, message, version=None):
        for h in self.hooks:
            h.progress(message, version)

    def detail(self, message, version=None):
        for h in self.hooks:
            h.detail(message, version)

    def before_scenario(self, scenario, version):
        for h in self.hooks:
            h.before_scenario(scenario, version)

    def after_step(self, scenario, version, step):
        for h in self.hooks:
            h.after_step(scenario, version, step)

    def after_scenario(self, result):
        for h in self.hooks:
            h.after_scenario(result)

    def after_release(self, version, results, seconds):
        for h in self.hooks:
            h.after_release(version, results, seconds)

    def after_run(self, run):
        for h in self.hooks:
            h.after_run(run)
