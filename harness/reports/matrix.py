"""Matrix reports: the terminal table, Markdown (a PR comment, $GITHUB_STEP_SUMMARY), JUnit XML, JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..execution.results import ScenarioResult
from ..verdicts import Verdict
from .text import failure_details, redact, result_dict

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
            row.append(f"[{Verdict(r.verdict).style}]{r.verdict}[/]{mark}")
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
        console.print(f"  ({i}) {r.scenario.name} on {r.version}: [{Verdict(r.verdict).style}]{r.verdict}[/] - "
                      f"{escape(_ANSI.sub('', reason))}", highlight=False, markup=True)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def matrix_markdown(results: list[ScenarioResult], title: str = "LiteLLM budget matrix", note: str = "",
                    seconds: float | None = None) -> str:
    """A Markdown report for a pull-request comment or `$GITHUB_STEP_SUMMARY` (secrets redacted)."""
    secrets = _all_secrets(results)
    versions = _versions(results)
    counts = verdict_counts(results)
    failing = sum(n for v, n in counts.items() if Verdict(v).failing)
    lines = [f"## {title}", ""]
    head = "**" + (f"{failing} failing" if failing else "no failures") + "** - " + ", ".join(
        f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: list(Verdict).index(Verdict(kv[0])))
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
                row.append(Verdict(r.verdict).markdown + (f" <sup>{notes[id(r)]}</sup>" if id(r) in notes else ""))
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines.append("")
    listed = cell_notes(results)
    if listed:
        lines.append("Notes:")
        lines.append("")
        for i, (r, reason) in enumerate(listed, 1):
            lines.append(f"{i}. `{r.scenario.name}` on `{r.version}` - **{r.verdict}**: {_md_escape(reason)}")
        lines.append("")
    used = [v for v in Verdict if v in counts]
    lines.append("<details><summary>What the verdicts mean</summary>")
    lines.append("")
    for v in used:
        lines.append(f"- **{v}**: {v.meaning} (CI: {v.ci_outcome})")
    lines.append("")
    lines.append("</details>")
    lines.append("")
    for r in results:
        if not Verdict(r.verdict).failing:
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
        outcome = Verdict(r.verdict).ci_outcome
        t["tests"] += 1
        t["time"] += r.seconds
        if outcome == "fail":
            tag = "error" if r.verdict == Verdict.ERROR else "failure"
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
        cell["ci"] = Verdict(r.verdict).ci_outcome
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
