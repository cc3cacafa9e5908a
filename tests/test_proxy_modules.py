"""A scenario's Python modules (`proxy.modules`): loaded from the file (inline or `{file: ...}`),
part of the settings key, written next to each replica's config and nowhere else (bad files:
tests/data/bad_scenarios/module_*.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.proxy.proxy import settings_key, write_modules
from harness.proxy.settings import ProxySettings
from harness.scenario import load

AUTH = "async def user_api_key_auth(request, api_key):\n    return api_key\n"


def scenario(tmp_path: Path, modules: str) -> Path:
    path = tmp_path / "cases" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"name: s\nproxy:\n  general_settings: {{custom_auth: my_auth.user_api_key_auth}}\n"
                    f"  modules:\n{modules}steps:\n  - run_reset_job\n")
    return path


def test_inline_and_file_modules_carry_their_source(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "auth.py").write_text(AUTH)
    loaded = load(scenario(tmp_path, "    my_auth: {file: ../shared/auth.py}\n    helpers: |\n      X = 1\n"))
    assert loaded.proxy.modules == {"my_auth": AUTH, "helpers": "X = 1\n"}


def test_modules_are_part_of_the_settings_key():
    one, other = ProxySettings(modules={"my_auth": AUTH}), ProxySettings(modules={"my_auth": AUTH + "# v2\n"})
    assert settings_key(one) != settings_key(other) != settings_key(ProxySettings())


def test_modules_are_written_into_the_run_folder_only(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    paths = write_modules(ProxySettings(modules={"my_auth": AUTH, "cb": "handler = None\n"}), run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["cb.py", "my_auth.py"]
    assert all(p.parent == run_dir for p in paths) and (run_dir / "my_auth.py").read_text() == AUTH
    assert list(tmp_path.iterdir()) == [run_dir]


@pytest.mark.parametrize("name", ["a.b", "../x", "x/y", "class", "os", "litellm", "", "é"])
def test_module_names_are_plain_identifiers_that_shadow_nothing(name):
    with pytest.raises(ValidationError):
        ProxySettings(modules={name: "x = 1\n"})


def test_at_most_eight_modules():
    with pytest.raises(ValidationError, match="at most 8"):
        ProxySettings(modules={f"m{i}": "" for i in range(9)})
