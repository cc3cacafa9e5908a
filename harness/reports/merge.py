"""`merge`: the matrix reports of N shards (`matrix --shard I/N --out DIR`) back into one matrix.

The shards must be of one matrix (the same fingerprint: scenarios and their contents, resolved
releases, clock, proxy config), of one shard count, each present once, and their cells must be
the matrix's cells, each exactly once. Any other case is a one-line HarnessError naming it. The
merged cells are runner results again (rebuilt from the report JSON, already redacted), so the
writers of `harness.reports.matrix` produce the same outputs a single run would.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..execution.plan import order_results
from ..execution.results import ScenarioResult, StepResult
from ..scenario.model import Metadata, ProxySettings, Scenario
from ..verdicts import StepStatus, Verdict, exit_code


@dataclass
class Report:
    path: str
    doc: dict[str, Any]

    @property
    def shard(self) -> str:
        return f"{self.doc['shard']['index']}/{self.doc['shard']['count']}"


def read_report(path: str) -> Report:
    """A shard's ``matrix.json`` (or a directory holding one)."""
    file = Path(path)
    if file.is_dir():
        file = file / "matrix.json"
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{file}: no such report") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{file}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{file}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("cells"), list):
        raise HarnessError(f"{file}: not a matrix report (matrix --out writes matrix.json)")
    shard, matrix = doc.get("shard"), doc.get("matrix")
    if not isinstance(shard, dict) or not isinstance(matrix, dict) or "fingerprint" not in matrix:
        raise HarnessError(f"{file}: a matrix report without its shard and matrix identity (written by an older harness?)")
    index, count = shard.get("index"), shard.get("count")
    if not (isinstance(index, int) and isinstance(count, int) and 1 <= index <= count):
        raise HarnessError(f"{file}: its shard is not I/N with 1 <= I <= N: {index}/{count}")
    return Report(str(file), doc)


def _cells_text(cells) -> str:
    shown = ", ".join(f"{Path(path).name} on {version}" for path, version in sorted(cells)[:3])
    return shown + (f" and {len(cells) - 3} more" if len(cells) > 3 else "")


def check_shards(reports: list[Report]) -> None:
    """One matrix, one shard count, every shard once, every cell once; else a one-line HarnessError."""
    fingerprints = Counter(r.doc["matrix"]["fingerprint"] for r in reports)
    reference = next(r for r in reports if r.doc["matrix"]["fingerprint"] == fingerprints.most_common(1)[0][0])
    ref = reference.doc["matrix"]
    for r in reports:
        other = r.doc["matrix"]
        if other["fingerprint"] == ref["fingerprint"]:
            continue
        if other.get("releases") != ref.get("releases"):
            raise HarnessError(
                f"report {r.path} is from another matrix: its releases ({', '.join(other.get('releases', []))}) are not "
                f"those of {reference.path} ({', '.join(ref.get('releases', []))}); a --range resolved differently "
                "(a release published between shards?): pin the releases with --litellm")
        raise HarnessError(f"report {r.path} is from another matrix (fingerprint {other['fingerprint']}, "
                           f"{reference.path} has {ref['fingerprint']}: other scenarios, scenario contents, clock "
                           "or proxy config)")
    counts = {r.doc["shard"]["count"] for r in reports}
    if len(counts) > 1:
        listed = ", ".join(f"{r.path} is {r.shard}" for r in reports)
        raise HarnessError(f"the reports are of different shard counts: {listed}")
    count = counts.pop()
    seen: dict[int, str] = {}
    for r in reports:
        index = r.doc["shard"]["index"]
        if index in seen:
            raise HarnessError(f"shard {index}/{count} given twice: {seen[index]} and {r.path}")
        seen[index] = r.path
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise HarnessError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing")
    expected = {(path, version) for path in ref["scenarios"] for version in ref["releases"]}
    where: dict[tuple[str, str], str] = {}
    for r in reports:
        for cell in r.doc["cells"]:
            key = (cell["file"], cell["litellm"])
            if key not in expected:
                raise HarnessError(f"report {r.path} has a cell outside its matrix: {_cells_text([key])}")
            if key in where:
                raise HarnessError(f"cell {_cells_text([key])} is in both {where[key]} and {r.path}")
            where[key] = r.path
    absent = expected - set(where)
    if absent:
        raise HarnessError(f"{len(absent)} cells of the matrix are in no report ({_cells_text(absent)}): "
                           "were the shards run by different harness versions?")


def result_from_cell(cell: dict[str, Any], scenario: Scenario) -> ScenarioResult:
    """The runner result a report cell (`report.result_dict`) was written from, already redacted."""
    steps = [
        StepResult(i, s["line"], s["source"], s["step"], StepStatus(s["status"]), s["seconds"], s["message"],
                   served=s.get("served", []), expected=s["expected"], actual=s["actual"], rows=s["rows"])
        for i, s in enumerate(cell["steps"])
    ]
    return ScenarioResult(scenario=scenario, version=cell["litellm"], verdict=Verdict(cell["verdict"]), reason=cell["reason"],
                          steps=steps, seconds=cell["seconds"], environment=cell["environment"],
                          log_tail=cell["proxy_log_tail"], faults=cell.get("faults", []))


def merged_results(reports: list[Report]) -> tuple[list[Scenario], list[ScenarioResult]]:
    """(scenarios in the matrix's order, every cell in report order) of checked shards."""
    scenarios: dict[str, Scenario] = {}
    results = []
    for r in reports:
        for cell in r.doc["cells"]:
            scenario = scenarios.get(cell["file"])
            if scenario is None:
                meta = Metadata(name=cell["scenario"], issue=cell["issue"], affects=cell["affects"])
                scenario = scenarios[cell["file"]] = Scenario(path=cell["file"], meta=meta, proxy=ProxySettings(),
                                                              steps=())
            results.append(result_from_cell(cell, scenario))
    order = [scenarios[p] for p in reports[0].doc["matrix"]["scenarios"] if p in scenarios]
    return order, order_results(results, order)


def merge(paths: list[str], command: str) -> tuple[list[ScenarioResult], dict[str, Any]]:
    """(every cell of the matrix, the meta of its report) from the shards' reports."""
    reports = [read_report(p) for p in paths]
    check_shards(reports)
    reports.sort(key=lambda r: r.doc["shard"]["index"])
    _, results = merged_results(reports)
    first = reports[0].doc
    release_seconds: dict[str, float] = {}
    for r in reports:
        for version, seconds in r.doc.get("release_seconds", {}).items():  # a release split over shards: both parts
            release_seconds[version] = round(release_seconds.get(version, 0.0) + seconds, 1)
    meta = {
        "command": command, "selection": first.get("selection", ""), "note": first.get("note", ""),
        "clock": first.get("clock", ""), "jobs": first.get("jobs", 1),
        "seconds": max(r.doc.get("seconds", 0.0) for r in reports),  # the shards ran side by side
        "release_seconds": release_seconds, "exit_code": exit_code([r.verdict for r in results]),
        "shard": {"index": 1, "count": 1, "cells": len(results),
                  "merged": [{"shard": r.shard, "report": r.path, "command": r.doc.get("command"),
                              "seconds": r.doc.get("seconds"), "exit_code": r.doc.get("exit_code")} for r in reports]},
        "matrix": first["matrix"],
    }
    return results, meta
