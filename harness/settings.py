"""Where the harness keeps things, read from the environment when asked (never at import)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of every cache: release environments, the engine's node_modules, built images."""
    root = os.environ.get("HARNESS_CACHE_DIR")
    path = Path(root) if root else Path.home() / ".cache" / "litellm-harness"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runtime_dir() -> Path:
    """Per-machine scratch for live servers (embedded PostgreSQL data, pid files)."""
    root = os.environ.get("HARNESS_RUNTIME_DIR")
    path = Path(root) if root else Path(os.environ.get("TMPDIR", "/tmp")) / f"litellm-harness-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path
