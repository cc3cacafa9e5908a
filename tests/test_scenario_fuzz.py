"""Property: whatever bytes a scenario file holds, `load` returns a scenario or raises one
`ScenarioError` line `file:line: ...` (and the CLI exits 2 with that line, no traceback).

The cases are the shipped scenarios, mutated: nasty fragments inserted (tags, anchors and
aliases, control characters, byte-order marks, bytes that are not UTF-8, numbers too large for
a float, deep nesting, line separators), spans deleted, lines duplicated or swapped, the file
cut short. Seeded: HARNESS_FUZZ_SEED repeats a run, HARNESS_FUZZ_EXAMPLES sets its size.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from harness.errors import ScenarioError
from harness.scenario import load
from harness.scenario.loader import MAX_BYTES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))
SEED = int(os.environ.get("HARNESS_FUZZ_SEED", "20261201"))
EXAMPLES = int(os.environ.get("HARNESS_FUZZ_EXAMPLES", "3000"))

FRAGMENTS = [
    b"!custom ", b"!!python/object:os.system ", b"!!binary ", b"!!set ", b"!<tag:x> ", b"!!str ",
    b"&a ", b"*a", b"*undefined", b"&a [*a]", b"<<: *a\n", b"? [a]\n: b\n",
    b"\x00", b"\x07", b"\x1b[31m", b"\x7f", b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"\xe2\x80\xa8", b"\xc2\x85",
    b"\r", b"\r\n", b"\t", b"\n", b"\n  ", b"- ", b": ", b"{", b"}", b"[", b"]", b"'", b'"', b"#", b"%YAML 1.1\n",
    b"---\n", b"...\n", b"|\n", b">-\n",
    b"1e999", b"1.0e+999", b"-.inf", b".nan", b"1" * 5000, b"0x" + b"f" * 300, b"99999999999999999999999d",
    b"[" * 200 + b"]" * 200, b"{a: " * 80 + b"1" + b"}" * 80,
    b"${x.token}", b"[/bold]", b"null", b"~", b"yes", b"2026-02-30T25:61:00Z",
]


def _mutations():
    position = st.floats(min_value=0, max_value=1)
    insert = st.tuples(st.just("insert"), position, st.sampled_from(FRAGMENTS) | st.binary(max_size=8))
    delete = st.tuples(st.just("delete"), position, st.integers(1, 40))
    duplicate = st.tuples(st.just("duplicate"), position, st.integers(1, 3))
    swap = st.tuples(st.just("swap"), position, position)
    cut = st.tuples(st.just("cut"), position, st.just(None))
    return st.lists(st.one_of(insert, insert, delete, duplicate, swap, cut), min_size=1, max_size=4)


def _mutate(data: bytes, mutations) -> bytes:
    for kind, where, arg in mutations:
        at = int(where * len(data))
        if kind == "insert":
            data = data[:at] + arg + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + arg:]
        elif kind == "cut":
            data = data[:at]
        else:
            lines = data.split(b"\n")
            i = min(int(where * len(lines)), len(lines) - 1)
            if kind == "duplicate":
                lines[i:i] = [lines[i]] * arg
            else:
                j = min(int(arg * len(lines)), len(lines) - 1)
                lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
    return data


def check_contract(path: Path) -> str | None:
    """None when the file loads; else its one error line, asserted to be well formed."""
    try:
        load(path)
        return None
    except ScenarioError as exc:
        message = str(exc)
    assert "\n" not in message and "\r" not in message, message
    match = re.match(re.escape(str(path)) + r":(\d+): \S", message)
    assert match, message
    text_lines = path.read_bytes().decode("utf-8", "replace").splitlines() if path.is_file() else []
    assert 1 <= int(match.group(1)) <= max(1, len(text_lines) + 1), message
    return message


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(source=st.sampled_from(SHIPPED), mutations=_mutations())
def test_mutated_scenarios_load_or_give_one_line(work: Path, source: Path, mutations) -> None:
    path = work / "case.yaml"
    path.write_bytes(_mutate(source.read_bytes(), mutations))
    check_contract(path)


# The named cases of the contract, each with the line the error must name.
NAMED = {
    "tag": (b"name: x\nsteps:\n  - freeze_clock: !custom now\n", 3, "YAML tags"),
    "python_tag": (b"name: x\nsteps: !!python/object/apply:os.system [echo]\n", 2, "YAML tags"),
    "undefined_alias": (b"name: x\nsteps:\n  - *nothing\n", 3, "undefined alias"),
    "recursive_alias": (b"name: x\nsteps: &s\n  - *s\n", 2, "contains it"),
    "billion_laughs": (b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%c: &%c [%s]\n" % (c, c, b", ".join([b"*" + bytes([c - 1])] * 10)) for c in b"bcdefgh"), None, "expands to more"),
    "nul": (b"name: x\nsteps:\n  - run_reset_job\n  - freeze_clock: \"a\x00b\"\n", 4, "U+0000"),
    "escape_char": (b"name: x\x1b[31m\nsteps: [run_reset_job]\n", 1, "U+001B"),
    "not_utf8": (b"name: x\nsteps:\n  - freeze_clock: caf\xe9\n", 3, "not UTF-8"),
    "utf16": ("name: x\nsteps: [run_reset_job]\n".encode("utf-16"), 1, "not UTF-8"),
    "huge_float": (b"name: x\nsteps:\n  - spend: {key: k, until: 1.0e+999}\n", 3, "not a finite number"),
    "huge_int": (b"name: x\nsteps:\n  - advance_clock: " + b"9" * 5000 + b"\n", 3, "too long a number"),
    "huge_span": (b"name: x\nsteps:\n  - advance_clock: 99999999999999d\n", 3, "too long a span"),
    "deep": (b"name: x\nsteps:\n  - api_call: {path: /x, json: {a: " + b"[" * 300 + b"]" * 300 + b"}}\n", 3, "nested more than"),
    "empty": (b"", 1, "empty"),
    "only_comment": (b"# nothing\n", 1, "empty"),
    "newline_in_key": (b"name: x\nsteps:\n  - \"a\\nb\": {}\n", 3, "unknown action `a\\nb`"),
    "markup_in_value": (b"name: x\nsteps:\n  - \"[/bold]\": {}\n", 3, "unknown action `[/bold]`"),
    "merge_key": (b"base: &b {max_budget: 1}\nname: x\nsteps:\n  - create_key: {<<: *b, name: k}\n", 4, "merge keys"),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_malformed_files(work: Path, name: str) -> None:
    data, line, text = NAMED[name]
    path = work / f"{name}.yaml"
    path.write_bytes(data)
    message = check_contract(path)
    assert message is not None and text in message, message
    if line is not None:
        assert message.startswith(f"{path}:{line}: "), message


def test_bom_is_accepted_and_lines_still_match(work: Path) -> None:
    path = work / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SHIPPED[0].read_bytes())
    assert check_contract(path) is None


def test_directory_missing_and_oversized_files(work: Path) -> None:
    directory = work / "a_directory.yaml"
    directory.mkdir()
    assert "is a directory" in check_contract(directory)
    assert "no such scenario file" in check_contract(work / "missing.yaml")
    big = work / "big.yaml"
    big.write_bytes(b"name: x\n" + b"#" * MAX_BYTES)
    assert "at most" in check_contract(big)


def test_cli_prints_one_line_and_exits_2_without_traceback(work: Path) -> None:
    paths = []
    for name in ("tag", "nul", "not_utf8", "recursive_alias", "markup_in_value", "deep"):
        path = work / f"cli_{name}.yaml"
        path.write_bytes(NAMED[name][0])
        paths.append(str(path))
    for command in (["validate", *paths], ["run", paths[0], "--litellm", "1.82.3"]):
        proc = subprocess.run([sys.executable, "-m", "harness", *command], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr == "", proc.stderr
        invalid = [line for line in proc.stdout.splitlines() if line.startswith("invalid ")]
        assert len(invalid) == (len(paths) if command[0] == "validate" else 1), proc.stdout
        assert all(re.match(r"invalid \S+:\d+: ", line) for line in invalid), proc.stdout
