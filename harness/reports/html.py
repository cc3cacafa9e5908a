"""`--html FILE`: one self-contained page (inline CSS and SVG, no script, nothing fetched at view
time) with each cell's timeline on the scenario's own clock and, for several cells, a grid of
scenario x release linking to each timeline.

A timeline's x axis is the steps in order, each labelled with the scenario clock after it
(`StepResult.readings`, asked for with `wants_readings`). On it: each entity's spend after every
step (a line) against its max_budget (a dashed line), reset-job runs (vertical marks), fault
bands (from the step that injected a fault to the one that cleared it, or the end), each request
step as an accepted or rejected mark, and the first failing step highlighted with its source line,
message and readings. Every text goes through `report.redact` with the run's secrets, then is
HTML-escaped.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import HarnessError
from ..execution.hooks import Hooks
from ..execution.results import RunOutcome, ScenarioResult, StepResult
from ..verdicts import StepStatus
from .text import redact

WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 760, 260, 60, 20, 70
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
REQUEST_STEPS = ("spend", "expect_request", "request")
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table.grid{border-collapse:collapse}table.grid td,table.grid th{border:1px solid #bbb;padding:.3em .6em}
.v-passed{background:#d9f2d9}.v-reproduced{background:#fde2b8}.v-regression,.v-error{background:#f6c6c6}
.v-unexpected-pass{background:#f9d0f0}.v-unsupported,.v-uninstallable{background:#e4e4e4}
section.cell{border-top:2px solid #888;margin-top:2em}
.failing{background:#fff0f0;border-left:4px solid #d62728;padding:.5em}
pre{white-space:pre-wrap}
svg text{font-size:10px}
"""


def _step_kind(step: StepResult) -> str:
    return step.source.strip().lstrip("-").strip().split(":", 1)[0].strip()


def cell_id(result: ScenarioResult) -> str:
    return "cell-" + re.sub(r"[^A-Za-z0-9_-]+", "_", f"{result.scenario.name}-{result.version}")


def cell_ids(results: list[ScenarioResult]) -> list[str]:
    """Each cell's anchor, unique on the page (explore's examples share one scenario name)."""
    seen: dict[str, int] = {}
    ids = []
    for result in results:
        base = cell_id(result)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def _verdict_class(verdict: str) -> str:
    return "v-" + str(verdict).replace(" ", "-")


def request_outcome(step: StepResult, declared: str | None = None) -> str | None:
    """'accepted' or 'rejected' (the step's last request) for a request step that ran, else None;
    `declared` is an `expect_request`'s `outcome:` (it passed: that; it failed: the other one)."""
    kind = _step_kind(step)
    if kind not in REQUEST_STEPS or step.status not in (StepStatus.PASSED, StepStatus.FAILED):
        return None
    if declared not in ("accepted", "rejected"):
        return "rejected" if "rejected" in step.message else "accepted"
    if step.status == StepStatus.PASSED:
        return declared
    return "accepted" if declared == "rejected" else "rejected"


