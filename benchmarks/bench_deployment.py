"""Deployment start-up: 1, 2 and 3 replicas forked from one zygote, against one plain proxy.

    python benchmarks/bench_deployment.py [--version 1.85.0] [--rounds 1]

For N = 1, 2, 3 replicas of one release on one database:
  cold  = a new zygote (LiteLLM imported once) + N forks started in parallel, until every
          replica's agent answers;
  warm  = N forks from the zygote of the cold run, already imported (a second deployment of the
          release, or a replica restarted after a fault).
And for comparison one proxy without a zygote: `python agent.py` with HARNESS_ZYGOTE unset
(imports LiteLLM itself, as before the zygote). Target (2 cores): 3 replicas cold within 1.3x of
one. Memory per replica: the agent's peak RSS (a fork counts the pages it shares with the
zygote, so this overstates), and its PSS (shared pages split among the processes sharing them)
from /proc/PID/smaps_rollup, plus the Prisma engine child's peak. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.proxy.fleet import Fleet  # noqa: E402
from harness.proxy.proxy import base_env, proxy_config  # noqa: E402
from harness.services.processes import free_port  # noqa: E402
from harness.proxy.zygote import AGENT, Zygote  # noqa: E402
from harness.proxy.settings import Deployment, ProxySettings  # noqa: E402

NAMES = ["a", "b", "c"]


def pss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def memory(fleet: Fleet) -> list[str]:
    out = []
    for name, replica in fleet.replicas.items():
        info = replica.control.info()
        engine = ", ".join(f"{k} {v:.0f}" for k, v in info.get("children_peak_rss_mb", {}).items()) or "none"
        pss = pss_mb(replica.pid)
        pss_text = f"{pss:.0f} MB" if pss is not None else "n/a"
        out.append(f"replica {name}: peak RSS {info['peak_rss_mb']:.0f} MB, PSS now {pss_text}; engine peak MB: {engine}")
    return out


def deployment(zygote: Zygote, url: str, n: int, run_dir: Path) -> Fleet:
    return Fleet.build(zygote, url, Deployment(replicas=NAMES[:n]), ProxySettings(), run_dir)


def cold_and_warm(release, url: str, n: int, work: Path) -> tuple[float, float, float, list[float], list[str]]:
    """(cold s, of which import s, warm s, warm per-replica s, memory lines) for n replicas."""
    zygote = Zygote(release, base_env(release), work / f"z{n}")
    t0 = time.perf_counter()
    zygote.start(timeout=300)
    imported = time.perf_counter() - t0
    fleet = deployment(zygote, url, n, work / f"cold{n}")
    try:
        fleet.start(timeout=300)
        cold = time.perf_counter() - t0
        mem = memory(fleet)
    finally:
        fleet.stop()
    fleet = deployment(zygote, url, n, work / f"warm{n}")
    try:
        t1 = time.perf_counter()
        each = fleet.start(timeout=300)
        warm = time.perf_counter() - t1
    finally:
        fleet.stop()
        zygote.stop()
    return cold, imported, warm, each, mem


def plain_proxy(release, url: str, work: Path) -> tuple[float, float, dict]:
    """One `python agent.py` without a zygote: (start s, peak RSS MB, engine peaks)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "proxy_config.yaml"
    config.write_text(yaml.safe_dump(proxy_config(ProxySettings()), sort_keys=False))
    port, token = free_port(), secrets.token_urlsafe(16)
    env = {**base_env(release), "DATABASE_URL": url, "LITELLM_MASTER_KEY": "sk-bench-" + secrets.token_urlsafe(16),
           "CONFIG_FILE_PATH": str(config), "HARNESS_PROXY_PORT": str(port), "HARNESS_CONTROL_TOKEN": token}
    env.pop("HARNESS_ZYGOTE", None)
    with open(work / "proxy.log", "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(release.python), str(AGENT)], env=env, cwd=work, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the plain proxy exited with {proc.returncode}; log: {work / 'proxy.log'}")
            try:
                resp = requests.post(f"http://127.0.0.1:{port}/__harness/info", json={},
                                     headers={"X-Harness-Token": token}, timeout=2)
                if resp.ok:
                    took = time.perf_counter() - t0
                    info = resp.json()
                    return took, info["peak_rss_mb"], info.get("children_peak_rss_mb", {})
            except requests.RequestException:
                pass
            if time.perf_counter() - t0 > 300:
                raise SystemExit("the plain proxy did not answer within 300 s")
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", default="1.85.0")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()

    from harness.db import clone, ensure_template, start_server
    from harness.releases import ensure_release
    from harness.releases.extras import matching_template

    release = ensure_release(args.version)
    with start_server("auto") as server, tempfile.TemporaryDirectory(prefix="lh-bench-deploy-") as tmp:
        release, template = matching_template(
            release, lambda migrations: ensure_template(server, migrations, release.schema_prisma))
        database = clone(server, template, label="bench")
        work = Path(tmp)
        try:
            rows: dict[int, list] = {n: [] for n in (1, 2, 3)}
            plain: list[tuple[float, float, dict]] = []
            for r in range(args.rounds):
                plain.append(plain_proxy(release, database.url, work / f"plain{r}"))
                for n in (1, 2, 3):
                    rows[n].append(cold_and_warm(release, database.url, n, work / f"r{r}"))
        finally:
            database.drop()

    med = statistics.median
    print(f"litellm {args.version}, PostgreSQL {server.kind} {server.version}, {os.cpu_count()} CPUs, "
          f"{args.rounds} round(s), medians")
    p_start = med(p[0] for p in plain)
    print(f"  one proxy without zygote (python agent.py)  start {p_start:6.2f} s   peak RSS {plain[0][1]:.0f} MB; "
          f"engine peak MB: {', '.join(f'{k} {v:.0f}' for k, v in plain[0][2].items()) or 'none'}")
    cold = {n: med(x[0] for x in rows[n]) for n in rows}
    for n in (1, 2, 3):
        imported, warm = med(x[1] for x in rows[n]), med(x[2] for x in rows[n])
        each = rows[n][-1][3]
        print(f"  {n} replica(s)  cold {cold[n]:6.2f} s (import {imported:5.2f} s + forks {cold[n] - imported:5.2f} s)"
              f"   warm (forks only) {warm:5.2f} s   per replica {', '.join(f'{s:.2f}' for s in each)} s")
        for line in rows[n][-1][4]:
            print(f"      {line}")
    print(f"  3 replicas / 1 replica (cold)   {cold[3] / cold[1]:.2f}x   (target <= 1.3x)")
    # the import's time varies run to run far more than the forks' (a shared 2-core machine):
    # the same ratio with every run's import replaced by the median import of all of them
    imports = med(x[1] for n in rows for x in rows[n])
    forks = {n: med(x[0] - x[1] for x in rows[n]) for n in rows}
    print(f"  3 replicas / 1 replica, median import {imports:.2f} s for both   "
          f"{(imports + forks[3]) / (imports + forks[1]):.2f}x")
    print(f"  3 replicas cold / one plain proxy   {cold[3] / p_start:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
