"""Package-index queries through the PEP 691 simple JSON API.

Only the simple API is used (``<index>/<name>/`` with
``Accept: application/vnd.pypi.simple.v1+json``): the legacy ``/pypi/<name>/json`` API is not
reachable from every network this harness runs in, and the simple API has what is needed:
file names, ``upload-time``, ``yanked`` and (PEP 658/714) ``<file url>.metadata``, the wheel's
METADATA served on its own, so a release's dependencies are read without downloading it.

The index is ``UV_INDEX_URL``, else ``PIP_INDEX_URL``, else https://pypi.org/simple.
Project pages are cached on disk under ``cache_dir()/index`` for ``PAGE_TTL`` seconds; a wheel's
METADATA is immutable (keyed by the wheel's sha256) and cached for good. When the index cannot be
reached, a stale cached page is used rather than failing.
"""

from __future__ import annotations

import email.parser
import hashlib
import io
import json
import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from harness.errors import HarnessError, ReleaseUnavailable
from harness.releases.policy import DENYLIST, PRISMA_PROVEN
from harness.settings import cache_dir

DEFAULT_INDEX = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
PAGE_TTL = 300.0  # seconds a cached project page is trusted
TIMEOUT = (5.0, 30.0)  # connect, read (litellm's page is ~1.4 MB)
USER_AGENT = "litellm-budget-harness (releases index)"


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class DistFile:
    """One file of one release on the index."""

    filename: str
    url: str
    version: Version
    is_wheel: bool
    upload_time: datetime | None
    yanked: bool
    sha256: str | None
    core_metadata: bool | None  # None: the index did not say (then .metadata is tried anyway)


