"""`affects`: a PEP 440 range, or several joined by ` || ` (ranges on more than one release line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.scenario import load
from harness.scenario.model import Metadata, ProxySettings, Scenario, affects_contains, affects_ranges

UNION = "<1.83.3 || >=1.84.0,<1.84.2"


@pytest.mark.parametrize("version, inside", [
    ("1.82.3", True), ("1.83.2", True), ("1.83.3", False), ("1.83.14", False),
    ("1.84.0", True), ("1.84.1", True), ("1.84.2", False), ("1.85.0", False),
])
def test_union_contains_a_version_when_any_range_does(version: str, inside: bool) -> None:
    scenario = Scenario(path="s.yaml", meta=Metadata(name="s", affects=UNION), proxy=ProxySettings(), steps=())
    assert scenario.expected_to_fail_on(version) is inside


def test_single_range_and_none_behave_as_before() -> None:
    assert affects_contains("<1.85.0", "1.84.10") and not affects_contains("<1.85.0", "1.85.0")
    assert not affects_contains(None, "1.84.10")
    assert len(affects_ranges(UNION)) == 2 and len(affects_ranges(">=1.83.0,<1.95.0")) == 1


@pytest.mark.parametrize("bad", ["<1.83.3 ||", "|| <1.85", "<1.83.3 || soon", "before 1.85", "<1.83.3 | >=1.84"])
def test_a_bad_part_is_a_one_line_file_line_error(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f'name: s\naffects: "{bad}"\nsteps:\n  - run_reset_job\n')
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}:2:") and "is not a version range" in message


def test_a_union_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f'name: s\naffects: "{UNION}"\nsteps:\n  - run_reset_job\n')
    scenario = load(path)
    assert scenario.meta.affects == UNION
    assert scenario.expected_to_fail_on("1.84.1") and not scenario.expected_to_fail_on("1.84.2")
