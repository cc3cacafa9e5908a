"""Just enough of a schema.prisma parser to know which tables and columns a release expects.

Reads `model` blocks (and `enum` names, so enum-typed fields count as scalar columns), honours
`@map` / `@@map`, and skips relation fields (typed by another model), `@ignore` fields and
`@@ignore` models. `view` and `type` blocks are not tables and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SCALAR_TYPES = frozenset({"String", "Boolean", "Int", "BigInt", "Float", "Decimal", "DateTime", "Json", "Bytes", "Unsupported"})

_BLOCK_RE = re.compile(r"^\s*(model|enum|view|type|datasource|generator)\s+(\w+)\s*\{", re.M)
_MAP_RE = re.compile(r"""@map\(\s*(?:name\s*:\s*)?"((?:[^"\\]|\\.)*)"\s*[,)]""")
_MODEL_MAP_RE = re.compile(r"""@@map\(\s*(?:name\s*:\s*)?"((?:[^"\\]|\\.)*)"\s*[,)]""")
_FIELD_RE = re.compile(r"^\s*(\w+)\s+(\w+)(\([^)]*\))?(\[\])?(\?)?(.*)$")


@dataclass
class Column:
    field: str
    name: str      # column name in the database (@map)
    type: str      # Prisma type (String, Int, an enum name, ...)
    is_list: bool = False
    optional: bool = False


@dataclass
class Model:
    name: str
    table: str     # table name in the database (@@map)
    columns: list[Column] = field(default_factory=list)


@dataclass
class PrismaSchema:
    models: dict[str, Model]
    enums: set[str]

    def expected(self) -> dict[str, list[str]]:
        """{table: [columns]} the database must have."""
        return {m.table: [c.name for c in m.columns] for m in self.models.values()}


def _strip_comment(line: str) -> str:
    """Drop `//` comments that are not inside a string literal."""
    in_str = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and in_str:
            i += 2
            continue
        if ch == '"':
            in_str = not in_str
        elif not in_str and line.startswith("//", i):
            return line[:i]
        i += 1
    return line


def _blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(keyword, name, body lines) of every top-level block."""
    lines = [_strip_comment(ln) for ln in text.splitlines()]
    out: list[tuple[str, str, list[str]]] = []
    i = 0
    while i < len(lines):
        m = _BLOCK_RE.match(lines[i])
        if not m:
            i += 1
            continue
        rest = lines[i].split("{", 1)[1]
        depth = 1 + rest.count("{") - rest.count("}")
        body: list[str] = [rest if depth > 0 else rest.rsplit("}", 1)[0]]
        i += 1
        while i < len(lines) and depth > 0:
            depth += lines[i].count("{") - lines[i].count("}")
            if depth > 0:
                body.append(lines[i])
            else:
                # a closing brace possibly preceded by content on the same line
                body.append(lines[i].rsplit("}", 1)[0])
            i += 1
        out.append((m.group(1), m.group(2), body))
    return out


def parse_schema(text: str) -> PrismaSchema:
    blocks = _blocks(text)
    model_names = {name for kw, name, _ in blocks if kw in ("model", "view", "type")}
    enums = {name for kw, name, _ in blocks if kw == "enum"}
    models: dict[str, Model] = {}
    for kw, name, body in blocks:
        if kw != "model":
            continue
        table = name
        ignored = False
        columns: list[Column] = []
        for raw in body:
            line = raw.strip()
            if not line:
                continue
            if line.startswith("@@"):
                if line.startswith("@@ignore"):
                    ignored = True
                mm = _MODEL_MAP_RE.search(line)
                if mm:
                    table = mm.group(1)
                continue
            fm = _FIELD_RE.match(line)
            if not fm:
                continue
            fname, ftype, _args, is_list, optional, rest = fm.groups()
            if re.search(r"@ignore\b", rest):
                continue
            if ftype in model_names or "@relation" in rest and ftype not in SCALAR_TYPES and ftype not in enums:
                continue  # relation field: no column of its own
            if ftype not in SCALAR_TYPES and ftype not in enums:
                continue  # unknown type (e.g. a composite type): not a column we can check
            cm = _MAP_RE.search(rest)
            columns.append(Column(fname, cm.group(1) if cm else fname, ftype, bool(is_list), bool(optional)))
        if not ignored:
            models[name] = Model(name, table, columns)
    return PrismaSchema(models, enums)


def parse_schema_file(path: Path) -> PrismaSchema:
    return parse_schema(Path(path).read_text(encoding="utf-8"))
