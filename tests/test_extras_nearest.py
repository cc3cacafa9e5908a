"""Which migrations build the schema of a release without litellm-proxy-extras (before 1.65.1):
the oldest published extras whose schema passes the release's check (no index, no database)."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from harness.engine import EngineInfo
from harness.errors import SchemaDrift
from harness.releases import extras
from harness.releases.envs import ReleaseEnv

ROOT = Path("/cache/envs/litellm-1.60.0-abc")
ENGINE = EngineInfo("wasm-bridge", None, None, "test engine")


def release(extras_version: str = "") -> ReleaseEnv:
    sp = ROOT / "lib" / "site-packages"
    return ReleaseEnv("1.60.0", ROOT, ROOT / "bin" / "python", ROOT / "bin", sp, sp / "litellm",
                      sp / "litellm" / "proxy" / "schema.prisma", sp / "litellm_proxy_extras" / "migrations",
                      extras_version, "0.11.0", ENGINE, marker={"declared": {}})


@pytest.fixture()
def published(monkeypatch):
    adopted = []
    monkeypatch.setattr(extras.index, "published_versions",
                        lambda package: [Version(v) for v in ("0.1.0", "0.1.1", "0.1.2", "0.2.0")])
    monkeypatch.setattr(extras, "migrations_of", lambda v: Path(f"/extras/{v}/migrations"))
    monkeypatch.setattr(extras, "adopt", lambda rel, v, rule: adopted.append((str(v), rule)) or rel)
    return adopted


def test_the_oldest_extras_that_build_the_schema_are_adopted(published):
    tried = []

    def build(migrations: Path) -> str:
        tried.append(migrations.parent.name)
        if migrations.parent.name in ("0.1.0", "0.1.1"):
            raise SchemaDrift("schema drift: column LiteLLM_X.y missing")
        return "lh_tpl_x"

    _, template = extras.matching_template(release(), build)
    assert template == "lh_tpl_x"
    assert tried == ["0.1.0", "0.1.1", "0.1.2"]
    assert published == [("0.1.2", "nearest-migrations (the release ships none)")]


def test_no_extras_fits_is_one_drift_line_with_the_last_reason(published):
    def build(migrations: Path) -> str:
        raise SchemaDrift(f"schema drift: table T missing in {migrations.parent.name}")

    with pytest.raises(SchemaDrift) as err:
        extras.matching_template(release(), build)
    message = str(err.value)
    assert "ships no migrations" in message and "table T missing in 0.2.0" in message and "\n" not in message
    assert published == []


def test_a_release_with_extras_uses_its_own_migrations_first(published):
    own = release("0.1.1")
    assert extras.matching_template(own, lambda migrations: str(migrations)) == (own, str(own.migrations_dir))
    assert published == []
