"""The progress bar hook (reports/terminal.ProgressBar) and the engine's `before_run` call: a live
bar of cells done / total, elapsed and ETA on a terminal; nothing at all when piped."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Task, TaskID

from harness.execution import engine as eng
from harness.execution.engine import Engine
from harness.execution.hooks import Hooks
from harness.execution.plan import Plan, Selection
from harness.execution.results import ScenarioResult
from harness.reports.terminal import ProgressBar, ProgressPrinter, VerdictPrinter, _Eta
from harness.scenario import load

ROOT = Path(__file__).resolve().parent.parent
ORG = load(ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml")
KEY = load(ROOT / "scenarios" / "reset_job" / "key_budget_reset.yaml")


def cell(scenario, version, verdict="passed"):
    return ScenarioResult(scenario=scenario, version=version, verdict=verdict, reason=verdict, steps=[], seconds=1.0,
                          environment={"litellm": version})


class FakeSession:
    """A ReleaseSession that passes every scenario without starting anything (`fail_on`: raise there)."""

    fail_on: tuple[str, str] | None = None

    def __init__(self, version, server, progress=None, **_kwargs):
        self.version = version
        progress(f"proxy of {version} up")

    def run(self, scenario, on_step=None, readings=False):
        if (scenario.name, self.version) == FakeSession.fail_on:
            raise KeyboardInterrupt
        return cell(scenario, self.version)

    def close(self):
        pass


@pytest.fixture()
def fake_releases(monkeypatch, fake_pg_server):
    monkeypatch.setattr("harness.releases.ensure_release", lambda version, progress=None: None)
    monkeypatch.setattr(eng, "ReleaseSession", FakeSession)
    FakeSession.fail_on = None


def console(terminal: bool) -> Console:
    # the options of cli.py's Console, into a buffer
    return Console(file=io.StringIO(), force_terminal=terminal, width=120, highlight=False, soft_wrap=True,
                   emoji=False)


def shown(out: Console) -> str:
    """What the terminal was sent, without the colour and cursor codes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.file.getvalue())


# -- the total ----------------------------------------------------------------------------


def test_cell_count_is_the_cells_that_get_a_verdict():
    refused = Selection(versions=["1.82.3", "1.107.0"], refused={"1.107.0": "litellm 1.107.0 is refused: bad"})
    assert Plan([ORG, KEY], refused).cell_count == 4  # a deny-listed release's cells are uninstallable cells
    shard = Plan([ORG, KEY], Selection(versions=["1.82.3", "1.85.0"]), only={(ORG.path, "1.85.0")})
    assert shard.cell_count == 1


class Calls(Hooks):
    def __init__(self):
        self.calls = []

    def before_run(self, plan):
        self.calls.append(("before_run", plan.cell_count))

    def after_scenario(self, result):
        self.calls.append(("after_scenario", result.version))

    def after_run(self, run):
        self.calls.append(("after_run", len(run.results)))


def test_engine_run_announces_the_plan_before_anything_else(fake_releases):
    calls = Calls()
    sel = Selection(versions=["1.85.0", "1.107.0"], refused={"1.107.0": "litellm 1.107.0 is refused: bad"})
    with Engine([calls]) as engine:
        engine.run(Plan([ORG, KEY], sel))
    assert calls.calls[0] == ("before_run", 4) and calls.calls[-1] == ("after_run", 4)
    assert sum(name == "after_scenario" for name, _ in calls.calls) == 4


# -- on a terminal ------------------------------------------------------------------------


def test_on_a_terminal_the_bar_shows_cells_done_elapsed_eta_and_the_running_cells():
    out = console(terminal=True)
    with ProgressBar(out) as bar:
        bar.before_run(Plan.of([KEY], ["1.85.0", "1.100.0"]))
        bar.before_scenario(KEY, "1.85.0")
        bar.before_scenario(KEY, "1.100.0")  # -j 2: one cell per worker
        bar.bar.refresh()
        first = shown(out)
        assert "1.85.0 key_budget_reset, 1.100.0 key_budget_reset" in first and "0/2 cells" in first
        assert "ETA -:--:--" in first  # no cell done yet: no pace to go by
        bar.after_scenario(cell(KEY, "1.85.0"))
        bar.bar.refresh()
        second = shown(out)[len(first):]
        assert "1/2 cells" in second and re.search(r"1/2 cells \d:\d\d:\d\d ETA \d:\d\d:\d\d", second)
        assert "1.100.0 key_budget_reset" in second and "1.85.0 key_budget_reset" not in second
        live = bar.bar.live
        bar.after_scenario(cell(KEY, "1.100.0"))
        bar.after_run(None)
    assert not live.is_started and bar.bar is None
    assert "2/2 cells" in shown(out)


def test_eta_counts_down_to_the_finish_at_the_average_pace():
    now = [10.0]
    task = Task(TaskID(0), "", total=4, completed=0, _get_time=lambda: now[0])
    task.start_time = 0.0
    assert _Eta().render(task).plain == "ETA -:--:--"
    task.completed, task.fields["done_at"] = 1, 10.0  # one cell of four in 10 s: 40 s in all
    assert _Eta().render(task).plain == "ETA 0:00:30"
    now[0] = 25.0  # no cell ended since: it counts down, not holds still
    assert _Eta().render(task).plain == "ETA 0:00:15"
    now[0] = 3700.0  # slower than the pace: 0, never negative
    assert _Eta().render(task).plain == "ETA 0:00:00"
    task.completed, task.fields["done_at"] = 2, 3700.0
    assert _Eta().render(task).plain == "ETA 1:01:40"


def test_printed_lines_go_above_the_bar_through_the_one_console(fake_releases):
    out = console(terminal=True)
    bar = ProgressBar(out)
    with bar, Engine([ProgressPrinter(out), VerdictPrinter(out), bar]) as engine:
        engine.run(Plan.of([ORG, KEY], ["1.85.0"]))
    text = shown(out)
    assert "PASSED" in text and "[1.85.0] proxy of 1.85.0 up" in text and "2/2 cells" in text
    assert bar.bar is None


def test_no_live_display_is_left_when_the_run_is_interrupted(fake_releases):
    out = console(terminal=True)
    bar = ProgressBar(out)
    live = []

    class Watch(Hooks):
        def before_scenario(self, scenario, version):
            live.append(bar.bar.live)

    FakeSession.fail_on = ("key_budget_reset", "1.85.0")  # Ctrl-C in the second cell
    with pytest.raises(KeyboardInterrupt):
        with bar, Engine([ProgressPrinter(out), bar, Watch()]) as engine:
            engine.run(Plan.of([ORG, KEY], ["1.85.0"]))
    assert len(live) == 2 and not live[0].is_started and bar.bar is None
    assert out._live_stack == []  # rich's own record of the live displays on this console


# -- piped --------------------------------------------------------------------------------


def test_piped_the_output_is_todays_lines_exactly(fake_releases):
    def lines(with_bar: bool) -> str:
        out = console(terminal=False)
        hooks = [ProgressPrinter(out), VerdictPrinter(out)]
        bar = ProgressBar(out)
        with bar, Engine(hooks + [bar] if with_bar else hooks) as engine:
            engine.run(Plan.of([ORG, KEY], ["1.85.0", "1.100.0"]))
        assert bar.bar is None
        return re.sub(r"^ *\d+\.\ds ", "", out.file.getvalue(), flags=re.M)  # the timestamps differ, not the lines

    plain, barred = lines(False), lines(True)
    assert barred == plain and "PASSED key_budget_reset on litellm 1.100.0" in plain
    assert "\x1b" not in barred and "cells" not in barred
