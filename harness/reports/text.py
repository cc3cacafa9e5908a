"""Verdicts a person can read and paste into a bug report, with every secret redacted."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .execution.results import ScenarioResult, StepResult

# Virtual keys and master keys (sk-...), and passwords inside connection URLs.
_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@")

VERDICT_STYLE = {
    "passed": "bold green",
    "reproduced": "bold yellow",
    "unexpected pass": "bold red",
    "regression": "bold red",
    "error": "bold red",
    "unsupported": "bold blue",
    "uninstallable": "dim",
}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    text = _KEY.sub("sk-[REDACTED]", text)
    return _URL_PASSWORD.sub(r"\1[REDACTED]@", text)


def _value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def failure_details(result: ScenarioResult, log_lines: int = 25) -> str:
    """The failing steps: source line, expected versus actual, the entity's row, the log tail."""
    out: list[str] = []
    for step in result.steps:
        if step.status not in ("failed", "error", "unsupported"):
            continue
        out.append(f"{result.scenario.path}:{step.line}: {step.source}")
        out.append(f"  {step.status}: {step.message}")
        if step.expected is not None or step.actual is not None:
            out.append(f"  expected: {_value(step.expected)}")
            out.append(f"  actual:   {_value(step.actual)}")
        if step.served and result.environment.get("deployment"):
            out.append(f"  served by: {', '.join(step.served)}")
        for name, row in (step.rows or {}).items():
            out.append(f"  database row of {name}: {_value(row)}")
    if out and result.faults:
        out.append("faults (real UTC time):")
        out.extend("  " + fault_line(f) for f in result.faults)
    if out and result.log_tail and log_lines > 0:
        tail = result.log_tail.splitlines()[-log_lines:] if log_lines > 0 else []
        out.append(f"proxy log (last {len(tail)} lines):")
        out.extend("  | " + line for line in tail)
    return redact("\n".join(out), result.secrets)


def fault_line(fault: dict[str, Any]) -> str:
    """`redis_down on redis-server 127.0.0.1:6379: 00:01:02.123 -> 00:01:04.456 (2.33s, switched)`."""
    def clock(iso: str | None) -> str:
        return iso[11:23] if iso else "still on"
    seconds = f"{fault['seconds']:.2f}s, " if fault.get("seconds") is not None else ""
    detail = f" {json.dumps(fault['detail'])}" if fault.get("detail") else ""
    return (f"{fault['fault']}{detail} on {fault['target']}: {clock(fault['started_at'])} -> "
            f"{clock(fault.get('ended_at'))} ({seconds}{fault.get('end') or 'open'})")


def at_note(result: ScenarioResult) -> str:
    """` at TIME` when the run moved `now` (--at), so a pasted verdict says when it held."""
    at = result.environment.get("at")
    return f" at {at}" if at else ""


def verdict_line(result: ScenarioResult) -> str:
    return f"{result.scenario.name} on litellm {result.version}{at_note(result)}: {result.verdict.upper()} - {result.reason}"


def print_result(console: Console, result: ScenarioResult) -> None:
    style = VERDICT_STYLE.get(result.verdict, "bold")
    console.print(
        f"[{style}]{result.verdict.upper()}[/] {result.scenario.name} on litellm {result.version}{at_note(result)} "
        f"({result.seconds:.1f}s): {escape(redact(result.reason, result.secrets))}",
        highlight=False,
        markup=True,
    )
    details = failure_details(result)
    if details and result.verdict != "passed":
        console.print(details, highlight=False, markup=False)


def step_dict(step: StepResult) -> dict[str, Any]:
    return {
        "line": step.line,
        "source": step.source,
        "step": step.description,
        "status": step.status,
        "seconds": round(step.seconds, 3),
        "message": step.message,
        "served": step.served,  # the replica that served each request (deployments)
        "expected": step.expected,
        "actual": step.actual,
        "rows": step.rows,
    }