def index_url() -> str:
    """The simple-API base URL in force (``UV_INDEX_URL``, ``PIP_INDEX_URL`` or PyPI)."""
    for var in ("UV_INDEX_URL", "PIP_INDEX_URL"):
        value = os.environ.get(var, "").strip()
        if value:
            return value.rstrip("/")
    return DEFAULT_INDEX


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_files(page: dict) -> list[DistFile]:
    """The files of a PEP 691 project page whose names give a version (others are skipped)."""
    name = canonicalize_name(page.get("name", ""))
    out: list[DistFile] = []
    for entry in page.get("files", []):
        filename = entry.get("filename", "")
        try:
            if filename.endswith(".whl"):
                fname, version, _build, _tags = parse_wheel_filename(filename)
                is_wheel = True
            else:
                fname, version = parse_sdist_filename(filename)
                is_wheel = False
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if name and canonicalize_name(fname) != name:
            continue
        meta = entry.get("core-metadata", entry.get("dist-info-metadata"))
        out.append(
            DistFile(
                filename=filename,
                url=entry.get("url", ""),
                version=version,
                is_wheel=is_wheel,
                upload_time=_parse_time(entry.get("upload-time")),
                yanked=bool(entry.get("yanked")),  # False, or True / a reason string
                sha256=(entry.get("hashes") or {}).get("sha256"),
                core_metadata=None if meta is None else bool(meta),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# HTTP with a small on-disk cache


def _cache_root() -> Path:
    path = cache_dir() / "index"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def http_session():
    import requests  # imported lazily: the warm path of ensure_release never needs it

    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


def project_page(package: str, *, max_age: float = PAGE_TTL) -> dict:
    """The PEP 691 JSON page of ``package`` (cached on disk for ``max_age`` seconds)."""
    import requests

    name = canonicalize_name(package)
    url = f"{index_url()}/{name}/"
    cache_file = _cache_root() / "pages" / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".json")
    cached: dict | None = None
    if cache_file.exists():
        try:
            cached = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cached = None
        if cached is not None and time.time() - cache_file.stat().st_mtime < max_age:
            return cached
    try:
        resp = http_session().get(url, headers={"Accept": SIMPLE_JSON}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        if cached is not None:
            return cached  # stale beats nothing when the index is unreachable
        raise HarnessError(
            f"cannot reach the package index {index_url()}: {type(exc).__name__}",
            hint="set UV_INDEX_URL (or PIP_INDEX_URL) to a reachable simple index",
        ) from None
    if resp.status_code == 404:
        raise HarnessError(f"{package} is not on the package index {index_url()}")
    if resp.status_code != 200:
        if cached is not None:
            return cached
        raise HarnessError(f"package index {url} answered HTTP {resp.status_code}")
    ctype = resp.headers.get("Content-Type", "")
    if "json" not in ctype:
        raise HarnessError(
            f"package index {index_url()} does not serve the PEP 691 JSON API (got {ctype or 'no type'})"
        )
    page = resp.json()
    _atomic_write(cache_file, json.dumps(page).encode())
    return page


def release_files(package: str = "litellm") -> list[DistFile]:
    return parse_files(project_page(package))


# --------------------------------------------------------------------------------------------
# Versions


def versions_from_files(
    files: Iterable[DistFile], include_prereleases: bool = False
) -> list[Version]:
    """Sorted versions that have at least one non-yanked file (a release is yanked as a whole)."""
    live: set[Version] = set()
    for f in files:
        if f.yanked:
            continue
        if f.version.is_prerelease and not include_prereleases:
            continue
        live.add(f.version)
    return sorted(live)


def published_versions(package: str = "litellm", include_prereleases: bool = False) -> list[Version]:
    """Versions of ``package`` on the index, sorted, yanked ones excluded (finals unless asked)."""
    return versions_from_files(release_files(package), include_prereleases)


def parse_version(text: str) -> Version:
    try:
        return Version(str(text).strip())
    except InvalidVersion:
        raise HarnessError(f"{text!r} is not a version number (expected e.g. 1.82.3)") from None


def nearest(available: list[Version], version: Version | str, n: int = 3) -> list[Version]:
    """The ``n`` published versions around where ``version`` would sort (more below than above)."""
    v = version if isinstance(version, Version) else parse_version(version)
    ordered = sorted(a for a in set(available) if a != v)
    i = sum(1 for a in ordered if a < v)
    lo = max(0, i - (n + 1) // 2)
    hi = min(len(ordered), lo + n)
    lo = max(0, hi - n)
    return ordered[lo:hi]


def nearby(version: Version | str, n: int = 3, package: str = "litellm") -> list[Version]:
    """Published versions of ``package`` near ``version``, for error messages."""
    return nearest(published_versions(package), version, n)


#: ways to sample a range before the cap: every release, or the first and last patch of each minor line
SAMPLES = ("all", "minor-ends")


def sample_versions(versions: list[Version], how: str = "all") -> list[Version]:
    """``minor-ends``: the first and the last patch of each ``major.minor`` line (one if it has one)."""
    if how == "all":
        return sorted(versions)
    if how != "minor-ends":
        raise HarnessError(f"unknown sample {how!r}; known: {', '.join(SAMPLES)}")
    lines: dict[tuple[int, int], list[Version]] = {}
    for v in sorted(versions):
        lines.setdefault((v.major, v.minor), []).append(v)
    return sorted({end for line in lines.values() for end in (line[0], line[-1])})


def select_range(available: list[Version], spec: str, cap: int | None, sample: str = "all") -> list[Version]:
    """Versions of ``available`` matching ``spec``, sampled (``sample_versions``); more than
    ``cap`` (None: no cap) are then thinned evenly.

    ``spec`` is a PEP 440 specifier set (">=1.82,<1.86") or a bare version ("1.82.3" -> ==).
    When thinning, the oldest and the newest matching versions are always kept, so a range
    run still brackets the change it is looking for.
    """
    text = spec.strip()
    if text and text[0].isdigit():
        text = "==" + text
    try:
        sset = SpecifierSet(text)
    except InvalidSpecifier:
        raise HarnessError(f"{spec!r} is not a version range (expected e.g. '>=1.82,<1.86')") from None
    matching = sample_versions([v for v in available if sset.contains(v, prereleases=False)], sample)
    if not matching:
        raise HarnessError(f"no published version matches {spec!r}")
    if cap is not None and cap <= 0:
        raise HarnessError(f"version cap must be at least 1 (got {cap})")
    if cap is None or len(matching) <= cap:
        return matching
    if cap == 1:
        return [matching[-1]]
    step = (len(matching) - 1) / (cap - 1)
    picked = sorted({matching[round(k * step)] for k in range(cap)})
    return picked


def resolve_range(spec: str, cap: int | None, package: str = "litellm", sample: str = "all") -> list[Version]:
    """Published final versions of ``package`` in ``spec``, sampled, at most ``cap`` (see select_range)."""
    available = [v for v in published_versions(package) if str(v) not in DENYLIST]
    return select_range(available, spec, cap, sample)


# --------------------------------------------------------------------------------------------
# Metadata (PEP 658 / 714)


def pick_wheel(files: Iterable[DistFile], version: Version) -> DistFile | None:
    """The release's pure-Python wheel if any, else its first non-yanked wheel."""
    wheels = [f for f in files if f.version == version and f.is_wheel and not f.yanked]
    wheels.sort(key=lambda f: (not f.filename.endswith("-py3-none-any.whl"), f.filename))
    return wheels[0] if wheels else None


def parse_metadata(text: str) -> list[str]:
    """The ``Requires-Dist`` lines of a METADATA file."""
    msg = email.parser.Parser().parsestr(text, headersonly=True)
    return [r.strip() for r in (msg.get_all("Requires-Dist") or [])]


def _fetch_metadata(wheel: DistFile) -> str:
    import requests

    path = _cache_root() / "metadata" / f"{wheel.sha256 or hashlib.sha256(wheel.url.encode()).hexdigest()}.METADATA"
    if path.exists():
        return path.read_text(encoding="utf-8")
    s = http_session()
    text: str | None = None
    try:
        if wheel.core_metadata is not False:
            resp = s.get(wheel.url + ".metadata", timeout=TIMEOUT)
            if resp.status_code == 200:
                text = resp.content.decode("utf-8")
        if text is None:  # no PEP 658 file: read METADATA from the wheel itself
            resp = s.get(wheel.url, timeout=(5.0, 300.0))
            resp.raise_for_status()
            with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
                names = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
                if not names:
                    raise HarnessError(f"{wheel.filename} has no .dist-info/METADATA")
                text = zf.read(names[0]).decode("utf-8")
    except requests.RequestException as exc:
        raise HarnessError(f"cannot read the metadata of {wheel.filename}: {type(exc).__name__}") from None
    _atomic_write(path, text.encode("utf-8"))
    return text


def release_metadata(version: Version | str, package: str = "litellm") -> tuple[list[str], datetime | None]:
    """(``Requires-Dist`` lines, wheel upload time) of one release, read from its wheel METADATA."""
    v = version if isinstance(version, Version) else parse_version(version)
    files = release_files(package)
    wheel = pick_wheel(files, v)
    if wheel is None:
        if any(f.version == v for f in files):
            raise ReleaseUnavailable(f"{package} {v} has no installable wheel on the package index")
        near = ", ".join(str(x) for x in nearest(versions_from_files(files), v))
        raise ReleaseUnavailable(f"{package} {v} is not on the package index; nearby: {near}")
    return parse_metadata(_fetch_metadata(wheel)), wheel.upload_time


def upload_times(package: str) -> dict[Version, datetime]:
    """Earliest non-yanked upload time of each version of ``package``."""
    out: dict[Version, datetime] = {}
    for f in release_files(package):
        if f.yanked or f.upload_time is None:
            continue
        if f.version not in out or f.upload_time < out[f.version]:
            out[f.version] = f.upload_time
    return out


# --------------------------------------------------------------------------------------------
# Pin rules (pure; unit-tested with a fake index)


def requirement_for(requires_dist: Iterable[str], name: str, extra: str) -> Requirement | None:
    """The requirement on ``name`` that ``pkg[extra]`` brings in (None when it has none).

    Only requirements whose marker mentions an extra are considered, and the marker is
    evaluated with that ``extra`` (LiteLLM declares prisma under ``extra == "extra-proxy"``
    and litellm-proxy-extras under ``extra == "proxy"``).
    """
    want = canonicalize_name(name)
    for line in requires_dist:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) != want or req.marker is None:
            continue
        if "extra" not in str(req.marker):
            continue
        try:
            if req.marker.evaluate({"extra": extra}):
                return req
        except Exception:  # unknown marker variables: not ours
            continue
    return None


def lower_bound(spec: SpecifierSet) -> Version | None:
    """The inclusive lower bound of a specifier set (>=, ==, ~=, ===), if it has one."""
    bounds = []
    for s in spec:
        if s.operator in (">=", "==", "~=", "===") and "*" not in s.version:
            try:
                bounds.append(Version(s.version))
            except InvalidVersion:
                continue
    return max(bounds) if bounds else None


def newest_in(spec: SpecifierSet, available: Iterable[Version]) -> Version | None:
    """Newest final version of ``available`` inside ``spec``."""
    inside = [v for v in available if spec.contains(v, prereleases=False)]
    return max(inside) if inside else None


def pick_extras(
    spec: SpecifierSet, uploaded: dict[Version, datetime], litellm_upload: datetime | None
) -> tuple[Version | None, str]:
    """The litellm-proxy-extras a release was cut with, and the rule that chose it.

    Rule: LiteLLM bumps the lower bound of its litellm-proxy-extras range to the extras it was
    released with (1.82.3 declares >=0.4.56,<0.5.0; 0.4.56 is also the newest extras uploaded
    before 1.82.3), so the release's own extras = that LOWER BOUND ("lower-bound"); if that exact
    version is not published, the lowest published version inside the range ("lowest-in-range").
    Fallback when the range has no lower bound: the newest extras inside the range uploaded
    before the litellm wheel ("uploaded-before"); without an upload time, the newest in range
    ("newest-in-range"). (None, "none") when nothing in the range is published.
    """
    published = sorted(v for v in uploaded if not v.is_prerelease)
    low = lower_bound(spec)
    if low is not None:
        if low in uploaded and spec.contains(low, prereleases=True):
            return low, "lower-bound"
        inside = [v for v in published if spec.contains(v)]
        if inside:
            return inside[0], "lowest-in-range"
        return None, "none"
    if litellm_upload is not None:
        before = [v for v in published if spec.contains(v) and uploaded[v] <= litellm_upload]
        if before:
            return before[-1], "uploaded-before"
    newest = newest_in(spec, published)
    return (newest, "newest-in-range") if newest else (None, "none")


@dataclass(frozen=True)
class Pins:
    """What a release environment installs besides litellm itself, and why."""

    litellm: str
    prisma: str
    prisma_spec: str
    extras: str  # "" when the release has no litellm-proxy-extras requirement
    extras_spec: str
    extras_rule: str


def resolve_pins(version: Version | str, package: str = "litellm") -> Pins:
    """Pins for one litellm release, from its own wheel METADATA and the index (see pick_extras)."""
    v = version if isinstance(version, Version) else parse_version(version)
    requires, uploaded_at = release_metadata(v, package)
    preq = requirement_for(requires, "prisma", "extra-proxy") or requirement_for(requires, "prisma", "proxy")
    if preq is None:
        raise ReleaseUnavailable(f"litellm {v} declares no prisma requirement in its extra-proxy or proxy extras")
    available = published_versions("prisma")
    prisma = newest_in(preq.specifier, [p for p in available if p in PRISMA_PROVEN]) or newest_in(
        preq.specifier, available
    )
    if prisma is None:
        raise ReleaseUnavailable(f"no published prisma matches litellm {v}'s range {preq.specifier or '(any)'}")
    ereq = requirement_for(requires, "litellm-proxy-extras", "proxy")
    if ereq is None:
        return Pins(str(v), str(prisma), str(preq.specifier), "", "", "absent")
    extras, rule = pick_extras(ereq.specifier, upload_times("litellm-proxy-extras"), uploaded_at)
    if extras is None:  # nothing published fits: the installer lets uv say why (one line)
        return Pins(str(v), str(prisma), str(preq.specifier), "", str(ereq.specifier), "unpublished")
    return Pins(str(v), str(prisma), str(preq.specifier), str(extras), str(ereq.specifier), rule)
