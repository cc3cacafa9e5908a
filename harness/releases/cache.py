"""Keeping the release cache bounded: list the environments, prune them by age and/or size.

A process that uses an environment holds it: a shared ``flock`` on ``<env>.use`` next to the
environment, taken by ``ensure_release`` and kept until the process exits (the file's mtime is
the environment's last use). Pruning takes that lock exclusively, and the build lock, without
waiting: an environment a running harness holds, or one being built, is never removed.

After each build, ``ensure_release`` prunes to ``default_max_size()`` (``HARNESS_CACHE_MAX_SIZE``,
default 20G), oldest unused first. Sizes count each inode once per environment, and the cap is
on their sum: uv hard-links files from its own cache into every environment, so the sum
overstates the disk use (``disk_use``), and those bytes are freed only with ``uv cache prune``.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

USE_SUFFIX = ".use"
BUILD_LOCK_SUFFIX = ".lock"
DEFAULT_MAX_SIZE = "20G"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)

#: environments this process holds: root -> open fd of its use file (closed at exit by the OS)
_held: dict[Path, int] = {}


@dataclass(frozen=True)
class CachedEnv:
    root: Path
    version: str
    size: int  # bytes on disk, each inode counted once
    last_used: float  # epoch seconds
    held: bool  # a running harness uses it, or it is being built


def parse_size(text: str) -> int:
    """``20G``, ``500M``, ``1.5T``, ``1024`` (bytes) -> bytes; raises HarnessError otherwise."""
    match = _SIZE.match(str(text))
    if not match:
        raise HarnessError(f"{text!r} is not a size: expected a number with an optional unit K, M, G or T (e.g. 20G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.1f}{unit}"
    return f"{size}B"


def default_max_size() -> int | None:
    """``HARNESS_CACHE_MAX_SIZE`` (``off`` disables the automatic prune), default 20G."""
    text = os.environ.get("HARNESS_CACHE_MAX_SIZE", DEFAULT_MAX_SIZE)
    return None if text.strip().lower() in ("off", "none", "") else parse_size(text)


def _use_path(root: Path) -> Path:
    return root.with_name(root.name + USE_SUFFIX)


def hold(root: Path) -> None:
    """Mark ``root`` in use by this process until it exits, and record the use."""
    if root in _held:
        os.utime(_held[root])
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_use_path(root), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a prune is removing this environment
    os.utime(fd)
    _held[root] = fd


def _lock_exclusive(path: Path, create: bool = True) -> int | None:
    """An fd holding ``path`` exclusively, or None when someone else holds it.

    With ``create=False`` a missing file counts as free (-1): probing must not create a use
    file, whose mtime would then read as a use."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _is_held(root: Path) -> bool:
    if root in _held:
        return True
    fds = [_lock_exclusive(root.with_name(root.name + s), create=False) for s in (USE_SUFFIX, BUILD_LOCK_SUFFIX)]
    for fd in fds:
        if fd is not None and fd >= 0:
            os.close(fd)
    return None in fds


def disk_size(root: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated under ``root``, each inode once (across calls sharing ``seen``)."""
    seen = set() if seen is None else seen
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def disk_use(envs_root: Path) -> int:
    """What the environments take on disk together: a file uv hard-linked into several counts once."""
    seen: set[tuple[int, int]] = set()
    return sum(disk_size(root, seen) for root in envs_root.iterdir() if root.is_dir()) if envs_root.is_dir() else 0


def _last_used(root: Path) -> float:
    for path in (_use_path(root), root / "harness-release.json", root):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return 0.0


def list_envs(envs_root: Path) -> list[CachedEnv]:
    """Every environment directory under ``envs_root``, oldest use first."""
    found = []
    if envs_root.is_dir():
        for root in envs_root.iterdir():
            if not root.is_dir() or not root.name.startswith("litellm-"):
                continue
            version = root.name[len("litellm-"):].rsplit("-", 1)[0]
            found.append(CachedEnv(root, version, disk_size(root), _last_used(root), _is_held(root)))
    return sorted(found, key=lambda e: (e.last_used, e.root.name))


def plan_prune(envs: list[CachedEnv], now: float, older_than: float | None = None,
               max_size: int | None = None) -> list[CachedEnv]:
    """Which environments to remove, oldest use first; held ones never.

    ``older_than`` (seconds): every unheld one last used longer ago. ``max_size`` (bytes): then
    the oldest unheld ones until the total is at most that (held ones still count in the total).
    """
    candidates = sorted((e for e in envs if not e.held), key=lambda e: (e.last_used, e.root.name))
    remove = [e for e in candidates if older_than is not None and now - e.last_used > older_than]
    if max_size is not None:
        total = sum(e.size for e in envs) - sum(e.size for e in remove)
        for env in candidates:
            if total <= max_size:
                break
            if env not in remove:
                remove.append(env)
                total -= env.size
    return sorted(remove, key=lambda e: (e.last_used, e.root.name))


def remove_env(env: CachedEnv) -> bool:
    """Remove one environment unless someone took it since it was listed; True if removed."""
    locks = []
    try:
        for suffix in (BUILD_LOCK_SUFFIX, USE_SUFFIX):
            fd = _lock_exclusive(env.root.with_name(env.root.name + suffix))
            if fd is None:
                return False
            locks.append(fd)
        # a rename first: a half-deleted environment is never mistaken for one to reuse
        trash = env.root.with_name(f".trash-{env.root.name}-{os.getpid()}")
        os.replace(env.root, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True
    except FileNotFoundError:
        return False
    finally:
        for fd in locks:
            os.close(fd)


def prune(envs_root: Path, older_than: float | None = None, max_size: int | None = None,
          dry_run: bool = False, now: float | None = None) -> list[CachedEnv]:
    """Apply :func:`plan_prune` to ``envs_root``; returns what was (or would be) removed."""
    plan = plan_prune(list_envs(envs_root), time.time() if now is None else now, older_than, max_size)
    if dry_run:
        return plan
    return [env for env in plan if remove_env(env)]
