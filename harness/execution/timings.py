"""How long each scenario took when it last ran, so the `-j` shares of one release come out even.

Kept in <cache>/timings.json as {"<release> <scenario file>": seconds} and {scenario file:
seconds} (its last run on any release). A release's own figure comes first: one scenario's cost
can differ by tens of seconds between releases (an alert that never comes is waited for in full,
20 s on 1.85.0, none on 1.108.7); else the last figure from any release; a scenario never timed
gets an estimate from its shape. Runs of other checkouts share the file: a write merges into what
is there. Reading or writing the file never fails a run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ..scenario.model import Scenario
from ..settings import cache_dir
from ..verdicts import Verdict
from .results import ScenarioResult

#: estimates for a scenario never timed (check --litellm 1.108.7, 46 cells: one-proxy scenarios
#: averaged 1.2 s, those with replicas or Redis 10 s)
ONE_PROXY_S = 1.5
DEPLOYMENT_S = 10.0


def estimate(scenario: Scenario) -> float:
    d = scenario.deployment
    return DEPLOYMENT_S if len(d.replicas) > 1 or d.redis != "none" else ONE_PROXY_S


class Timings:
    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "timings.json"
        self.seconds = self._read()

    def _read(self) -> dict[str, float]:
        try:
            loaded = json.loads(self.path.read_text())
            return {str(k): float(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        except (OSError, ValueError, TypeError):
            return {}

    def weight(self, scenario: Scenario, version: str | None = None) -> float:
        """`scenario`'s expected seconds on `version`: its last run there, else on any release,
        else the estimate."""
        path = str(scenario.path)
        mine = self.seconds.get(f"{version} {path}") if version is not None else None
        return mine if mine is not None else self.seconds.get(path, estimate(scenario))

    def record(self, results: Iterable[ScenarioResult]) -> None:
        """Keep the seconds of every cell that ran steps (not refused, not a harness error; a
        cell that took no time measured nothing)."""
        ran: dict[str, float] = {}
        for r in results:
            if r.steps and r.seconds > 0.1 and Verdict(r.verdict) not in (Verdict.ERROR, Verdict.UNINSTALLABLE):
                ran[str(r.scenario.path)] = ran[f"{r.version} {r.scenario.path}"] = round(r.seconds, 2)
        if not ran:
            return
        self.seconds = {**self._read(), **ran}  # what other runs wrote since this one read the file stays
        try:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.seconds, indent=0, sort_keys=True))
            tmp.replace(self.path)  # whole or not at all; another run's write may win, which is harmless
        except OSError:
            pass
