"""Splitting a matrix into N shards for N machines (`matrix --shard I/N`), and the matrix's identity.

* The cells (scenario x release) are sorted by a stable key, (release in version order, proxy
  settings group, scenario path), so the split depends neither on the order of the arguments
  nor on the machine; every shard computes the same split independently.
* Shards are contiguous runs of that order with sizes ``ceil(T/N)`` or ``floor(T/N)`` (balanced to
  one cell). Which shards get the extra cell is chosen so the boundaries fall, where possible,
  between releases (each release environment and proxy is then needed on one machine only),
  else between proxy settings groups of one release (one proxy each), else inside a group.
* The identity of the whole matrix (its scenarios and their contents, the resolved releases,
  the clock, the operator's proxy config) is a fingerprint that `merge` compares across shards.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from ..errors import HarnessError


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard(1, 1)


def parse_shard(text: str) -> Shard:
    """``I/N`` with 1 <= I <= N; anything else is a one-line HarnessError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise HarnessError(f"--shard {text!r}: expected I/N, e.g. 2/4 (shard I of N, counted from 1)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise HarnessError(f"--shard {text}: N must be at least 1")
    if not 1 <= index <= count:
        raise HarnessError(f"--shard {text}: I must be between 1 and N ({count})")
    return Shard(index, count)


class CellKey(NamedTuple):
    version: str
    group: str  # deployment group (deployment_key): one deployment per group
    path: str


def _order(cell: CellKey):
    from .plan import version_key

    return (version_key(cell.version), cell.group, cell.path)


def _boundary_cost(cells: Sequence[CellKey], at: int) -> int:
    """What a shard boundary before ``cells[at]`` costs: 0 between releases, 1 between proxy
    settings groups of one release (its environment is needed twice), 2 inside a group (its
    proxy too)."""
    if at <= 0 or at >= len(cells):
        return 0
    before, after = cells[at - 1], cells[at]
    if before.version != after.version:
        return 0
    return 1 if before.group != after.group else 2


def split(cells: Sequence[CellKey], count: int) -> list[list[CellKey]]:
    """``count`` disjoint shards whose union is ``cells`` (duplicates dropped), each of
    ``floor(T/count)`` or ``ceil(T/count)`` cells, contiguous in the stable order, with the
    cheapest boundaries (`_boundary_cost`) among the balanced splits; ties go to the split whose
    first shards are the larger ones."""
    ordered = sorted(set(cells), key=_order)
    total = len(ordered)
    base, extra = divmod(total, count)
    # best[j]: (cost, extras per shard so far) after k shards, j of which have an extra cell
    best: dict[int, tuple[int, tuple[int, ...]]] = {0: (0, ())}
    for k in range(1, count + 1):
        step: dict[int, tuple[int, tuple[int, ...]]] = {}
        for j in range(min(k, extra) + 1):
            if extra - j > count - k:  # the remaining shards could not take the remaining extras
                continue
            options = [(best[j - d][0], best[j - d][1] + (d,)) for d in (1, 0) if j - d in best]
            if not options:
                continue
            cost, picks = min(options, key=lambda o: (o[0], [-d for d in o[1]]))  # ties: extras in earlier shards
            step[j] = (cost + _boundary_cost(ordered, k * base + j), picks)
        best = step
    _, picks = best[extra]
    shards, start = [], 0
    for d in picks:
        end = start + base + d
        shards.append(ordered[start:end])
        start = end
    return shards


def matrix_cells(scenarios, versions: Sequence[str]) -> list[CellKey]:
    """Every (release, deployment group, scenario) cell of a matrix."""
    from .session import deployment_key

    groups = {s.path: deployment_key(s) for s in scenarios}
    return [CellKey(v, groups[path], path) for v in versions for path in groups]


def shard_cells(scenarios, versions: Sequence[str], shard: Shard) -> set[tuple[str, str]]:
    """The (scenario path, release) cells shard ``shard`` runs."""
    mine = split(matrix_cells(scenarios, versions), shard.count)[shard.index - 1]
    return {(c.path, c.version) for c in mine}


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def identity(scenarios, versions: Sequence[str], clock: str, proxy_config=None) -> dict[str, Any]:
    """The matrix a shard belongs to, for its report: the scenarios (argument order), the resolved
    releases (version order), the clock, and a fingerprint of all that plus the scenario files'
    contents and the operator's proxy config (a digest: the config itself may hold secrets)."""
    from .plan import version_key

    paths = list(dict.fromkeys(s.path for s in scenarios))
    releases = sorted(dict.fromkeys(versions), key=version_key)
    contents = {}
    for path in paths:
        try:
            contents[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:  # loaded a moment ago; a file gone since still names its matrix by path
            contents[path] = None
    operator = _digest(proxy_config.data) if proxy_config is not None else None
    fingerprint = _digest({"scenarios": sorted(contents.items()), "releases": releases, "clock": clock,
                           "proxy_config": operator})[:16]
    return {"fingerprint": fingerprint, "scenarios": paths, "releases": releases, "cells": len(paths) * len(releases),
            "clock": clock}