def result_dict(result: ScenarioResult) -> dict[str, Any]:
    """Everything about one (scenario, release) cell, redacted, JSON-ready."""
    data = {
        "scenario": result.scenario.name,
        "file": result.scenario.path,
        "issue": result.scenario.meta.issue,
        "affects": result.scenario.meta.affects,
        "litellm": result.version,
        "verdict": result.verdict,
        "reason": result.reason,
        "seconds": round(result.seconds, 3),
        "environment": result.environment,
        "steps": [step_dict(s) for s in result.steps],
        "faults": result.faults,  # injected faults with their real start and end (UTC)
        "proxy_log_tail": result.log_tail,
    }
    return json.loads(redact(json.dumps(data, default=str), result.secrets))


# --------------------------------------------------------------------------------------------
# Matrix reports: terminal table, Markdown (PR comment / $GITHUB_STEP_SUMMARY), JUnit XML, JSON.
# Cells are runner results; a release that could not be installed is a result with verdict
# `uninstallable` and no steps (harness.matrix).

#: what a verdict means for CI: pass / fail / skip
CI_OUTCOME = {
    "passed": "pass",
    "reproduced": "pass",  # failed inside the scenario's `affects`: the known bug is still there
    "regression": "fail",
    "unexpected pass": "fail",
    "error": "fail",
    "unsupported": "skip",
    "uninstallable": "skip",
}
_MD_MARK = {
    "passed": "✅ passed",
    "reproduced": "🐞 reproduced",
    "regression": "❌ regression",
    "unexpected pass": "❌ unexpected pass",
    "error": "❌ error",
    "unsupported": "⏭️ unsupported",
    "uninstallable": "⏭️ uninstallable",
}
_MEANING = {
    "passed": "every expectation held",
    "reproduced": "an expectation failed on a release inside `affects`: the known bug reproduces (not a failure)",
    "regression": "an expectation failed on a release outside `affects`",
    "unexpected pass": "every expectation held on a release inside `affects`: the bug did not reproduce",
    "error": "the harness could not do a step",
    "unsupported": "the release cannot run a step for a reason outside the scenario (endpoint missing or licence-gated): no verdict",
    "uninstallable": "no environment could be built for the release: no verdict",
}


def _all_secrets(results: list[ScenarioResult]) -> list[str]:
    return sorted({s for r in results for s in r.secrets if s}, key=len, reverse=True)


def _versions(results: list[ScenarioResult]) -> list[str]:
    from packaging.version import Version

    return sorted(dict.fromkeys(r.version for r in results), key=Version)


def _grid(results: list[ScenarioResult]) -> dict[str, dict[str, ScenarioResult]]:
    grid: dict[str, dict[str, ScenarioResult]] = {}
    for r in results:
        grid.setdefault(r.scenario.path, {})[r.version] = r
    return grid


