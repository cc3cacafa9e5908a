"""Pruning the release cache: the policy on fake environments (the clock is passed in), and the
held-environment rule with real locks across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.releases import cache
from harness.releases.cache import CachedEnv, plan_prune

DAY = 86400.0
NOW = 1_000_000_000.0  # any fixed instant: nothing here reads the machine's clock
MB = 1024**2


def env(name: str, size_mb: int, days_ago: float, held: bool = False) -> CachedEnv:
    return CachedEnv(Path(f"/cache/envs/litellm-{name}-abc"), name, size_mb * MB, NOW - days_ago * DAY, held)


def names(envs) -> list[str]:
    return [e.version for e in envs]


ENVS = [env("1.60.0", 300, 30), env("1.70.0", 300, 10), env("1.80.0", 300, 3, held=True), env("1.85.0", 300, 1)]


def test_by_age_removes_every_unheld_environment_unused_longer():
    assert names(plan_prune(ENVS, NOW, older_than=7 * DAY)) == ["1.60.0", "1.70.0"]


def test_held_environments_are_never_planned_even_when_oldest():
    envs = [env("1.60.0", 300, 30, held=True), env("1.70.0", 300, 10)]
    assert names(plan_prune(envs, NOW, older_than=DAY, max_size=0)) == ["1.70.0"]


def test_size_cap_removes_the_oldest_unused_first_until_it_fits():
    # 1200 MB total, cap 700: the two oldest go (held 1.80.0 still counts in the total)
    assert names(plan_prune(ENVS, NOW, max_size=700 * MB)) == ["1.60.0", "1.70.0"]
    assert names(plan_prune(ENVS, NOW, max_size=900 * MB)) == ["1.60.0"]
    assert plan_prune(ENVS, NOW, max_size=1200 * MB) == []


def test_age_and_cap_together():
    # 20d by age takes 1.60.0 (900 MB left); the cap then takes the oldest unheld ones left
    assert names(plan_prune(ENVS, NOW, older_than=20 * DAY, max_size=600 * MB)) == ["1.60.0", "1.70.0"]
    assert names(plan_prune(ENVS, NOW, older_than=20 * DAY, max_size=500 * MB)) == ["1.60.0", "1.70.0", "1.85.0"]


def test_nothing_to_do():
    assert plan_prune(ENVS, NOW) == []
    assert plan_prune([], NOW, older_than=0, max_size=0) == []


@pytest.mark.parametrize("text, size", [("20G", 20 * 1024**3), ("500M", 500 * MB), ("1.5K", 1536), ("1024", 1024),
                                        ("2GiB", 2 * 1024**3)])
def test_parse_size(text, size):
    assert cache.parse_size(text) == size


def test_bad_sizes_and_spans_are_one_line_and_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    with pytest.raises(HarnessError):
        cache.parse_size("lots")
    assert main(["cache", "prune", "--max-size", "lots"]) == 2
    assert main(["cache", "prune", "--older-than", "a week"]) == 2
    err_lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 2


def fake_env(envs_root: Path, version: str, mtime: float, size: int = 4096) -> Path:
    root = envs_root / f"litellm-{version}-0123456789ab"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "blob").write_bytes(b"x" * size)
    (root / "harness-release.json").write_text("{}")
    os.utime(root / "harness-release.json", (mtime, mtime))
    return root


HOLDER = """
import sys
from pathlib import Path
from harness.releases import cache
cache.hold(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


def test_an_environment_held_by_another_process_survives_a_prune(tmp_path, monkeypatch):
    envs_root = tmp_path / "envs"
    old = fake_env(envs_root, "1.60.0", NOW - 30 * DAY)
    held = fake_env(envs_root, "1.61.0", NOW - 40 * DAY)  # the oldest, but in use
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(held)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "held"
        listed = {e.version: e for e in cache.list_envs(envs_root)}
        assert listed["1.61.0"].held and not listed["1.60.0"].held
        # probing a free environment leaves its last use alone (no use file is created)
        assert listed["1.60.0"].last_used == pytest.approx(NOW - 30 * DAY)
        removed = cache.prune(envs_root, max_size=0, now=NOW)
        assert names(removed) == ["1.60.0"]
        assert not old.exists() and held.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    # once its holder has exited, it goes too
    assert names(cache.prune(envs_root, max_size=0, now=NOW)) == ["1.61.0"]
    assert not held.exists() and not any(p.name.startswith(".trash-") for p in envs_root.iterdir())
