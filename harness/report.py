"""Verdicts a person can read and paste into a bug report, with every secret redacted."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from .runner import ScenarioResult, StepResult

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
        for name, row in (step.rows or {}).items():
            out.append(f"  database row of {name}: {_value(row)}")
    if out and result.log_tail:
        tail = result.log_tail.splitlines()[-log_lines:]
        out.append(f"proxy log (last {len(tail)} lines):")
        out.extend("  | " + line for line in tail)
    return redact("\n".join(out), result.secrets)


def verdict_line(result: ScenarioResult) -> str:
    return f"{result.scenario.name} on litellm {result.version}: {result.verdict.upper()} - {result.reason}"


def print_result(console: Console, result: ScenarioResult) -> None:
    style = VERDICT_STYLE.get(result.verdict, "bold")
    console.print(
        f"[{style}]{result.verdict.upper()}[/] {result.scenario.name} on litellm {result.version} "
        f"({result.seconds:.1f}s): {redact(result.reason, result.secrets)}",
        highlight=False,
        markup=True,
    )
    details = failure_details(result)
    if details and result.verdict != "passed":
        console.print(details, highlight=False, markup=False)


def summary_table(results: list[ScenarioResult]) -> Table:
    versions = list(dict.fromkeys(r.version for r in results))
    table = Table(title="verdicts", show_lines=False)
    table.add_column("scenario")
    for version in versions:
        table.add_column(version)
    by_scenario: dict[str, dict[str, ScenarioResult]] = {}
    for r in results:
        by_scenario.setdefault(r.scenario.path, {})[r.version] = r
    for path, cells in by_scenario.items():
        name = next(iter(cells.values())).scenario.name
        row = []
        for version in versions:
            r = cells.get(version)
            row.append(f"[{VERDICT_STYLE.get(r.verdict, '')}]{r.verdict}[/]" if r else "-")
        table.add_row(name, *row)
    return table


def step_dict(step: StepResult) -> dict[str, Any]:
    return {
        "line": step.line,
        "source": step.source,
        "step": step.description,
        "status": step.status,
        "seconds": round(step.seconds, 3),
        "message": step.message,
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
        "proxy_log_tail": result.log_tail,
    }
    return json.loads(redact(json.dumps(data, default=str), result.secrets))
