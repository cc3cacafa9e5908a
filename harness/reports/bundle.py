"""A directory to attach to a bug report: what ran, where, what happened, with secrets redacted.

    DIR/README.md                  read me first / paste into the issue: verdicts, environment,
                                   every step with its timing, failures, database rows, log tails
    DIR/bundle.json                the same, structured
    DIR/scenarios/<file>           each scenario file, verbatim
    DIR/logs/<scenario>@<release>.log   the proxy log tail of each cell

Everything written goes through `report.redact` with every secret the run knew (master keys,
control tokens, database passwords: `ScenarioResult.secrets`) plus the generic patterns
(`sk-...`, passwords in `postgresql://` URLs). After writing, every file is scanned again for
those secrets and patterns; a file that still holds one is deleted and the bundle is refused
(`HarnessError`).
"""

from __future__ import annotations

import json
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import HarnessError
from ..execution.hooks import Hooks
from ..execution.results import ScenarioResult
from .matrix import _all_secrets, _versions, matrix_markdown
from .text import failure_details, redact, result_dict

LEAK_PATTERNS = (
    re.compile(r"\bsk-(?!\[REDACTED\])[A-Za-z0-9_\-]{6,}"),
    re.compile(r"postgres(?:ql)?://[^:/@\s]+:(?!\[REDACTED\]@)[^@\s]+@"),
)


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: list[Path]


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        proc = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() + (" (modified)" if dirty.stdout.strip() else "")


def _node_version() -> str | None:
    try:
        proc = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def harness_environment() -> dict[str, Any]:
    return {
        "harness": __version__,
        "harness_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "node": _node_version(),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _cell_name(r: ScenarioResult) -> str:
    return f"{_slug(r.scenario.name)}@{_slug(r.version)}"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, sort_keys=False)


def _readme(results: list[ScenarioResult], command: str | None, env: dict, title: str,
            note: str, extra_md: str) -> str:
    out = [f"# {title}", ""]
    out.append(f"Written {datetime.now(timezone.utc).isoformat(timespec='seconds')} by litellm-budget-harness "
               f"{env['harness']}" + (f" (commit {env['harness_commit']})" if env.get("harness_commit") else "") + ".")
    out.append("")
    if command:
        out += ["Command:", "", "```sh", command, "```", ""]
    out += ["## Harness environment", ""]
    out += [f"- {k}: {v}" for k, v in env.items() if v]
    out.append("")
    if extra_md:
        out += [extra_md, ""]
    out.append(matrix_markdown(results, title="Verdicts", note=note))
    out.append("")
    out += ["## Releases", ""]
    for version in _versions(results):
        r = next(x for x in results if x.version == version)
        envs = ", ".join(f"{k}: {v}" for k, v in r.environment.items())
        out.append(f"- litellm {version}: {envs}")
    out.append("")
    for r in results:
        out += [f"## {r.scenario.name} on litellm {r.version}: {r.verdict}", ""]
        out.append(f"- file: `{r.scenario.path}` (copied to `scenarios/{Path(r.scenario.path).name}`)")
        if r.scenario.meta.issue:
            out.append(f"- issue: {r.scenario.meta.issue}")
        if r.scenario.meta.affects:
            out.append(f"- affects: `{r.scenario.meta.affects}`")
        out.append(f"- verdict: **{r.verdict}** - {_md(r.reason)}")
        out.append(f"- time: {r.seconds:.2f}s")
        out.append(f"- reproduce: `python -m harness run {shlex.quote(r.scenario.path)} --litellm {r.version}`")
        out.append("")
        if r.steps:
            out += ["| line | step | status | seconds | detail |", "|---:|---|---|---:|---|"]
            for s in r.steps:
                out.append(f"| {s.line} | `{_md(s.source.lstrip('- ').strip())}` | {s.status} | {s.seconds:.3f} | {_md(s.message)[:300]} |")
            out.append("")
        details = failure_details(replace(r, log_tail=""))  # the log tail has its own section
        if details and r.verdict != "passed":
            out += ["Failure details:", "", "```text", details.replace("```", "'''"), "```", ""]
        cell_rows = r.database_rows
        if cell_rows:
            out += ["<details><summary>Database rows after the scenario</summary>", "", "```json", _json(cell_rows), "```",
                    "", "</details>", ""]
        if r.log_tail:
            out += [f"<details><summary>Proxy log tail (`logs/{_cell_name(r)}.log`)</summary>", "", "```text",
                    r.log_tail.replace("```", "'''"), "```", "", "</details>", ""]
    return "\n".join(out)


