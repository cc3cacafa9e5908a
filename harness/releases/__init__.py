"""Package-index queries and one cached uv environment per LiteLLM release.

``ensure_release(version)`` returns a :class:`ReleaseEnv` (venv with ``litellm[proxy]``, the
release's own prisma / litellm-proxy-extras pins, freezegun, and LiteLLM's generated Prisma
client); ``published_versions()`` / ``resolve_range()`` / ``nearby()`` / ``release_metadata()``
query the package index through the PEP 691 simple JSON API; ``policy`` holds the releases
never installed (``DENYLIST``) and the pins and caps beyond a release's own ranges.
"""

from harness.releases.envs import ReleaseEnv, check_release, ensure_release, generate
from harness.releases.index import (
    Pins,
    nearby,
    published_versions,
    release_metadata,
    resolve_pins,
    resolve_range,
)
from harness.releases.policy import DENYLIST

__all__ = [
    "DENYLIST",
    "Pins",
    "ReleaseEnv",
    "check_release",
    "ensure_release",
    "generate",
    "nearby",
    "published_versions",
    "release_metadata",
    "resolve_pins",
    "resolve_range",
]
