"""Per-run folders of a local server, and the clean-up of those a dead run left behind.

Layout, under `harness.settings.runtime_dir()/<service>/` (e.g. `pg`, `redis`):
    .lock                      flock held while scanning / creating run folders
    <pid>-<rand>/owner.json    {"pid", "start_ticks", ...} of the owning harness process, first
                               thing in the folder; the provider adds what its clean-up needs
Whatever else a provider keeps there (PostgreSQL's binary mirrors) is not a run folder and is
left to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from harness import settings

from .processes import owner_alive, process_start_ticks

OWNER = "owner.json"
_RUN_FOLDER = re.compile(r"\d+-[0-9a-f]+")

#: stops the server a dead run left in `folder` (its owner.json as read, {} when broken) and says
#: what was cleaned, one line; the folder is removed afterwards
StopLeftover = Callable[[Path, dict], str]


def service_root(service: str) -> Path:
    """`runtime_dir()/service`, where that service's run folders live."""
    root = settings.runtime_dir() / service
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(root: Path):
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_owner(folder: Path, **extra) -> None:
    """Name this process as the owner of `folder`, with what the provider's clean-up needs."""
    owner = {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid()), **extra}
    (folder / OWNER).write_text(json.dumps(owner))


def claim_folder(root: Path, stop_leftover: StopLeftover, *, mode: int = 0o700) -> tuple[Path, list[str]]:
    """A new run folder of this process under `root` (owner.json first, under the lock), after
    removing the leftovers of dead runs: (folder, what was cleaned)."""
    with _locked(root):
        cleaned = _remove_dead(root, stop_leftover)
        folder = root / f"{os.getpid()}-{secrets.token_hex(4)}"
        folder.mkdir(mode=mode)
        folder.chmod(mode)  # whatever the umask
        write_owner(folder)
    return folder, cleaned


def _remove_dead(root: Path, stop_leftover: StopLeftover) -> list[str]:
    """Stop the servers of run folders whose owner is dead and remove the folders (lock held)."""
    cleaned: list[str] = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not _RUN_FOLDER.fullmatch(entry.name):
            continue
        try:
            owner = json.loads((entry / OWNER).read_text())
            if owner_alive(int(owner["pid"]), owner.get("start_ticks")):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            owner = {}  # created under the lock with owner.json first: no owner file = broken
        cleaned.append(stop_leftover(entry, owner))
        shutil.rmtree(entry, ignore_errors=True)
    return cleaned
