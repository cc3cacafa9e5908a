"""Which litellm-proxy-extras migrations build the schema a release declares.

`ensure_release` pins the extras at the lower bound of litellm's declared range (the version the
release was cut against). That is not always enough: 1.82.3 declares >=0.4.56, but 0.4.56's
migrations drop six LiteLLM_MCPServerTable columns that 1.82.3's schema.prisma still has (a
later extras restores them). In production the proxy's schema engine papers over such gaps; the
harness has no schema engine, so it walks forward through the published extras inside the
declared range and adopts the first whose migrations pass the drift check, then records the
choice in the environment's marker so later runs go straight to it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Callable

from packaging.version import Version

from ..errors import HarnessError, SchemaDrift
from ..settings import cache_dir
from . import envs, index

EXTRAS = "litellm-proxy-extras"
MAX_CANDIDATES = 25
MIGRATIONS = "litellm_proxy_extras/migrations/"


def migrations_of(version: Version) -> Path:
    """The migrations folder of one published extras wheel, extracted once into the cache."""
    target = cache_dir() / "extras" / str(version)
    done = target / ".complete"
    if done.exists():
        return target / "migrations"
    wheel = index.pick_wheel(index.release_files(EXTRAS), version)
    if wheel is None:
        raise HarnessError(f"{EXTRAS} {version} has no wheel on the package index")
    session = index.http_session()
    resp = session.get(wheel.url, timeout=60)
    resp.raise_for_status()
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        for name in zf.namelist():
            if name.startswith(MIGRATIONS) and not name.endswith("/"):
                out = tmp / "migrations" / name[len(MIGRATIONS):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(name))
    (tmp / ".complete").write_text("")
    try:
        tmp.rename(target)
    except OSError:  # another process got there first
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return target / "migrations"


def later_candidates(release: envs.ReleaseEnv) -> list[Version]:
    """Published extras inside the release's declared range, newer than its pin, oldest first."""
    from packaging.specifiers import SpecifierSet

    declared = SpecifierSet(release.marker.get("declared", {}).get(EXTRAS, "") or "")
    current = Version(release.extras_version)
    found = [v for v in index.published_versions(EXTRAS) if v > current and declared.contains(v)]
    return found[:MAX_CANDIDATES]


def adopt(release: envs.ReleaseEnv, version: Version, rule: str) -> envs.ReleaseEnv:
    """Install extras `version` into the release env and record it (under the env's build lock)."""
    from filelock import FileLock

    with FileLock(str(release.root.with_name(release.root.name + ".lock")), timeout=600):
        proc = subprocess.run(
            envs.uv_command() + ["pip", "install", "--no-deps", "--compile-bytecode", "--python", str(release.python),
                          f"{EXTRAS}=={version}"],
            env=envs.uv_env(), capture_output=True, text=True, timeout=600,
        )
        if proc.returncode != 0:
            raise HarnessError(f"installing {EXTRAS} {version} failed: {envs.decisive_uv_line(proc.stderr + proc.stdout)}")
        marker_path = release.root / envs.MARKER_NAME
        marker = json.loads(marker_path.read_text())
        marker["pins"][EXTRAS] = str(version)
        marker.setdefault("declared", {})["extras_rule"] = rule
        marker["extras_schema_verified"] = True
        envs.write_json_atomic(marker_path, marker)
    return envs.release_env_from(release.root, marker, release.engine)


def matching_template(
    release: envs.ReleaseEnv,
    build: Callable[[Path], str],
    progress: Callable[[str], None] | None = None,
) -> tuple[envs.ReleaseEnv, str]:
    """(release, template) where the template's schema satisfies the release's schema.prisma.

    `build(migrations_dir)` builds (or reuses) a template and raises SchemaDrift on a mismatch.
    """
    say = progress or (lambda _msg: None)
    if not release.extras_version:
        return _nearest_extras(release, build, say)
    try:
        return release, build(release.migrations_dir)
    except SchemaDrift as first:
        drift = first
    say(f"{EXTRAS} {release.extras_version} does not build litellm {release.version}'s schema; "
        "trying later extras, inside its declared range first")
    inside = later_candidates(release)
    # Some releases declare columns that only a later extras, outside their range, creates
    # (1.97.0: LiteLLM_AutoRouterSession.tier_turns); production's schema engine adds them at
    # start-up. Those come second: the nearest later migrations that build the schema.
    beyond = [v for v in index.published_versions(EXTRAS)
              if v > Version(release.extras_version) and v not in inside][:MAX_CANDIDATES]
    for candidate in inside + beyond:
        try:
            template = build(migrations_of(candidate))
        except SchemaDrift as exc:
            drift = exc
            continue
        where = "inside its declared range" if candidate in inside else "beyond its declared range"
        say(f"{EXTRAS} {candidate} ({where}) builds litellm {release.version}'s schema: adopting it")
        return adopt(release, candidate, f"first-matching-schema {where} (lower bound {release.extras_version} "
                                         "drifts)"), template
    raise SchemaDrift(f"no {EXTRAS} from litellm {release.version}'s own on builds its schema; last: {drift}")


def _nearest_extras(release: envs.ReleaseEnv, build: Callable[[Path], str], say) -> tuple[envs.ReleaseEnv, str]:
    """Releases before 1.65.1 ship only schema.prisma, no migrations. The nearest migrations are
    the oldest extras' (0.1.x, cut with 1.65.1; their first migration is a baseline of the
    whole schema): the first of those whose schema has every table and column the release's
    schema.prisma declares is adopted. Extra tables and columns it adds are nullable or have
    defaults in LiteLLM's schema, so the older proxy never writes them."""
    drift: SchemaDrift | None = None
    for candidate in index.published_versions(EXTRAS)[:MAX_CANDIDATES]:
        try:
            template = build(migrations_of(candidate))
        except SchemaDrift as exc:
            drift = exc
            continue
        say(f"litellm {release.version} ships no migrations: those of {EXTRAS} {candidate} build its schema; adopting them")
        return adopt(release, candidate, "nearest-migrations (the release ships none)"), template
    raise SchemaDrift(f"litellm {release.version} ships no migrations, and none of the {MAX_CANDIDATES} oldest "
                      f"{EXTRAS} releases builds its schema.prisma; last: {drift}")
