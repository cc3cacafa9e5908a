"""Property: whatever bytes a scenario file holds, `load` returns a scenario or raises one
`ScenarioError` line `file:line: ...` (and the CLI exits 2 with that line, no traceback).

The cases are the shipped scenarios, mutated: nasty fragments inserted (tags, anchors and
aliases, control characters, byte-order marks, bytes that are not UTF-8, numbers too large for
a float, deep nesting, line separators), spans deleted, lines duplicated or swapped, the file
cut short. Seeded: HARNESS_FUZZ_SEED repeats a run, HARNESS_FUZZ_EXAMPLES sets its size.

Structurally: every value of every shipped scenario (mapping values and list items at every depth)
replaced by ill-typed values (ILL_TYPED); HARNESS_FUZZ_STRIDE sets how much of that product runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from harness import cli
from harness.errors import ScenarioError
from harness.scenario import load
from harness.scenario.loader import MAX_BYTES, _Loader

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
        # the loader's safety net for a validator's TypeError: the validator should raise ValueError
        assert not isinstance(exc.__cause__, TypeError), f"a validator raised TypeError: {message}"
    assert "\n" not in message and "\r" not in message, message
    assert len(message) < len(str(path)) + 1000, f"a message quotes a short prefix of a value: {message[:300]}"
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


# --- Bad files, structurally: every value of every shipped scenario replaced by ill-typed ones ---

#: YAML text of each ill-typed value; `1.0e+400` is YAML's spelling of a float (PyYAML reads `1e400` as a string)
ILL_TYPED = ["null", "{}", "[]", "[[1]]", "[{a: 1}]", "{a: {b: [1]}}", "true", str(10**400), str(-10**400),
             "1.0e+400", "x" * 5000, '"${nope.id}"']
#: 1 runs every (value position, ill-typed value) pair: 24,168 loads of the 43 shipped scenarios'
#: 2,014 positions, 62-80 s measured on 2 cores. The default 2 runs every other value at each
#: position, shifted by one from one position to the next: 12,084 loads, 32 s; every position gets
#: 6 of the 12 values and every value half of the positions.
STRIDE = int(os.environ.get("HARNESS_FUZZ_STRIDE", "2"))


def _value_positions(text: str):
    """(node, anchor line) for every mapping value and list item of a document, depth first. The
    anchor is the line of the step, or of the top-level section, that holds the value: an error
    about it must not point above that (a later line is fine: a name replaced, a reference fails)."""
    def walk(node, anchor):
        children = node.value if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) else []
        for child in children:
            value = child[1] if isinstance(node, yaml.MappingNode) else child
            yield value, anchor
            yield from walk(value, anchor)

    root = yaml.compose(text, Loader=_Loader)
    for key, value in root.value:
        yield value, key.start_mark.line + 1
        if key.value == "steps" and isinstance(value, yaml.SequenceNode):
            for step in value.value:
                yield step, step.start_mark.line + 1
                yield from walk(step, step.start_mark.line + 1)
        else:
            yield from walk(value, key.start_mark.line + 1)


def _replace(text: str, node: yaml.Node, value: str) -> str:
    start, end = node.start_mark.index, node.end_mark.index
    end = start + len(text[start:end].rstrip())  # a block value's span ends with line breaks: keep them
    return text[:start] + value + text[end:]


@pytest.mark.parametrize("source", SHIPPED, ids=[str(p.relative_to(ROOT / "scenarios")) for p in SHIPPED])
def test_ill_typed_values_load_or_give_one_line(work: Path, source: Path) -> None:
    text = source.read_text()
    path = work / f"ill_typed_{source.stem}.yaml"
    failures = []
    for i, (node, anchor) in enumerate(_value_positions(text)):
        for j, value in enumerate(ILL_TYPED):
            if (i + j) % STRIDE:
                continue
            path.write_text(_replace(text, node, value))
            where = f"line {node.start_mark.line + 1} := {value[:20]}"
            try:
                message = check_contract(path)
            except Exception as exc:  # any exception breaks the contract: listed below with its case
                failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            if message is None:
                continue
            line = int(message[len(str(path)) + 1:].split(":", 1)[0])
            if "not valid YAML" in message:
                failures.append(f"{where}: the replacement made the file unreadable YAML: {message}")
            elif line < anchor:
                failures.append(f"{where}: the error points above the value's step or section (line {anchor}): {message}")
    assert not failures, f"{len(failures)} cases broke the contract, e.g.:\n" + "\n".join(failures[:10])


def _shipped_with(relative: str, keys: tuple[str, ...], value: str) -> tuple[str, int]:
    """A shipped scenario's text with the value at `keys` replaced, and that value's line."""
    text = (ROOT / "scenarios" / relative).read_text()
    node = yaml.compose(text, Loader=_Loader)
    for key in keys:
        node = next(v for k, v in node.value if k.value == key)
    return _replace(text, node, value), node.start_mark.line + 1


# the three of issue 20 that ended in tracebacks (exit 1), through the CLI as a user runs them
CLI_CASES = {
    "replicas_mapping": ("deployments/key_budget_multiplied_by_replicas.yaml", ("deployment", "replicas"),
                         "[{a: 1}]", "replica names are strings, not a mapping"),
    "replicas_nested_list": ("deployments/key_budget_multiplied_by_replicas.yaml", ("deployment", "replicas"),
                             "[[1]]", "replica names are strings, not a list"),
    "timezone_5000": ("timezone/key_budget_reset_new_york.yaml", ("proxy", "litellm_settings", "timezone"),
                      "x" * 5000, "is not a time zone name"),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_refuses_ill_typed_value_in_one_line(work: Path, name: str, capsys) -> None:
    relative, keys, value, text = CLI_CASES[name]
    data, line = _shipped_with(relative, keys, value)
    path = work / f"cli_{name}.yaml"
    path.write_text(data)
    assert cli.main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err == "" and out.count("\n") == 1, out + err
    assert out.startswith(f"invalid {path}:{line}: ") and text in out, out
    assert "x" * 100 not in out, out
