"""What a person watching a run sees: timestamped progress, step lines, a verdict per cell, and
on a terminal a live bar of the cells done.

These are hooks (`harness.execution.hooks`): commands pick the ones they show. Progress lines
quote scenario source (`tags: [t1]`), so they are escaped, never read as rich markup; every
line a cell prints is redacted with that cell's secrets.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..execution.hooks import Hooks
from ..verdicts import StepStatus, Verdict
from .text import at_note, failure_details, redact


class ProgressPrinter(Hooks):
    """`  12.3s [1.85.0] message`; with `steps`, a line per step; with `details`, the detail lines
    (resets between scenarios, start-up timings) too. Flushed per line, so CI logs and pipes see
    long steps as they happen."""

    def __init__(self, console: Console, *, steps: bool = True, details: bool = True):
        self.console, self.steps, self.details = console, steps, details
        self.started = time.monotonic()

    def say(self, message: str, version: str | None = None) -> None:
        where = f"[{version}] " if version else ""
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f}s[/] {escape(where + message)}",
                           highlight=False, markup=True)
        sys.stdout.flush()

    def progress(self, message, version=None):
        self.say(message, version)

    def detail(self, message, version=None):
        if self.details:
            self.say(message, version)

    def before_scenario(self, scenario, version):
        if self.steps:
            self.say(f"{scenario.name} ({scenario.path})", version)

    def after_step(self, scenario, version, step):
        if not self.steps:
            return
        served = ""
        if scenario is not None and len(scenario.deployment.names) > 1 and step.served:
            counts = {n: step.served.count(n) for n in dict.fromkeys(step.served)}
            served = " [served by " + ", ".join(f"{n} x{c}" for n, c in counts.items()) + "]"
        self.say(f"  {StepStatus(step.status).mark} {step.line:>3}: {step.source}  ({step.seconds:.2f}s){served}", version)


class VerdictPrinter(Hooks):
    """`REPRODUCED org_budget_reset on litellm 1.82.3 (12.0s): line 29: ...`, then the failing steps'
    details: for every cell that is not `passed` (`details="problems"`), or only for cells that
    fail the run (`details="failing"`)."""

    def __init__(self, console: Console, details: str = "problems"):
        self.console, self.details = console, details

    def after_scenario(self, result):
        verdict = Verdict(result.verdict)
        self.console.print(
            f"[{verdict.style}]{verdict.upper()}[/] {result.scenario.name} on litellm {result.version}{at_note(result)} "
            f"({result.seconds:.1f}s): {escape(redact(result.reason, result.secrets))}", highlight=False, markup=True)
        wanted = verdict.failing if self.details == "failing" else verdict != Verdict.PASSED
        details = failure_details(result) if wanted else ""
        if details:
            self.console.print(details, highlight=False, markup=False)
        sys.stdout.flush()


class _Eta(ProgressColumn):
    """`ETA 0:01:10`: the time left if the run keeps its average pace so far (builds and start-ups
    included), counting down between cells; rich's own column holds still until the next cell
    ends, and a cell can take minutes."""

    max_refresh = 0.5

    def render(self, task) -> Text:
        done_at = task.fields.get("done_at")  # elapsed seconds when the last cell ended
        if not task.completed or done_at is None or task.total is None:
            return Text("ETA -:--:--", style="progress.remaining")
        left = max(0, int(done_at * task.total / task.completed - (task.elapsed or 0)))
        minutes, seconds = divmod(left, 60)
        return Text(f"ETA {minutes // 60}:{minutes % 60:02d}:{seconds:02d}", style="progress.remaining")


class ProgressBar(Hooks):
    """`1.85.0 key_budget_reset  ━━━━━━━━━━╺━━━━━━━━━  2/4 cells  0:00:41  ETA 0:00:38`, live at the
    bottom of a terminal; nothing at all when the console is not one (pipes and CI logs keep the
    timestamped lines alone). The other hooks' `console.print` lines go above the bar, so give
    them the same Console.

    A context: the command enters it around its `with Engine(...)`, so the bar stops however the
    run ends (`after_run`, an error, Ctrl-C) and no live display outlives it."""

    def __init__(self, console: Console):
        self.console = console
        self.bar: Progress | None = None
        self.task = None
        self.running: dict[str, str] = {}  # release -> its scenario now running (one per worker)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.bar is not None:
            bar, self.bar = self.bar, None
            bar.stop()

    def before_run(self, plan):
        if not self.console.is_terminal:
            return
        self.stop()
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("cells"),
                            TimeElapsedColumn(), _Eta(), console=self.console)
        self.task = self.bar.add_task("", total=plan.cell_count)
        self.bar.start()

    def _show(self) -> None:
        text = ", ".join(f"{v} {name}" for v, name in self.running.items())
        self.bar.update(self.task, description=escape(text))

    def before_scenario(self, scenario, version):
        if self.bar is not None:
            self.running[version] = scenario.name
            self._show()

    def after_scenario(self, result):
        if self.bar is not None:
            self.running.pop(result.version, None)
            self.bar.update(self.task, advance=1, done_at=self.bar.tasks[0].elapsed)
            self._show()

    def after_run(self, run):
        self.stop()