def _declared_outcome(result: ScenarioResult, step: StepResult) -> str | None:
    placed = next((p for p in result.scenario.steps if p.index == step.index), None)
    return getattr(placed.step, "outcome", None) if placed is not None else None


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def timeline_svg(result: ScenarioResult, esc: Callable[[Any], str]) -> str:
    steps = result.steps
    n = max(len(steps), 1)
    plot_w, plot_h = WIDTH - LEFT - 20, HEIGHT - TOP - BOTTOM
    x = lambda i: LEFT + plot_w * (i + 0.5) / n  # noqa: E731
    series: dict[str, list[tuple[int, float]]] = {}
    budgets: dict[str, float] = {}
    counters: dict[str, list[tuple[int, float]]] = {}  # "k1 replica a", "k1 redis"
    for i, s in enumerate(steps):
        for name, reading in ((s.readings or {}).get("spend") or {}).items():
            spend = _number(reading.get("spend"))
            if spend is not None:
                series.setdefault(name, []).append((i, spend))
            for where, value in (reading.get("counters") or {}).items():
                if _number(value) is not None:
                    counters.setdefault(f"{name} {where}", []).append((i, _number(value)))
            budget = _number(reading.get("max_budget"))
            if budget is not None:
                budgets[name] = budget
    top = max([v for pts in (*series.values(), *counters.values()) for _, v in pts] + list(budgets.values()) + [0.0]) * 1.15 or 1.0
    y = lambda v: TOP + plot_h * (1 - v / top)  # noqa: E731
    out = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}">']
    # fault bands: from the step during which a fault started to the one during which it ended
    half = plot_w / n / 2
    for fault in result.faults:
        first, last = _step_span(steps, fault.get("started_at"), fault.get("ended_at"))
        if first is not None:
            label = f"{fault.get('target')}: {fault.get('fault')} {json.dumps(fault.get('detail') or {}, default=str)}"
            out.append(_band(x(first) - half, x(last) + half if last is not None else LEFT + plot_w, plot_h, esc(label)))
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#444"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>')
    out.append(f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{top:.3g}</text>'
               f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>')
    for k, (name, pts) in enumerate(sorted(series.items())):
        colour = COLOURS[k % len(COLOURS)]
        if name in budgets:
            by = y(budgets[name])
            out.append(f'<line class="budget-line" data-entity="{esc(name)}" x1="{LEFT}" y1="{by:.1f}" '
                       f'x2="{LEFT + plot_w}" y2="{by:.1f}" stroke="{colour}" stroke-dasharray="5,4">'
                       f'<title>{esc(name)} max_budget {budgets[name]:g}</title></line>')
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in pts)
        out.append(f'<polyline class="entity-line" data-entity="{esc(name)}" fill="none" stroke="{colour}" '
                   f'stroke-width="{max(4 - k, 1.5)}" points="{points}"><title>{esc(name)} spend</title></polyline>')
        out.append(f'<text x="{LEFT + plot_w - 4}" y="{TOP + 12 + 12 * k}" text-anchor="end" fill="{colour}">'
                   f'{esc(name)}</text>')
    for k, (name, pts) in enumerate(sorted(counters.items())):
        colour = COLOURS[(k + len(series)) % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in pts)
        out.append(f'<polyline class="counter-line" data-counter="{esc(name)}" fill="none" stroke="{colour}" '
                   f'stroke-width="1.5" stroke-dasharray="2,2" points="{points}"><title>{esc(name)} counter</title>'
                   f'</polyline><text x="{LEFT + plot_w - 4}" y="{TOP + 12 + 12 * (k + len(series))}" '
                   f'text-anchor="end" fill="{colour}">{esc(name)} counter</text>')
    problem = result.first_problem
    for i, s in enumerate(steps):
        cx = x(i)
        kind = _step_kind(s)
        clock = (s.readings or {}).get("clock")
        label = f"{s.line}" + (f" {clock[5:16].replace('T', ' ')}" if clock else "")
        out.append(f'<text x="{cx:.1f}" y="{TOP + plot_h + 12}" transform="rotate(40 {cx:.1f} {TOP + plot_h + 12})">'
                   f'{esc(label)}</text>')
        if s is problem:
            out.append(f'<rect class="failing-step" data-line="{s.line}" x="{cx - plot_w / n / 2:.1f}" y="{TOP}" '
                       f'width="{plot_w / n:.1f}" height="{plot_h}" fill="#d62728" fill-opacity="0.18">'
                       f'<title>line {s.line}: {esc(s.source.strip())}</title></rect>')
        if kind == "run_reset_job":
            out.append(f'<line class="reset-mark" x1="{cx:.1f}" y1="{TOP}" x2="{cx:.1f}" y2="{TOP + plot_h}" '
                       f'stroke="#555" stroke-width="2"><title>line {s.line}: reset job</title></line>')
        outcome = request_outcome(s, _declared_outcome(result, s))
        if outcome:
            fill = "#2ca02c" if outcome == "accepted" else "#d62728"
            out.append(f'<circle class="request-mark request-{outcome}" cx="{cx:.1f}" cy="{TOP + plot_h - 6}" r="5" '
                       f'fill="{fill}"><title>line {s.line}: {outcome}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _step_span(steps: list[StepResult], started: str | None, ended: str | None) -> tuple[int | None, int | None]:
    """The indexes of the steps during which a fault started and ended (None: not placed / still on)."""
    ends = [(s.readings or {}).get("real") for s in steps]

    def during(t: str | None) -> int | None:
        if not t or not all(ends):
            return None
        when = datetime.fromisoformat(t)
        return next((i for i, e in enumerate(ends) if datetime.fromisoformat(e) >= when), len(steps) - 1)

    return during(started), during(ended)


def _band(x1: float, x2: float, plot_h: float, title: str) -> str:
    return (f'<rect class="fault-band" x="{x1:.1f}" y="{TOP}" width="{max(x2 - x1, 1):.1f}" height="{plot_h}" '
            f'fill="#ffbf00" fill-opacity="0.2"><title>{title}</title></rect>')


def _cell_section(result: ScenarioResult, anchor: str, esc: Callable[[Any], str]) -> str:
    out = [f'<section class="cell" id="{anchor}">',
           f'<h2>{esc(result.scenario.name)} on litellm {esc(result.version)}: '
           f'<span class="{_verdict_class(result.verdict)}">{esc(result.verdict)}</span></h2>',
           f'<p>{esc(result.scenario.meta.title or "")} <code>{esc(result.scenario.path)}</code></p>',
           f'<p>{esc(result.reason)}</p>', timeline_svg(result, esc)]
    problem = result.first_problem
    if problem is not None:
        readings = json.dumps(problem.readings, default=str, indent=1) if problem.readings else ""
        rows = json.dumps(problem.rows, default=str, indent=1) if problem.rows else ""
        out.append(f'<div class="failing" data-line="{problem.line}"><b>line {problem.line} {esc(problem.status)}</b>'
                   f'<pre class="source-line">{esc(problem.source.strip())}</pre><p>{esc(problem.message)}</p>'
                   + (f"<p>expected {esc(problem.expected)}, actual {esc(problem.actual)}</p>"
                      if problem.expected is not None or problem.actual is not None else "")
                   + (f"<pre class=\"readings\">{esc(readings)}</pre>" if readings else "")
                   + (f"<pre class=\"rows\">{esc(rows)}</pre>" if rows else "") + "</div>")
    out.append("<table class=\"steps\"><tr><th>line</th><th>step</th><th>status</th><th>clock</th><th>detail</th></tr>")
    for s in result.steps:
        clock = (s.readings or {}).get("clock") or ""
        out.append(f"<tr><td>{s.line}</td><td><code>{esc(s.source.strip())}</code></td><td>{esc(s.status)}</td>"
                   f"<td>{esc(clock)}</td><td>{esc(s.message[:300])}</td></tr>")
    out.append("</table></section>")
    return "".join(out)


def _grid(results: list[ScenarioResult], anchors: list[str], esc: Callable[[Any], str]) -> str:
    anchor_of = {id(r): a for r, a in zip(results, anchors)}
    versions = list(dict.fromkeys(r.version for r in results))
    paths = list(dict.fromkeys(r.scenario.path for r in results))
    out = ['<table class="grid"><tr><th>scenario</th>' + "".join(f"<th>{esc(v)}</th>" for v in versions) + "</tr>"]
    for path in paths:
        cells = {r.version: r for r in results if r.scenario.path == path}
        name = next(iter(cells.values())).scenario.name
        out.append(f"<tr><th>{esc(name)}</th>")
        for v in versions:
            r = cells.get(v)
            out.append("<td></td>" if r is None else
                       f'<td class="{_verdict_class(r.verdict)}"><a href="#{anchor_of[id(r)]}">{esc(r.verdict)}</a></td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def build_page(results: list[ScenarioResult], *, title: str = "LiteLLM budget harness report",
               secrets: Iterable[str] = (), grid: bool | None = None) -> str:
    """The whole page as text; `grid` (default: more than one cell) adds the scenario x release grid."""
    secrets = sorted({s for s in secrets if s} | {s for r in results for s in r.secrets if s})

    def esc(value: Any) -> str:
        return html.escape(redact(str(value), secrets), quote=True)

    body = [f"<h1>{esc(title)}</h1>"]
    anchors = cell_ids(results)
    if grid if grid is not None else len(results) > 1:
        body.append(_grid(results, anchors, esc))
    body += [_cell_section(r, a, esc) for r, a in zip(results, anchors)]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>" + "".join(body) + "</body></html>\n")


class HtmlReport(Hooks):
    """The `--html FILE` hook: writes the page after the run."""

    wants_readings = True

    def __init__(self, path: str | Path, say: Callable[[str], None] = lambda _m: None, *,
                 title: str = "LiteLLM budget harness report", grid: bool | None = None):
        self.path, self.say, self.title, self.grid = Path(path), say, title, grid

    def after_run(self, run: RunOutcome) -> None:
        self.write(run.results, run.secrets)

    def write(self, results: list[ScenarioResult], secrets: Iterable[str] = ()) -> Path:
        page = build_page(results, title=self.title, secrets=secrets, grid=self.grid)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise HarnessError(f"--html {self.path}: {exc.strerror or exc}") from None
        self.say(f"HTML report: {self.path}")
        return self.path


__all__ = ["HtmlReport", "build_page", "cell_id", "cell_ids", "request_outcome", "timeline_svg"]
