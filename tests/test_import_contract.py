"""The layers of `harness/`, enforced: no import cycle, no import from a lower layer upwards.

Every import counts: module level, inside functions (lazy), and under `if TYPE_CHECKING:`. An
import of `harness.a.b` also runs `harness/a/__init__.py`, so it is an edge to the package
`harness.a` too (unless the importer lives inside `harness.a`). `harness.standalone` runs in
other interpreters (the proxy's agent, the watchdog): it imports nothing else of `harness`, and
any layer may name it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "harness"

#: lowest first; a module may import its own layer's modules and lower ones, never higher ones
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness.errors", "harness.settings", "harness.names", "harness.verdicts", "harness.calendar",
     "harness.durations", "harness.assertions"),
    ("harness.model",),
    ("harness.services",),
    ("harness.db", "harness.redis", "harness.releases", "harness.engine", "harness.faults",
     "harness.upstream"),
    ("harness.proxy",),
    ("harness.steps",),
    ("harness.scenario",),
    ("harness.execution",),
    ("harness.reports",),
    ("harness.commands", "harness.options", "harness.cli", "harness.pytest_plugin", "harness.__main__"),
)
STANDALONE = "harness.standalone"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
        for target in targets:
            if not target.startswith("harness"):
                continue
            wanted = target
            while target not in mods and "." in target:
                target = target.rsplit(".", 1)[0]
            if target == "harness" and wanted not in ("harness", "harness.__version__"):
                found.add(f"missing:{wanted}")  # an import of a module that does not exist
                continue
            # the target and the packages above it that the importer is not already inside
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                ancestor = ".".join(parts[:i])
                if ancestor in mods and not (name + ".").startswith(ancestor + ".") and ancestor != name:
                    found.add(ancestor)
    found.discard("harness")
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items() if name != "harness"}


def layer_of(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    homeless = [m for m in _graph() if layer_of(m) is None and not m.startswith(STANDALONE)]
    assert not homeless, f"modules outside every layer of LAYERS: {homeless}"


def test_every_harness_import_names_a_module_that_exists() -> None:
    missing = [f"{m} -> {t[len('missing:'):]}" for m, ts in _graph().items() for t in ts if t.startswith("missing:")]
    assert not missing, missing


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_no_upward_import() -> None:
    upward = []
    for module, targets in _graph().items():
        if module.startswith(STANDALONE):
            continue
        for target in targets:
            if target.startswith(STANDALONE):
                continue
            if layer_of(target) is not None and layer_of(target) > layer_of(module):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports from a lower layer upwards:\n" + "\n".join(sorted(upward))


def test_standalone_code_imports_no_other_harness_module() -> None:
    leaks = [f"{m} -> {t}" for m, ts in _graph().items() if m.startswith(STANDALONE)
             for t in ts if not t.startswith(STANDALONE)]
    assert not leaks, leaks


def test_the_checker_sees_cycles_and_upward_imports(tmp_path) -> None:
    """The checks themselves can fail: a made-up graph with a cycle and an upward edge."""
    graph = {"harness.steps.a": {"harness.execution.b"}, "harness.execution.b": {"harness.steps.a"}}
    assert _cycles(graph) == [["harness.execution.b", "harness.steps.a"]]
    assert layer_of("harness.execution.b") > layer_of("harness.steps.a")