def write_bundle(
    directory: str | Path,
    results: list[ScenarioResult],
    *,
    command: str | None = None,
    title: str = "LiteLLM budget harness report",
    note: str = "",
    extra: dict[str, Any] | None = None,
    extra_md: str = "",
    extra_secrets: list[str] | tuple[str, ...] = (),
) -> Bundle:
    """Write the bundle for ``results`` into ``directory`` (created; files of an earlier bundle replaced)."""
    if not results:
        raise HarnessError("nothing to bundle: no scenario ran")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    secrets = sorted({*_all_secrets(results), *(s for s in extra_secrets if s)}, key=len, reverse=True)
    env = harness_environment()
    written: list[Path] = []

    def put(rel: str, text: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact(text, secrets), encoding="utf-8")
        written.append(path)

    for path in dict.fromkeys(r.scenario.path for r in results):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            text = f"# could not read {path}: {exc}\n"
        put(f"scenarios/{Path(path).name}", text)
    for r in results:
        if r.log_tail:
            put(f"logs/{_cell_name(r)}.log", r.log_tail + "\n")
    cells = []
    for r in results:
        cell = result_dict(r)
        cell["database_rows"] = r.database_rows
        cells.append(cell)
    doc = {
        "format": 1,
        "title": title,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "harness_environment": env,
        "releases": _versions(results),
        "selection": note,
        **(extra or {}),
        "cells": cells,
    }
    put("bundle.json", _json(doc) + "\n")
    put("README.md", _readme(results, command, env, title, note, extra_md) + "\n")

    leaks = scan_for_secrets(written, secrets)
    if leaks:
        for path in {p for p, _ in leaks}:
            path.unlink(missing_ok=True)
        where = ", ".join(sorted({f"{p.name} ({what})" for p, what in leaks}))
        raise HarnessError(f"the bundle in {root} still held a secret after redaction; removed: {where}")
    return Bundle(root, written)


def scan_for_secrets(files: list[Path], secrets: list[str] | tuple[str, ...]) -> list[tuple[Path, str]]:
    """(file, what) for every known secret or key/URL-password pattern found in ``files``.

    ``what`` names the kind of leak (never the secret itself).
    """
    found: list[tuple[Path, str]] = []
    for path in files:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for i, secret in enumerate(s for s in secrets if s):
            if secret in text:
                found.append((Path(path), f"known secret #{i + 1}"))
        for pattern in LEAK_PATTERNS:
            if pattern.search(text):
                found.append((Path(path), f"pattern {pattern.pattern[:24]}..."))
    return found


class BundleWriter(Hooks):
    """Asks the engine for each scenario's database rows, and writes the bundle after the run
    (`bisect`, which runs releases one at a time, calls `write` itself)."""

    wants_rows = True

    def __init__(self, directory: str | Path, command: str, say, title: str = "LiteLLM budget harness report"):
        self.directory, self.command, self.say, self.title = directory, command, say, title

    def after_run(self, run) -> None:
        self.write(run.results, note=run.note)

    def write(self, results: list[ScenarioResult], **kwargs: Any) -> Bundle:
        bundle = write_bundle(self.directory, results, command=self.command, title=kwargs.pop("title", self.title),
                              **kwargs)
        self.say(f"bug-report bundle written to {bundle.path}/ ({len(bundle.files)} files)")
        return bundle
