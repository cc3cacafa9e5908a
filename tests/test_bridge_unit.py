"""The bridge's JavaScript unit tests (harness/engine/node/test/*.test.mjs), run by `node --test`.

They import translate.mjs from a built engine directory (ensure_engine's cache, which has
node_modules and a byte-identical copy of translate.mjs), so pytest reports them here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from harness.engine import NODE_DIR, ensure_engine

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")


def test_bridge_translation_unit_tests():
    info = ensure_engine("wasm")
    assert info.query_engine is not None
    built = info.query_engine.parent.parent
    assert (built / "translate.mjs").read_bytes() == (NODE_DIR / "translate.mjs").read_bytes()
    tests = sorted(str(p) for p in (NODE_DIR / "test").glob("*.test.mjs"))
    assert tests
    env = dict(os.environ, BRIDGE_DIR=str(built))
    proc = subprocess.run(["node", "--test", *tests], env=env, capture_output=True, text=True, timeout=120)
    summary = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", proc.stdout, re.M))
    assert proc.returncode == 0 and summary.get("fail") == "0", proc.stdout[-6000:] + proc.stderr[-2000:]
    assert int(summary["pass"]) >= 10, summary
