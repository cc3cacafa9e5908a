"""Verdicts a person can read and paste into a bug report, with every secret redacted."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable


from ..execution.results import ScenarioResult, StepResult
from ..verdicts import StepStatus

# Virtual keys and master keys (sk-...), and passwords inside connection URLs.
_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@")

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
        if not StepStatus(step.status).problem:
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
