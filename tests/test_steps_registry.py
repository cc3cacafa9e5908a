"""The step registry: one home per step, generated README table and schema, plugin entry points."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from harness import steps
from harness.errors import HarnessError, ScenarioError
from harness.execution.scenario_run import ScenarioRun
from harness.proxy.control import ProxyControl
from harness.scenario import json_schema, load

ROOT = Path(__file__).resolve().parents[1]
README_TABLE = re.compile(r"<!-- steps-table:begin -->\n(.*?)\n<!-- steps-table:end -->", re.S)


def test_every_builtin_step_lives_in_one_family_module_with_a_doc_and_a_run() -> None:
    seen: dict[str, str] = {}
    for action, cls in steps.builtin().items():
        assert cls.family_name() in steps.FAMILIES
        assert cls.__module__ == f"harness.steps.{cls.family_name()}"
        assert "run" in vars(cls), f"{action} does not say how it runs"
        assert cls.one_line_doc() and "\n" not in cls.one_line_doc()
        assert action not in seen
        seen[action] = cls.__module__
    # the families the issue names all have steps
    assert {cls.family_name() for cls in steps.builtin().values()} == set(steps.FAMILIES)


def test_readme_step_table_is_generated_from_the_registry() -> None:
    match = README_TABLE.search((ROOT / "README.md").read_text())
    assert match, "README.md lacks the <!-- steps-table:begin/end --> markers"
    assert match.group(1) == steps.readme_table(steps.builtin()), (
        "regenerate with: python -m harness schema --update-readme README.md"
    )


def test_published_schema_has_every_builtin_step() -> None:
    published = json.loads((ROOT / "scenarios" / "scenario.schema.json").read_text())
    assert published == json_schema(plugins=False)
    names = {next(iter(v["properties"])) for v in published["properties"]["steps"]["items"]["anyOf"] if "properties" in v}
    assert names == set(steps.builtin())


PLUGIN = '''
from typing import ClassVar
from harness.names import EntityKind, Name
from harness.steps.base import Step


class Ping(Step):
    """Ask the agent for the clock, and note it (a plugin's own step)."""

    action: ClassVar[str] = "ping_clock"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"key": ("key",)}
    key: Name | None = None
    note: str = "pong"

    def run(self, ctx):
        return f"{self.note} at {ctx.target.control.clock().isoformat()}"
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A distribution on sys.path whose entry point adds the `ping_clock` step."""
    (tmp_path / "harness_ping_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "harness_ping_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-ping-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{steps.ENTRY_POINT_GROUP}]\nping = harness_ping_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    steps.registry.cache_clear()
    yield tmp_path
    steps.registry.cache_clear()
    sys.modules.pop("harness_ping_plugin", None)


class _Target:
    control = ProxyControl.of("a", lambda op, body: {"now": "2026-03-02T10:00:00+00:00", "still_running": [],
                                                     "seconds": 0.0})


def test_a_plugin_step_loads_validates_and_runs(plugin: Path) -> None:
    assert "ping_clock" in steps.registry() and "ping_clock" not in steps.builtin()
    assert "ping_clock" in json.dumps(json_schema())
    assert "ping_clock" not in json.dumps(json_schema(plugins=False))
    path = plugin / "s.yaml"
    path.write_text("name: s\nsteps:\n  - ping_clock: {note: hello}\n")
    steps_run, error = ScenarioRun(load(path), _Target(), None).run()
    assert error is None and steps_run[0].status == "passed"
    assert steps_run[0].message == "hello at 2026-03-02T10:00:00+00:00"
    # the loader checks a plugin step's fields and references like a built-in one's
    path.write_text("name: s\nsteps:\n  - ping_clock: {key: k9}\n")
    with pytest.raises(Exception, match=r"s.yaml:3: `key: k9` names no entity"):
        load(path)


def test_a_plugin_redefining_an_action_is_a_one_line_error(plugin: Path) -> None:
    (plugin / "harness_ping_plugin.py").write_text(PLUGIN.replace('"ping_clock"', '"spend"'))
    with pytest.raises(HarnessError, match="action `spend` is already defined by harness.steps.spend"):
        steps.registry()


def test_a_plugin_validator_raising_typeerror_is_a_located_error(plugin: Path) -> None:
    # pydantic only turns a validator's ValueError into a ValidationError: the loader still gives
    # a validator's TypeError (here an unhashable item) its file and line, not a traceback
    (plugin / "harness_ping_plugin.py").write_text(PLUGIN.replace('    note: str = "pong"\n', '''    note: str = "pong"
    tags: list = []

    from pydantic import field_validator

    @field_validator("tags")
    @classmethod
    def _unique(cls, value):
        return sorted(set(value))
'''))
    path = plugin / "s.yaml"
    path.write_text("name: s\nsteps:\n  - run_reset_job\n  - ping_clock:\n      tags: [[1]]\n")
    with pytest.raises(ScenarioError, match=r"^\S+/s.yaml:4: unhashable type: 'list'$"):
        load(path)
