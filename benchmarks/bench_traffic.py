"""Fake-provider call overhead vs mock_response, and streamed calls per second, through one proxy.

    python benchmarks/bench_traffic.py [--version 1.85.0] [--calls 100] [--rounds 3]

Runs one scenario file with `spend` steps of `--calls` sequential calls each: mock, fake provider,
fake provider streamed (alternating, `--rounds` times, on one proxy per provider), and prints the
per-call time of each from the steps' durations in `harness run`'s output. Each `spend` call
includes the harness's settle (the call's follow-up work), as in every scenario. Issue 19's
bar: the fake provider is the default (`proxy.provider`) while it costs under 5 ms per call more
than mock.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEP = re.compile(r"ok\s+\d+: - spend: \{key: k1, requests: \d+(?P<shape>[^}]*)\}\s+\((?P<s>[0-9.]+)s\)")


def scenario(provider: str, calls: int, rounds: int, stream: bool) -> str:
    shape = ", stream: true" if stream else ""
    steps = "".join(f"  - spend: {{key: k1, requests: {calls}{shape}}}\n" for _ in range(rounds))
    return (f"name: bench-traffic-{provider}{'-stream' if stream else ''}\ntitle: benchmark\n"
            f"proxy: {{provider: {provider}}}\nsteps:\n  - create_key: {{name: k1, max_budget: 1000}}\n"
            f"  - spend: {{key: k1, requests: 5{shape}}}\n{steps}")  # the first step warms the proxy up


def per_call_ms(version: str, text: str, calls: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(text)
        proc = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--litellm", version],
                              capture_output=True, text=True, cwd=REPO, timeout=900)
    times = [float(m["s"]) for m in STEP.finditer(proc.stdout)][1:]  # without the warm-up step
    if proc.returncode != 0 or not times:
        print(proc.stdout[-3000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(1)
    return [t * 1000 / calls for t in times]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="1.85.0")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    figures = {}
    for label, provider, stream in (("mock_response", "mock", False), ("fake provider", "fake", False),
                                    ("fake provider, streamed", "fake", True)):
        figures[label] = per_call_ms(args.version, scenario(provider, args.calls, args.rounds, stream), args.calls)
    print(f"litellm {args.version}, {args.calls} sequential calls per step, {args.rounds} steps each")
    for label, ms in figures.items():
        print(f"  {label:25} {statistics.median(ms):7.2f} ms/call (steps: {', '.join(f'{m:.2f}' for m in ms)})")
    extra = statistics.median(figures["fake provider"]) - statistics.median(figures["mock_response"])
    print(f"  fake provider overhead vs mock_response: {extra:+.2f} ms/call (bar for it being the default: < 5 ms)")
    print(f"  streamed calls per second through one proxy: {1000 / statistics.median(figures['fake provider, streamed']):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
