"""Which cells a run has: the releases (explicit, or a range sampled and capped; deny-listed ones
kept as `uninstallable` cells with the reason), the scenarios, and the shard's share of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.version import Version

from ..errors import HarnessError
from ..scenario.model import Scenario
from .results import ScenarioResult

DEFAULT_CAP = 8


@dataclass
class Selection:
    versions: list[str]  # to run, in version order
    refused: dict[str, str] = field(default_factory=dict)  # deny-listed inside the range -> reason
    note: str = ""  # how they were chosen, one line


def _spec_set(spec: str):
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    text = spec.strip()
    if text and text[0].isdigit():
        text = "==" + text
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise HarnessError(f"{spec!r} is not a version range (expected e.g. '>=1.82,<1.86')") from None


def select_releases(
    explicit: list[str],
    spec: str | None,
    cap: int | None = None,
    published: list[Version] | None = None,
    denylist: dict[str, str] | None = None,
    sample: str = "all",
) -> Selection:
    """Releases for a matrix: ``explicit`` ones plus the range's, sampled (``all``, ``minor-ends``),
    then at most ``cap`` of those (None: ``DEFAULT_CAP`` for ``all``, no cap for a sample).

    ``published``/``denylist`` default to the package index and ``releases.DENYLIST`` (tests
    pass their own). Explicit releases are not capped. Deny-listed releases in the range are
    listed (as refused) only when the whole range is asked for.
    """
    from ..releases import index

    if denylist is None:
        from ..releases import DENYLIST as denylist  # noqa: N811
    chosen: set[Version] = {Version(v) for v in explicit}
    refused: dict[str, str] = {}
    notes = []
    if explicit:
        notes.append(f"--litellm {' '.join(explicit)}")
    if spec:
        if cap is None and sample == "all":
            cap = DEFAULT_CAP
        if cap is not None and cap < 1:
            raise HarnessError(f"--cap must be at least 1 (got {cap})")
        sset = _spec_set(spec)
        if published is None:
            published = index.published_versions()
        allowed = [v for v in published if str(v) not in denylist and sset.contains(v, prereleases=False)]
        picked = index.select_range(allowed, spec, cap, sample)
        for v in published:
            if sample == "all" and str(v) in denylist and sset.contains(v, prereleases=False):
                refused[str(v)] = f"litellm {v} is refused: {denylist[str(v)]}"
        sampled = len(index.sample_versions(allowed, sample))
        how = f", {sampled} by --sample {sample}" if sample != "all" else ""
        thinned = f", thinned to {len(picked)} by --cap {cap} (oldest and newest kept)" if sampled > len(picked) else ""
        notes.append(f"--range '{spec}': {len(allowed)} published final releases{how}{thinned}")
        if refused:
            notes.append("deny-listed in range: " + ", ".join(refused))
        chosen.update(picked)
    versions = [str(v) for v in sorted(chosen | {Version(v) for v in refused})]
    if not versions:
        raise HarnessError("say which releases to run: --litellm VERSION (repeatable) and/or --range SPEC")
    return Selection(versions=versions, refused=refused, note="; ".join(notes))


def version_key(text: str):
    """Version order; text that is no version (a typo's error cells) sorts after, by its text."""
    from packaging.version import InvalidVersion

    try:
        return (0, Version(text), "")
    except InvalidVersion:
        return (1, Version("0"), text)


def order_results(results: list[ScenarioResult], scenarios: list[Scenario]) -> list[ScenarioResult]:
    """Version order, then the scenarios' order (the order every report shows)."""
    rank = {s.path: i for i, s in enumerate(scenarios)}
    return sorted(results, key=lambda r: (version_key(r.version), rank.get(r.scenario.path, len(rank))))


@dataclass
class Plan:
    """The cells of one run: every scenario on every release of `selection`, or (`only`, a
    shard's share, see `shards`) just those (scenario path, release) pairs."""

    scenarios: list[Scenario]
    selection: Selection
    only: set[tuple[str, str]] | None = None

    @classmethod
    def of(cls, scenarios: list[Scenario], versions: list[str], note: str = "") -> "Plan":
        return cls(scenarios, Selection(versions=list(versions), note=note))

    def scenarios_of(self, version: str) -> list[Scenario]:
        return [s for s in self.scenarios if self.only is None or (s.path, version) in self.only]

    @property
    def versions(self) -> list[str]:
        return self.selection.versions

    @property
    def cell_count(self) -> int:
        """How many cells `Engine.run` gives a verdict (deny-listed releases' cells included)."""
        return sum(len(self.scenarios_of(v)) for v in self.versions)


def deployment_pieces(scenarios: list[Scenario], parts: int, key, weight=lambda s: 1.0) -> list[list[Scenario]]:
    """`scenarios` in pieces for `parts` parallel workers of one release, heaviest first by
    `weight` (a scenario's expected seconds), each piece in the scenarios' order. Scenarios with
    the same `key` share one deployment (its proxies start once), so they make one piece, except
    that a group heavier than a fair share (the total over `parts`) is cut into pieces of about a
    fair share (one more start of that deployment beats one worker running alone). The workers
    take the pieces as they come free (engine.Work), so a wrong weight costs at most one piece's
    imbalance."""
    if not scenarios:
        return []
    fair = sum(weight(s) for s in scenarios) / max(1, parts)
    groups: dict[str, list[Scenario]] = {}
    for scenario in scenarios:
        groups.setdefault(key(scenario), []).append(scenario)
    pieces: list[list[Scenario]] = []
    for group in groups.values():
        piece, load = [], 0.0
        for scenario in group:
            if piece and load + weight(scenario) > fair:
                pieces.append(piece)
                piece, load = [], 0.0
            piece.append(scenario)
            load += weight(scenario)
        pieces.append(piece)
    return sorted(pieces, key=lambda p: sum(weight(s) for s in p), reverse=True)  # stable: ties keep the run's order
