"""Release policy: which LiteLLM releases are never installed, and what a release environment
pins or caps beyond the release's own declared ranges. Decisions, measured here; the index
(`index.py`) and the installer (`envs.py`) apply them.
"""

from __future__ import annotations

from packaging.specifiers import SpecifierSet

#: Releases never installed, whatever is asked.
DENYLIST: dict[str, str] = {
    "1.107.0": "a compromised release (supply-chain attack on the package index); never installed",
}

#: Newer dependencies that break a release although its declared ranges admit them, measured
#: here: (releases, constraint, why). The constraint joins those releases' install and cache key.
DEPENDENCY_CAPS: tuple[tuple[str, str, str], ...] = (
    # measured on 1.95.0 (declares fastapi>=0.136.3); 1.100.0 imports the replacement
    (">=1.95.0,<1.100.0", "fastapi<0.140.7",
     "it imports fastapi.dependencies.utils.get_flat_dependant, which fastapi 0.140.7 removed"),
)

#: The prisma releases the offline engine bridge is proven with: the newest of these inside a
#: release's range is pinned (LiteLLM logs `_Prisma__engine` errors with prisma 0.15; 1.108+
#: declare >=0.11,<1.0), else the newest inside its range.
PRISMA_PROVEN = SpecifierSet(">=0.11,<0.12")

#: The proxy agent (harness/proxy) imports freezegun inside the proxy process.
FREEZEGUN_PIN = "1.5.5"


def dependency_caps(version: str) -> list[str]:
    """The constraints of DEPENDENCY_CAPS that apply to litellm `version`."""
    return [cap for releases, cap, _why in DEPENDENCY_CAPS if SpecifierSet(releases).contains(version)]
