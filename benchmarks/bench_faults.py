"""Figures for harness.faults on an embedded Redis: the relay's cost, and how long faults take.

    python benchmarks/bench_faults.py [--repeat 200]

Prints plain numbers (medians); asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

from harness.faults import Relay  # noqa: E402
from harness.faults.processes import RedisControl  # noqa: E402
from harness.redis import start_redis  # noqa: E402


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    with start_redis("embedded") as server, Relay("127.0.0.1", server.port, protocol="redis").start() as relay:
        direct = server.client()
        via = redis.Redis(host=relay.host, port=relay.port, password=server.password, retry=Retry(NoBackoff(), 0))
        value = b"x" * (1024 * 1024)
        via.set("big", value)
        print(f"PING direct          {timed(direct.ping, args.repeat) * 1000:7.2f} ms")
        print(f"PING via relay       {timed(via.ping, args.repeat) * 1000:7.2f} ms")
        def pipelined():
            pipe = via.pipeline(transaction=False)
            for _ in range(100):
                pipe.incrbyfloat("spend", 0.01)
            pipe.execute()

        print(f"100 pipelined INCRBYFLOAT via relay {timed(pipelined, 20) * 1000:7.2f} ms")
        print(f"GET 1 MiB direct     {timed(lambda: direct.get('big'), 20) * 1000:7.2f} ms")
        print(f"GET 1 MiB via relay  {timed(lambda: via.get('big'), 20) * 1000:7.2f} ms")
        relay.set_mode("latency", latency_ms=50)
        print(f"PING, latency 50 ms  {timed(via.ping, 10) * 1000:7.2f} ms")
        print(f"set_mode round trip  {timed(lambda: relay.set_mode('pass'), 50) * 1000:7.2f} ms")
        control = RedisControl(server)
        for how in ("save", "term", "kill"):
            print(f"restart ({how:4})       {timed(lambda: control.restart(how=how), 5) * 1000:7.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
