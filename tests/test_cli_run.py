"""The CLI's `run` on real proxies: a proxy that cannot start gives an `error` verdict with its log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BROKEN = """
name: broken_proxy
proxy:
  litellm_settings: {callbacks: ["no_such_module.handler"]}
steps:
  - create_key: {name: k1}
"""


@pytest.mark.slow
def test_proxy_start_failure_is_an_error_verdict_with_the_proxy_log(tmp_path: Path) -> None:
    scenario = tmp_path / "broken_proxy.yaml"
    scenario.write_text(BROKEN)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(scenario), "--litellm", "1.85.0"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ERROR broken_proxy on litellm 1.85.0" in proc.stdout
    assert "proxy exited with code" in proc.stdout and "during start-up; last log lines:" in proc.stdout
    assert "Could not import handler from no_such_module" in proc.stdout
