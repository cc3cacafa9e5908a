"""Generate docs/releases.md: which LiteLLM releases the harness drives, and what they give.

For each release (default: the first and last patch of every minor line from 1.60 to 1.108.7,
the newest that installs here) it runs the seed scenario and the key, team and user controls
with `python -m harness matrix ... -j 1`, twice: cold (its environment is built first, in the
script's own cache directory) and warm (everything cached). Results are kept in a JSON file
after every release, so an interrupted run resumes where it stopped, and the table is
rewritten each time. Releases are taken in a spread order (both ends, the middle, the
quarters, ...) so a partial run still covers the whole range.

    python scripts/support_table.py                       # the default range, resumable
    python scripts/support_table.py --litellm 1.65.1 --litellm 1.81.0
    python scripts/support_table.py --render-only         # rewrite the table from the results

Bad input: one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = "scenarios/reset_job/org_budget_reset.yaml"
CONTROLS = ["scenarios/reset_job/key_budget_reset.yaml", "scenarios/reset_job/team_budget_reset.yaml", "scenarios/reset_job/user_budget_reset.yaml"]
COLUMNS = {"org_budget_reset": "seed: org (#25495)", "key_budget_reset": "key", "team_budget_reset": "team",
           "user_budget_reset": "user"}
DEFAULT_RANGE = ">=1.60,<=1.108.7"
EARNED = {"passed", "reproduced"}
#: what the verdicts below mean, from reading the releases' code and upstream issues
FINDINGS = """What the non-passing cells are (checked in the releases' code and upstream issues):

- **seed before 1.81**: `reproduced`, but not at the reset. Up to 1.78 the organization's
  spend stays 0 (line 19; on 1.65.1 the key's row has no `organization_id` although
  `/key/generate` was given one); on 1.79-1.80 spend is recorded but never enforced (line 20):
  `_organization_max_budget_check` arrives in 1.81.0. From 1.81 to 1.84 it fails at the reset
  (line 28), which is #25495 itself; fixed in 1.85.0.
- **key/team/user `regression` from 1.61 to 1.63.0**: a real LiteLLM bug: `ResetBudgetJob`
  logs `Failed to reset 1 keys: ... "error": "Returned None without exception"` (an
  `isinstance` check against LiteLLM's pydantic type fails on the Prisma rows), so no budget
  resets: upstream #8364. 1.60.9 and 1.63.14 pass.
- **`uninstallable`**: no wheel on the index (1.74.15.post2), a pinned dependency the index
  does not have (1.103.11, 1.104.9), or a proxy that does not import even with dependencies as
  of its release day: 1.68.2 (`No module named 'enterprise'`, upstream #10349/#10373).
- 1.95.0-1.99.x import `fastapi.dependencies.utils.get_flat_dependant`, which fastapi 0.140.7
  removed (the newest fastapi on their release days already lacks it): they are installed with
  the measured cap `fastapi<0.140.7` (`DEPENDENCY_CAPS` in harness/releases/policy.py).
- Releases before 1.65.1 ship no migrations: their database comes from the oldest
  `litellm-proxy-extras` (0.1.0) that builds their `schema.prisma` (column "migrations")."""


def spread(items: list) -> list:
    """Both ends first, then the middle, then the quarters...: any prefix covers the whole list."""
    if len(items) <= 2:
        return list(items)
    order, seen = [0, len(items) - 1], {0, len(items) - 1}
    parts = 2
    while len(order) < len(items):
        for k in range(1, parts, 2):
            i = round(k * (len(items) - 1) / parts)
            if i not in seen:
                seen.add(i)
                order.append(i)
        parts *= 2
        if parts > 4 * len(items):
            order += [i for i in range(len(items)) if i not in seen]
    return [items[i] for i in order]


def run_once(version: str, env: dict) -> tuple[float, dict | None, str]:
    """(seconds, matrix.json or None, last output line) of one matrix run of one release."""
    with tempfile.TemporaryDirectory(prefix="lh-table-") as out:
        cmd = [sys.executable, "-m", "harness", "matrix", SEED, *CONTROLS, "--litellm", version, "-j", "1",
               "--out", out]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - started
        doc_path = Path(out) / "matrix.json"
        doc = json.loads(doc_path.read_text()) if doc_path.exists() else None
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        return seconds, doc, lines[-1] if lines else f"exit {proc.returncode}"


def measure(version: str, env: dict, warm: bool) -> dict:
    cold_s, doc, last = run_once(version, env)
    entry: dict = {"version": version, "cold_s": round(cold_s, 1), "warm_s": None, "cells": {}}
    if doc is None:
        entry["error"] = last
        return entry
    for cell in doc["cells"]:
        entry["cells"][cell["scenario"]] = {"verdict": cell["verdict"], "reason": cell["reason"][:300]}
    entry["extras"] = next((c["environment"].get("litellm_proxy_extras") for c in doc["cells"]
                            if c.get("environment", {}).get("litellm_proxy_extras")), "")
    if warm and any(c["verdict"] != "uninstallable" for c in doc["cells"]):
        entry["warm_s"] = round(run_once(version, env)[0], 1)
    return entry


def works(entry: dict) -> bool:
    cells = entry.get("cells", {})
    return all(cells.get(name, {}).get("verdict") in EARNED for name in ("org_budget_reset", "key_budget_reset",
                                                                          "team_budget_reset")) \
        and cells.get("user_budget_reset", {}).get("verdict") in EARNED | {"unsupported"}


def render(results: dict, planned: list[str], note: str) -> str:
    from packaging.version import Version

    done = sorted(results.values(), key=lambda e: Version(e["version"]))
    working = [e["version"] for e in done if works(e)]
    missing = [v for v in planned if v not in results]
    errors_from_1651 = [f"{e['version']} {name}" for e in done if Version(e["version"]) >= Version("1.65.1")
                        for name, c in e.get("cells", {}).items() if c["verdict"] == "error"]
    uninstallable = [e["version"] for e in done
                     if any(c["verdict"] == "uninstallable" for c in e.get("cells", {}).values())]
    lines = [
        "# Releases the harness supports",
        "",
        "Generated by `scripts/support_table.py` (do not edit by hand). Each release ran the seed scenario",
        "(`org_budget_reset.yaml`, upstream #25495, `affects: <1.85.0`: `reproduced` is the expected verdict",
        "before 1.85.0) and the key, team and user controls, with `python -m harness matrix ... -j 1` on an",
        "embedded PostgreSQL: **cold** includes building the release's environment (uv's download cache",
        "was warm), **warm** is the same run again with everything cached. 2 shared cores: times are",
        "indicative.",
        "",
        f"- Selection: {note}.",
        f"- Ran {len(done)} of {len(planned)} planned releases"
        + (f"; not run (time): {', '.join(missing)}." if missing else "."),
        f"- Oldest release that works (seed earned its verdict, key and team passed, user passed or "
        f"unsupported): **{working[0] if working else 'none'}**"
        + (f"; {len(working)} of {len(done)} run releases work." if done else "."),
        f"- From 1.65.1 on, cells with `error`: {', '.join(errors_from_1651) or 'none'}; releases that do not install "
        f"(or whose proxy does not import, also with dependencies as of its release day): "
        f"{', '.join(uninstallable) or 'none'}.",
        "",
        FINDINGS,
        "",
        "| release | " + " | ".join(COLUMNS.values()) + " | migrations (extras) | cold s | warm s |",
        "|---" * (len(COLUMNS) + 4) + "|",
    ]
    for e in done:
        cells = [e.get("cells", {}).get(name, {}).get("verdict", "-") for name in COLUMNS]
        if e.get("error"):
            cells = [f"harness failed: {e['error'][:80]}"] + ["-"] * (len(COLUMNS) - 1)
        warm = "-" if e.get("warm_s") is None else f"{e['warm_s']:.0f}"
        lines.append(f"| {e['version']} | " + " | ".join(cells) + f" | {e.get('extras') or '-'} | "
                     f"{e['cold_s']:.0f} | {warm} |")
    reasons = [(e["version"], COLUMNS[name], c["verdict"], c["reason"]) for e in done
               for name, c in e.get("cells", {}).items() if c["verdict"] not in ("passed",)]
    if reasons:
        lines += ["", "## Why a cell is not `passed`", ""]
        lines += [f"- {v} {col}: `{verdict}`: {reason}" for v, col, verdict, reason in reasons]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--range", dest="range_spec", default=DEFAULT_RANGE)
    parser.add_argument("--sample", default="minor-ends", choices=("all", "minor-ends"))
    parser.add_argument("--litellm", action="append", default=[], metavar="V", help="these releases instead of --range")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "releases.json"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "releases.md"))
    parser.add_argument("--cache-dir", default=os.environ.get("HARNESS_CACHE_DIR"),
                        help="release cache for the runs (default: the harness's); a private one makes cold runs cold")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm re-run")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)

    from harness.errors import HarnessError
    from harness.execution.plan import select_releases

    from harness.releases.index import parse_version

    try:
        explicit = [str(parse_version(v)) for v in args.litellm]
        selection = select_releases(explicit, None if explicit else args.range_spec, sample=args.sample)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    note = selection.note
    planned = selection.versions
    results_path = Path(args.results)
    results: dict = json.loads(results_path.read_text()) if results_path.exists() else {}
    results = {v: e for v, e in results.get("releases", {}).items()} if results else {}
    out = Path(args.out)

    def save() -> None:
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps({"note": note, "planned": planned, "releases": results}, indent=1) + "\n")
        out.write_text(render(results, planned, note))

    if not args.render_only:
        env = dict(os.environ)
        if args.cache_dir:
            env["HARNESS_CACHE_DIR"] = args.cache_dir
        for version in spread(planned):
            if version in results:
                continue
            started = datetime.now(timezone.utc).strftime("%H:%M:%S")
            print(f"{started} litellm {version} ...", flush=True)
            results[version] = measure(version, env, warm=not args.no_warm)
            e = results[version]
            print(f"  {' '.join(c['verdict'] for c in e['cells'].values()) or e.get('error')} "
                  f"(cold {e['cold_s']}s, warm {e['warm_s']}s)", flush=True)
            save()
    save()
    print(f"wrote {out} ({len(results)} releases)")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130)
