"""`explore` figures: examples per minute on a warm release, and where an example's time goes
(figures printed, nothing asserted on time).

    python benchmarks/bench_explore.py [--litellm 1.82.3] [--examples 60] [--seed 1]

Draws `--examples` examples from explore's own strategy (the same seed draws the same ones),
builds each into its scenario file and runs it on one deployment of the release through the
engine, as `explore` does, without shrinking (so the rate is the drawing rate; a real run also
spends examples on shrinking each finding). Prints examples/min, steps per example, and the
time split: building and loading the file, the session between examples (database reset, proxy
reuse), and the steps by action. Target (issue 18): 30 examples/min of 5-15 actions on 2 cores.
The machine's load matters: compare figures taken in one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from harness.commands.explore import KINDS, strategies  # noqa: E402
from harness.execution.engine import Engine  # noqa: E402
from harness.model import ModelOptions  # noqa: E402
from harness.scenario import loader  # noqa: E402
from harness.scenario.generate import build, render  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", default="1.82.3")
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    drawn: list = []

    @seed(args.seed)
    @settings(max_examples=args.examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategies(set(KINDS)))
    def draw(example):
        drawn.append(example)

    draw()
    by_action: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    build_seconds = session_seconds = 0.0
    steps = actions = failing = 0
    with tempfile.TemporaryDirectory() as tmp, Engine([]) as engine:
        started_up = time.perf_counter()
        # the first example starts the proxy: timed apart, it is not the steady rate
        warm = engine.run_cell(_load(drawn[0], Path(tmp))[0], args.litellm)
        startup = time.perf_counter() - started_up
        started = time.perf_counter()
        for example in drawn[1:]:
            t0 = time.perf_counter()
            scenario, n_actions = _load(example, Path(tmp))
            build_seconds += time.perf_counter() - t0
            t1 = time.perf_counter()
            result = engine.run_cell(scenario, args.litellm)
            cell = time.perf_counter() - t1
            stepped = sum(s.seconds for s in result.steps)
            session_seconds += cell - stepped
            for placed, step in zip(scenario.steps, result.steps):
                by_action[placed.step.action] += step.seconds
                counts[placed.step.action] += 1
            steps += len(result.steps)
            actions += n_actions
            failing += result.verdict.failing
        seconds = time.perf_counter() - started
    n = len(drawn) - 1
    print(f"litellm {args.litellm}, seed {args.seed}: first example (proxy start) {startup:.1f}s, verdict {warm.verdict.value}")
    print(f"{n} examples in {seconds:.1f}s: {n / seconds * 60:.1f} examples/min; {actions / n:.1f} actions and "
          f"{steps / n:.1f} steps per example; {failing} failing")
    print(f"  build+load files {build_seconds:.1f}s ({build_seconds / seconds:.0%}), session between examples "
          f"{session_seconds:.1f}s ({session_seconds / seconds:.0%})")
    for action, spent in sorted(by_action.items(), key=lambda kv: -kv[1]):
        print(f"  {action:20s} {spent:7.1f}s ({spent / seconds:4.0%})  {counts[action]:5d} runs, {spent / counts[action] * 1000:6.1f} ms each")


def _load(example, tmp: Path):
    topology, actions, start = example
    scenario, lines = build(topology, actions, start, name="bench_explore", options=ModelOptions())
    path = tmp / "example.yaml"
    path.write_text(render(scenario, lines))
    return loader.load(path), len(actions)


if __name__ == "__main__":
    main()
