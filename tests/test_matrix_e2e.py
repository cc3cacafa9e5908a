"""The matrix end to end on real proxies: org_budget_reset.yaml on 1.82.3 and 1.85.0 with -j 2.

Cost with warm release caches: ~15 s (two worker processes, each starting its own embedded
PostgreSQL and one proxy, in parallel).
"""

from __future__ import annotations

import json
import multiprocessing
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.reports import bundle as bundle_mod
from harness import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_matrix_on_real_proxies_in_two_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli.signal, "signal", lambda *a: None)  # keep pytest's own handlers
    known: list[str] = []
    real_write = bundle_mod.write_bundle

    def spy(directory, results, **kw):  # the secrets every cell knew, to scan the files for
        known.extend(s for r in results for s in r.secrets)
        return real_write(directory, results, **kw)

    monkeypatch.setattr(bundle_mod, "write_bundle", spy)
    out, bundle = tmp_path / "reports", tmp_path / "bundle"
    code = cli.main(["matrix", "scenarios/reset_job/org_budget_reset.yaml", "--litellm", "1.82.3", "--litellm", "1.85.0",
                     "-j", "2", "--out", str(out), "--bundle", str(bundle)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert multiprocessing.active_children() == []

    doc = json.loads((out / "matrix.json").read_text())
    cells = {c["litellm"]: c for c in doc["cells"]}
    assert cells["1.82.3"]["verdict"] == "reproduced", cells["1.82.3"]["reason"]
    assert "Organization=" in cells["1.82.3"]["reason"]
    assert cells["1.85.0"]["verdict"] == "passed", cells["1.85.0"]["reason"]
    assert doc["jobs"] == 2 and doc["exit_code"] == 0
    # both releases ran at once: their times add up to more than the wall time
    assert sum(doc["release_seconds"].values()) > doc["seconds"] * 1.3
    for c in cells.values():
        env = c["environment"]
        assert env["prisma"] and env["litellm_proxy_extras"] and env["prisma_engine"] and env["postgres"]

    junit = ET.fromstring((out / "junit.xml").read_bytes())
    assert (junit.get("tests"), junit.get("failures"), junit.get("errors"), junit.get("skipped")) == ("2", "0", "0", "0")
    names = sorted(c.get("name") for c in junit.iter("testcase"))
    assert names == ["litellm==1.82.3", "litellm==1.85.0"]
    md = (out / "matrix.md").read_text()
    assert "| `org_budget_reset` (affects `<1.85.0`) | 🐞 reproduced <sup>1</sup> | ✅ passed |" in md

    # the bundle: rows, steps, and not one secret the run knew
    bdoc = json.loads((bundle / "bundle.json").read_text())
    rows = {c["litellm"]: c["database_rows"] for c in bdoc["cells"]}
    assert rows["1.82.3"]["LiteLLM_OrganizationTable"][0]["spend"] >= 0.5
    assert rows["1.85.0"]["LiteLLM_OrganizationTable"][0]["spend"] == 0
    assert all(s["seconds"] >= 0 for c in bdoc["cells"] for s in c["steps"]) and len(bdoc["cells"][0]["steps"]) == 11
    # a master key and a control token per proxy, a database password per worker's server
    # (and, where the runner lists them, the virtual keys the scenario created)
    assert len(set(known)) >= 6, "expected 2 master keys, 2 control tokens, 2 database passwords"
    assert len({s for s in known if s.startswith("sk-harness-")}) == 2
    files = [p for p in bundle.rglob("*") if p.is_file()] + [p for p in out.iterdir() if p.is_file()]
    assert len(files) >= 7
    for path in files:
        text = path.read_text()
        for secret in set(known):
            assert secret not in text, f"{path} holds a secret of the run"
        assert not re.search(r"\bsk-(?!\[REDACTED\])[A-Za-z0-9_\-]{6,}", text), path
        assert not re.search(r"postgres(?:ql)?://[^:/@\s]+:(?!\[REDACTED\]@)[^@\s]+@", text), path