def verdict_counts(results: list[ScenarioResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return counts


def cell_notes(results: list[ScenarioResult]) -> list[tuple[ScenarioResult, str]]:
    """(cell, one-line reason) for every cell that is not a plain pass, in table order."""
    secrets = _all_secrets(results)
    out = []
    for r in results:
        if r.verdict != "passed":
            reason = " ".join(redact(r.reason, secrets).split())
            reason = reason[:300] + ("..." if len(reason) > 300 else "")
            if r.verdict == "unsupported" and r.steps:
                # how far it got: an unsupported cell is no verdict, but the steps before it did run
                ran = [st for st in r.steps if st.status in ("passed", "failed")]
                failed = sum(1 for st in ran if st.status == "failed")
                reason += (f" (before it, {len(ran)} of {len(r.steps)} steps ran: "
                           + (f"{failed} failed)" if failed else "all held)"))
            out.append((r, reason))
    return out


def matrix_table(results: list[ScenarioResult]) -> Table:
    """Scenarios down, releases across (version order); cells without a verdict carry a note number."""
    versions = _versions(results)
    notes = {id(r): i for i, (r, _) in enumerate(cell_notes(results), 1)}
    table = Table(title="verdicts (scenario x litellm release)")
    table.add_column("scenario", no_wrap=True)
    table.add_column("affects", no_wrap=True, style="dim")
    for version in versions:
        table.add_column(version, no_wrap=True)
    for path, cells in _grid(results).items():
        first = next(iter(cells.values())).scenario
        label = [first.name, first.meta.affects or ""]
        row = []
        for version in versions:
            r = cells.get(version)
            if r is None:
                row.append("-")
                continue
            mark = f" [dim]({notes[id(r)]})[/]" if id(r) in notes else ""
            row.append(f"[{VERDICT_STYLE.get(r.verdict, '')}]{r.verdict}[/]{mark}")
        table.add_row(*label, *row)
    return table


def print_wide(console: Console, table: Table, most: int = 1000) -> None:
    """A table on a terminal as rich lays it out; in CI logs or a pipe whole (up to `most`
    columns) instead of squeezed into 80 columns."""
    from rich.measure import Measurement

    out = console
    if not console.is_terminal:
        needed = min(Measurement.get(console, console.options.update_width(most), table).maximum, most)
        if needed > console.width:
            out = Console(file=console.file, width=needed, highlight=False, no_color=console.no_color, emoji=False)
    out.print(table)


def print_matrix(console: Console, results: list[ScenarioResult]) -> None:
    print_wide(console, matrix_table(results))
    for i, (r, reason) in enumerate(cell_notes(results), 1):
        console.print(f"  ({i}) {r.scenario.name} on {r.version}: [{VERDICT_STYLE.get(r.verdict, '')}]{r.verdict}[/] - "
                      f"{escape(_ANSI.sub('', reason))}", highlight=False, markup=True)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def matrix_markdown(results: list[ScenarioResult], title: str = "LiteLLM budget matrix", note: str = "",
                    seconds: float | None = None) -> str:
    """A Markdown report for a pull-request comment or `$GITHUB_STEP_SUMMARY` (secrets redacted)."""
    secrets = _all_secrets(results)
    versions = _versions(results)
    counts = verdict_counts(results)
    failing = sum(n for v, n in counts.items() if CI_OUTCOME.get(v) == "fail")
    lines = [f"## {title}", ""]
    head = "**" + (f"{failing} failing" if failing else "no failures") + "** - " + ", ".join(
        f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: list(CI_OUTCOME).index(kv[0]) if kv[0] in CI_OUTCOME else 99)
    )
    if seconds is not None:
        head += f" ({len(results)} cells in {seconds:.0f}s)"
    lines += [head, ""]
    if note:
        lines += [f"Releases: {_md_escape(note)}", ""]
    lines.append("| scenario | " + " | ".join(f"`{v}`" for v in versions) + " |")
    lines.append("|---|" + "---|" * len(versions))
    notes = {id(r): i for i, (r, _) in enumerate(cell_notes(results), 1)}
    for path, cells in _grid(results).items():
        s = next(iter(cells.values())).scenario
        label = f"`{s.name}`" + (f" (affects `{s.meta.affects}`)" if s.meta.affects else "")
        row = []
        for version in versions:
            r = cells.get(version)
            if r is None:
                row.append("-")
            else:
                row.append(_MD_MARK.get(r.verdict, r.verdict) + (f" <sup>{notes[id(r)]}</sup>" if id(r) in notes else ""))
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines.append("")
    listed = cell_notes(results)
    if listed:
        lines.append("Notes:")
        lines.append("")
        for i, (r, reason) in enumerate(listed, 1):
            lines.append(f"{i}. `{r.scenario.name}` on `{r.version}` - **{r.verdict}**: {_md_escape(reason)}")
        lines.append("")
    used = [v for v in CI_OUTCOME if v in counts]
    lines.append("<details><summary>What the verdicts mean</summary>")
    lines.append("")
    for v in used:
        lines.append(f"- **{v}**: {_MEANING[v]} (CI: {CI_OUTCOME[v]})")
    lines.append("")
    lines.append("</details>")
    lines.append("")
    for r in results:
        if CI_OUTCOME.get(r.verdict) != "fail":
            continue
        details = failure_details(r)
        lines.append(f"<details><summary>{r.scenario.name} on {r.version}: {r.verdict}</summary>")
        lines.append("")
        lines.append("```text")
        lines.append((details or redact(r.reason, secrets)).replace("```", "'''"))
        lines.append("```")
        lines.append("")
        lines.append("</details>")
        lines.append("")
    return redact("\n".join(lines), secrets)


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _xml_text(text: str) -> str:
    return _XML_BAD.sub("", _ANSI.sub("", text))


def junit_xml(results: list[ScenarioResult], suite: str = "litellm-budget-matrix") -> str:
    """JUnit XML, one testcase per (scenario, release).

    `passed` passes; `reproduced` passes with a note (property `verdict` and the reason in
    system-out); `regression` and `unexpected pass` are failures, `error` is an error (both fail
    a CI run); `unsupported` and `uninstallable` are skipped with the reason.
    """
    import xml.etree.ElementTree as ET

    secrets = _all_secrets(results)

    def clean(text: str) -> str:
        return _xml_text(redact(text, secrets))

    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.Element("testsuites", name=suite)
    suites: dict[str, ET.Element] = {}
    totals: dict[str, dict[str, float]] = {}
    for r in results:
        s = r.scenario
        el = suites.get(s.path)
        if el is None:
            el = ET.SubElement(root, "testsuite", name=s.name, file=s.path)
            suites[s.path] = el
            totals[s.path] = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
        t = totals[s.path]
        case = ET.SubElement(el, "testcase", classname=f"scenarios.{s.name}", name=f"litellm=={r.version}",
                             file=s.path, time=f"{r.seconds:.3f}")
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="verdict", value=r.verdict)
        if s.meta.affects:
            ET.SubElement(props, "property", name="affects", value=s.meta.affects)
        reason = clean(r.reason)
        outcome = CI_OUTCOME.get(r.verdict, "fail")
        t["tests"] += 1
        t["time"] += r.seconds
        if outcome == "fail":
            tag = "error" if r.verdict == "error" else "failure"
            node = ET.SubElement(case, tag, message=" ".join(reason.split())[:500], type=r.verdict)
            node.text = clean(failure_details(r) or r.reason)
            t["errors" if tag == "error" else "failures"] += 1
        elif outcome == "skip":
            ET.SubElement(case, "skipped", message=f"{r.verdict}: {' '.join(reason.split())[:500]}")
            t["skipped"] += 1
        elif r.verdict == "reproduced":
            ET.SubElement(props, "property", name="note",
                          value=f"reproduced inside affects {s.meta.affects}: the known bug is still there")
            out = ET.SubElement(case, "system-out")
            out.text = clean(f"reproduced (expected on this release, affects {s.meta.affects}): {r.reason}")
    for path, el in suites.items():
        t = totals[path]
        for k in ("tests", "failures", "errors", "skipped"):
            el.set(k, str(int(t[k])))
            counts[k] += int(t[k])
        el.set("time", f"{t['time']:.3f}")
    for k, v in counts.items():
        root.set(k, str(v))
    root.set("time", f"{sum(r.seconds for r in results):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def matrix_json(results: list[ScenarioResult], **meta: Any) -> dict[str, Any]:
    """The whole matrix as one JSON-ready, redacted document (cells via `result_dict`)."""
    secrets = _all_secrets(results)
    cells = []
    for r in results:
        cell = result_dict(r)
        cell["ci"] = CI_OUTCOME.get(r.verdict, "fail")
        cells.append(cell)
    doc = {
        "format": 1,
        **meta,
        "releases": _versions(results),
        "scenarios": list(dict.fromkeys(r.scenario.path for r in results)),
        "counts": verdict_counts(results),
        "cells": cells,
    }
    return json.loads(redact(json.dumps(doc, default=str), secrets))


def write_matrix_reports(out_dir, results: list[ScenarioResult], meta: dict[str, Any]) -> list[str]:
    """``matrix.json`` (`matrix_json` with ``meta``), ``matrix.md`` (Releases line ``meta["note"]``,
    time ``meta["seconds"]``) and ``junit.xml`` into ``out_dir``: what `matrix --out` and `merge --out`
    write. Returns the file names."""
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.json").write_text(json.dumps(matrix_json(results, **meta), indent=2, default=str) + "\n")
    (out / "matrix.md").write_text(matrix_markdown(results, note=meta.get("note", ""), seconds=meta.get("seconds")) + "\n")
    (out / "junit.xml").write_text(junit_xml(results))
    return ["matrix.json", "matrix.md", "junit.xml"]
