"""Generate docs/catalogue.md: one row per known budget bug (upstream report), grouped by layer.

The catalogue is every scenario file with an `issue:` link; its layer is the scenario's
subdirectory (scenarios/reset_job/, scenarios/counters/, ...). Each row gives the report, its
title, what breaks (the scenarios' descriptions), the affected range as measured (`affects`),
the first fixed release (from the upper bound of each `affects` range; "not fixed as of <newest
sampled release>" when a range is open-ended) and the bug's status on each sampled release.

Statuses come from JSON reports given on the command line, so the doc never needs a proxy:
`matrix --out` (matrix.json), `check --out` (check.json), or an earlier
benchmarks/results/catalogue.json (it keeps every cell it was made from). A later report wins
for the same (scenario, release). Statuses combine as in `check` (harness/reports/check.py).

    python scripts/catalogue.py --report reports/matrix.json [--report more.json ...]
    python scripts/catalogue.py --report benchmarks/results/catalogue.json --report new/check.json

Rows of the bug family that stay out of the catalogue are kept in docs/catalogue-left-out.yaml
(issue, title, reason) and rendered as the doc's "Left out" section.

Writes docs/catalogue.md and benchmarks/results/catalogue.json. Bad input: one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.reports import check as ck  # noqa: E402
from harness.errors import HarnessError  # noqa: E402

#: known layers first (the order a reader meets them), then any other subdirectory alphabetically
LAYERS = {
    "reset_job": "Reset job: never reset, reset early or twice",
    "counters": "Spend counters and caches after resets and updates",
    "timezone": "Time zones and reset times",
    "concurrency": "Concurrent calls and budget reservations",
    "traffic": "Request traffic: streamed and cancelled calls",
    "endpoints": "Create and update endpoints",
    "auth": "Auth checks: which budgets a request is held to",
    "global": "Proxy-wide budgets",
    "alerts": "Budget alerts (webhook and Slack)",
    "deployments": "Several replicas and Redis",
}
_MARK = {"present": "🐞 present", "absent": "✅ absent", "unsupported": "⏭️ unsupported", "error": "❌ error"}


def first_fixed(affects: str | None, newest: str | None) -> str:
    """The first release outside `affects` above each of its ranges; open-ended: not fixed yet."""
    from packaging.version import Version

    from harness.scenario.model import affects_ranges

    if not affects:
        return "-"
    fixed = []
    for spec_set in affects_ranges(affects):
        uppers = [s for s in spec_set if s.operator in ("<", "<=")]
        if not uppers:
            return f"not fixed as of {newest}" if newest else "not fixed"
        upper = min(uppers, key=lambda s: Version(s.version))
        fixed.append(upper.version if upper.operator == "<" else f"after {upper.version}")
    return ", ".join(fixed)


def read_cells(paths: list[str]) -> dict[tuple[str, str], dict]:
    """(scenario name, release) -> cell, from matrix/check/catalogue JSON reports; later files win."""
    cells: dict[tuple[str, str], dict] = {}
    for text in paths:
        path = Path(text)
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise HarnessError(f"--report {text}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise HarnessError(f"--report {text}: not JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
            raise HarnessError(f"--report {text}: no `cells` list (give a matrix.json, check.json or catalogue.json)")
        for cell in doc["cells"]:
            try:
                name, version, verdict = cell["scenario"], cell["litellm"], cell["verdict"]
                ck.status_of(verdict)
            except (KeyError, TypeError, ValueError):
                raise HarnessError(f"--report {text}: a cell without scenario/litellm/verdict: {str(cell)[:120]}") from None
            cells[(name, version)] = {"scenario": name, "file": cell.get("file"), "litellm": version,
                                      "verdict": verdict, "source": cell.get("source") or _rel(text)}
    return cells


def build(scenarios, cells: dict[tuple[str, str], dict]) -> dict:
    """The catalogue document (catalogue.json), from the catalogue scenarios and the report cells."""
    from packaging.version import Version

    names = {s.name for s in scenarios}
    used = {k: c for k, c in cells.items() if k[0] in names}
    releases = sorted({v for _, v in used}, key=Version)
    newest = releases[-1] if releases else None
    by_issue: dict[str, list] = {}
    for s in scenarios:
        by_issue.setdefault(s.meta.issue, []).append(s)
    bugs = []
    for issue, group in by_issue.items():
        statuses = {}
        for version in releases:
            seen = [ck.status_of(used[(s.name, version)]["verdict"]) for s in group if (s.name, version) in used]
            statuses[version] = ck.combine(seen) if seen else None
        affects = list(dict.fromkeys(s.meta.affects for s in group if s.meta.affects))
        bugs.append({
            "issue": issue, "label": ck.issue_label(issue),
            "title": next((s.meta.title for s in group if s.meta.title), ""),
            "layer": Path(group[0].path).parent.name,  # the scenario's subdirectory
            "scenarios": [{"scenario": s.name, "file": s.path, "description": " ".join(s.meta.description.split()),
                           "affects": s.meta.affects} for s in group],
            "affects": affects,
            "first_fixed": " / ".join(dict.fromkeys(first_fixed(a, newest) for a in affects)) if affects else "-",
            "statuses": statuses,
        })
    order = list(LAYERS)
    bugs.sort(key=lambda b: (order.index(b["layer"]) if b["layer"] in order else len(order), b["layer"]))
    return {"format": 1, "releases": releases, "newest_sampled": newest,
            "reports": sorted({c["source"] for c in used.values()}), "bugs": bugs,
            "cells": list(used.values())}  # each with the report it came from (kept when this file is a --report)


LEFT_OUT = ROOT / "docs" / "catalogue-left-out.yaml"


def read_left_out(path: Path) -> list[dict]:
    """The rows kept out of the catalogue: a YAML list of {issue, title, reason}."""
    import yaml

    try:
        rows = yaml.safe_load(path.read_text()) or []
    except OSError as exc:
        raise HarnessError(f"--left-out {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise HarnessError(f"--left-out {path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(rows, list):
        raise HarnessError(f"--left-out {path}: expected a list of {{issue, title, reason}}")
    for i, row in enumerate(rows, 1):
        if not (isinstance(row, dict) and all(isinstance(row.get(k), str) and row[k].strip()
                                              for k in ("issue", "title", "reason"))):
            raise HarnessError(f"--left-out {path}: entry {i} needs issue, title and reason strings")
    return rows


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(doc: dict, command: str) -> str:
    releases = doc["releases"]
    n_scenarios = sum(len(b["scenarios"]) for b in doc["bugs"])
    lines = [
        "# Catalogue of known budget bugs", "",
        f"<!-- generated by `{command}`; do not edit by hand -->", "",
        f"{len(doc['bugs'])} upstream reports, {n_scenarios} scenarios (every scenario file with an `issue:` link; "
        "scenarios without one are controls). Each row: what breaks (the scenario's description), the range of "
        "releases where its scenario fails as measured (`affects`), the first fixed release derived from that "
        "range, and the bug's status on each sampled release: **present** (an expectation failed: the bug "
        "shows), **absent** (every step passed), **unsupported** (the release cannot run a step), **error** "
        "(the harness could not run it), `-` (not run there). A report shown by several scenarios is present "
        "if any shows it (as `python -m harness check` decides).", "",
        "Sampled releases: " + (", ".join(f"`{v}`" for v in releases) or "none") + "; reports: "
        + (", ".join(f"`{r}`" for r in doc["reports"]) or "none") + " (every cell is kept in "
        "`benchmarks/results/catalogue.json`: give it as the first `--report` to add a scenario's or a "
        "release's verdicts without running the rest again).", "",
        "Is it safe to upgrade to a release? `python -m harness check --litellm V [--from V0]` runs this "
        "catalogue there.", "",
    ]
    layer = None
    for bug in doc["bugs"]:
        if bug["layer"] != layer:
            layer = bug["layer"]
            lines += [f"## {LAYERS.get(layer, layer)} (`scenarios/{layer}/`)", "",
                      "| report | title | what breaks | affects (measured) | first fixed | "
                      + " | ".join(f"`{v}`" for v in releases) + " |",
                      "|---|---|---|---|---|" + "---|" * len(releases)]
        several = len(bug["scenarios"]) > 1
        breaks = "<br>".join((f"`{s['scenario']}`: " if several else "") + _md(s["description"] or "-")
                             + ("" if several else f" (`{s['scenario']}`)") for s in bug["scenarios"])
        affects = ", ".join(f"`{a}`" for a in bug["affects"]) or "-"
        marks = [_MARK.get(bug["statuses"].get(v), "-") for v in releases]
        lines.append(f"| [{bug['label']}]({bug['issue']}) | {_md(bug['title'])} | {breaks} | {affects} | "
                     f"{bug['first_fixed']} | " + " | ".join(marks) + " |")
        nxt = doc["bugs"].index(bug) + 1
        if nxt == len(doc["bugs"]) or doc["bugs"][nxt]["layer"] != layer:
            lines.append("")
    left_out = doc.get("left_out") or []
    if left_out:
        lines += ["## Left out", "",
                  "Rows of the bug family not in the catalogue: did not reproduce as described, need a "
                  "capability the harness lacks, or are licence-gated (`docs/catalogue-left-out.yaml`).", "",
                  "| report | title | reason |", "|---|---|---|"]
        lines += [f"| [{ck.issue_label(r['issue'])}]({r['issue']}) | {_md(r['title'])} | {_md(' '.join(r['reason'].split()))} |"
                  for r in left_out]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="append", default=[], metavar="JSON",
                        help="a matrix.json, check.json or catalogue.json (repeatable; later ones win)")
    parser.add_argument("--catalogue", nargs="+", default=[str(ROOT / ck.DEFAULT_CATALOGUE)], metavar="PATH")
    parser.add_argument("--out", default=str(ROOT / "docs" / "catalogue.md"), metavar="FILE")
    parser.add_argument("--left-out", default=str(LEFT_OUT), metavar="YAML",
                        help="rows kept out of the catalogue, with reasons (default: docs/catalogue-left-out.yaml)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "catalogue.json"), metavar="FILE")
    args = parser.parse_args(argv)
    from harness.scenario import load

    try:
        if not args.report:
            raise HarnessError("give at least one --report (a matrix.json, check.json or catalogue.json)")
        scenarios = [load(p) for p in ck.catalogue_files(args.catalogue)]
        catalogue = ck.catalogue(_relative(s) for s in scenarios)
        doc = build(catalogue, read_cells(args.report))
        doc["left_out"] = read_left_out(Path(args.left_out))
        listed = {b["issue"] for b in doc["bugs"]} & {r["issue"] for r in doc["left_out"]}
        if listed:
            raise HarnessError(f"--left-out {args.left_out}: also in the catalogue: {', '.join(sorted(listed))}")
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python scripts/catalogue.py " + " ".join(f"--report {_rel(r)}" for r in args.report)
    doc["command"] = command
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(markdown(doc, command))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    missing = [b["label"] for b in doc["bugs"] if not any(b["statuses"].values())]
    print(f"{args.out}: {len(doc['bugs'])} reports, releases {', '.join(doc['releases']) or 'none'}"
          + (f"; {len(missing)} without any verdict" if missing else ""))
    return 0


def _rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _relative(scenario):
    """The scenario with its path relative to the repository (the doc and JSON name it so)."""
    return scenario.model_copy(update={"path": _rel(scenario.path)})


if __name__ == "__main__":
    raise SystemExit(main())
