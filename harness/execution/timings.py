"""How long each scenario took when it last ran, so the `-j` shares of one release come out even.

Kept in <cache>/timings.json as {scenario file: seconds}, from the last run on any release: a
scenario's cost varies little between releases next to the gap between a one-proxy scenario
(about a second) and a two-replica or Redis one (about ten, measured on 1.108.7). A scenario
never timed gets an estimate from its shape. Reading or writing the file never fails a run.
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
        try:
            loaded = json.loads(self.path.read_text())
            self.seconds = {str(k): float(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        except (OSError, ValueError, TypeError):
            self.seconds = {}

    def weight(self, scenario: Scenario) -> float:
        return self.seconds.get(str(scenario.path), estimate(scenario))

    def record(self, results: Iterable[ScenarioResult]) -> None:
        """Keep the seconds of every cell that ran steps (not refused, not a harness error; a
        cell that took no time measured nothing)."""
        ran = {str(r.scenario.path): round(r.seconds, 2) for r in results
               if r.steps and r.seconds > 0.1 and Verdict(r.verdict) not in (Verdict.ERROR, Verdict.UNINSTALLABLE)}
        if not ran:
            return
        self.seconds.update(ran)
        try:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.seconds, indent=0, sort_keys=True))
            tmp.replace(self.path)  # whole or not at all; another run's write may win, which is harmless
        except OSError:
            pass
