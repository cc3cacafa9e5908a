"""LiteLLM's Prisma client with no engine download.

prisma-client-py normally downloads Prisma's native query and schema engines from Prisma's
binary host. That host is unreachable here (and for air-gapped users), so the harness runs a
small Node "bridge" (``node/bridge.mjs``) that serves the native query engine's HTTP protocol
and delegates every request to Prisma's official WebAssembly query engine with the Postgres
driver adapter. ``ensure_engine()`` installs the bridge's npm dependencies once per bridge
version into the cache and returns the executables to point prisma-client-py at.

Layout of one built engine (``cache_dir()/engine/<hash>/``)::

    package.json package-lock.json *.mjs   copied from harness/engine/node/
    node_modules/                           npm ci --omit=dev
    bin/query-engine                        exec node bridge.mjs "$@"
    bin/schema-engine                       answers --version, fails otherwise
    .complete                               written last; a dir without it is rebuilt
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import settings
from harness.errors import HarnessError

__all__ = ["EngineInfo", "ensure_engine", "ENGINE_HASH", "NODE_DIR", "KINDS"]

#: The engine hash prisma 0.11.0 (Prisma CLI 5.4.2) expects; the bridge answers it to --version.
ENGINE_HASH = "ac9d7041ed77bcc8a8dbd2ab6616b39013829574"
#: Source of the bridge inside the harness package.
NODE_DIR = Path(__file__).resolve().parent / "node"
KINDS = ("auto", "wasm", "native")
KIND_ENV = "HARNESS_PRISMA_ENGINE"
MARKER = ".complete"
_NPM_TIMEOUT_S = 600


@dataclass(frozen=True)
class EngineInfo:
    """Which Prisma engine a release environment uses, and how to point prisma at it."""

    kind: str  # "wasm-bridge" or "native"
    query_engine: Path | None
    schema_engine: Path | None
    description: str  # one line for logs and reports

    def env(self) -> dict[str, str]:
        """Variables to add to the environment of anything that runs prisma / LiteLLM.

        They must stay set at run time too: prisma-client-py spawns the query engine from
        ``PRISMA_QUERY_ENGINE_BINARY`` each time a client connects.
        """
        if self.kind == "native":
            return {}
        env = {"PRISMA_HIDE_UPDATE_MESSAGE": "true"}
        if self.query_engine is not None:
            env["PRISMA_QUERY_ENGINE_BINARY"] = str(self.query_engine)
        if self.schema_engine is not None:
            env["PRISMA_SCHEMA_ENGINE_BINARY"] = str(self.schema_engine)
            # Prisma CLIs before 4.x/5.x called it the migration engine.
            env["PRISMA_MIGRATION_ENGINE_BINARY"] = str(self.schema_engine)
        return env


def ensure_engine(kind: str = "auto") -> EngineInfo:
    """Return the engine to use, building the wasm bridge into the cache on first use.

    ``kind="auto"`` reads ``HARNESS_PRISMA_ENGINE`` (auto|wasm|native); auto means the wasm
    bridge. ``native`` returns an EngineInfo with no binaries: prisma downloads its own.
    Safe to call from concurrent processes; a warm call only hashes a few small files.
    """
    chosen = _resolve_kind(kind)
    if chosen == "native":
        return EngineInfo(
            kind="native",
            query_engine=None,
            schema_engine=None,
            description="native Prisma engines (downloaded by prisma from Prisma's binary host)",
        )
    return _ensure_wasm_bridge()


# --------------------------------------------------------------------------------------------
# internals


def _resolve_kind(kind: str) -> str:
    value = (kind or "auto").strip().lower()
    if value == "auto":
        value = (os.environ.get(KIND_ENV) or "auto").strip().lower()
    if value in ("wasm", "wasm-bridge", "bridge", "auto"):
        return "wasm"
    if value == "native":
        return "native"
    raise HarnessError(
        f"unknown Prisma engine kind {kind if kind != 'auto' else os.environ.get(KIND_ENV)!r}",
        hint=f"set {KIND_ENV} to one of: auto, wasm, native",
    )


def _source_files() -> list[Path]:
    """Files that define one bridge build (their content decides the cache directory)."""
    files = [NODE_DIR / "package.json", NODE_DIR / "package-lock.json"]
    files += sorted(p for p in NODE_DIR.glob("*.mjs") if p.is_file())
    for f in files:
        if not f.is_file():
            raise HarnessError(f"the engine bridge source is incomplete: {f} is missing",
                               hint="reinstall the harness package")
    return files


def _build_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _bridge_versions() -> dict[str, str]:
    try:
        deps = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    except (OSError, ValueError, KeyError):
        return {}
    return {k: str(v) for k, v in deps.items()}


def _describe(node_version: str) -> str:
    qe = _bridge_versions().get("@prisma/query-engine-wasm", "?").split("-")[0]
    return f"prisma wasm query engine {qe} (harness bridge, node {node_version})"


def _which(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise HarnessError(
            f"`{tool}` was not found on PATH; the harness runs Prisma's wasm query engine under Node.js",
            hint="install Node.js >= 18 with npm (e.g. `apt-get install nodejs npm`), "
            "or set HARNESS_PRISMA_ENGINE=native if Prisma's binary host is reachable",
        )
    return path


def _ensure_wasm_bridge() -> EngineInfo:
    files = _source_files()
    build = _build_hash(files)
    root = settings.cache_dir() / "engine"
    target = root / build
    marker = target / MARKER

    info = _read_marker(marker)
    if info is not None:  # warm path: no lock, no subprocess
        _refresh_launchers(root)
        return _info_for(target, info)

    node = _which("node")
    npm = _which("npm")
    root.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock  # imported here: warm calls do not need it

    with FileLock(str(root / f"{build}.lock"), timeout=_NPM_TIMEOUT_S + 60):
        info = _read_marker(marker)
        if info is not None:  # another process finished it while we waited
            return _info_for(target, info)
        if target.exists():  # half-built by a process that died: start over
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for f in files:
            shutil.copy2(f, target / f.name)
        _run_npm_ci(npm, target)
        node_version = _node_version(node)
        bin_dir = target / "bin"
        bin_dir.mkdir()
        _write_exe(bin_dir / "query-engine", _query_engine_script(node, target))
        _write_exe(bin_dir / "schema-engine", _schema_engine_script())
        info = {"hash": build, "node": node, "node_version": node_version,
                "versions": _bridge_versions()}
        tmp = target / (MARKER + ".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, marker)  # last: marks the build complete
    return _info_for(target, info)


def _refresh_launchers(root: Path) -> None:
    """Every complete build's launcher, not only the current one's: a release environment's
    generated Prisma client names the build it was generated with (BINARY_PATHS) and runs that
    launcher's `--version` before each connect (Node started for it: 80 ms of a proxy start)."""
    for marker in root.glob(f"*/{MARKER}"):
        info = _read_marker(marker)
        if info is not None:
            _refresh_launcher(marker.parent, info)


def _refresh_launcher(target: Path, info: dict) -> None:
    """Rewrite bin/query-engine of a build made by an older harness when it differs (the launcher
    is not part of the build hash: a new one needs no new `npm ci`); replaced whole, atomically."""
    launcher = target / "bin" / "query-engine"
    wanted = _query_engine_script(str(info.get("node") or "node"), target)
    try:
        if launcher.read_text() == wanted:
            return
        part = launcher.with_name(f"query-engine.{os.getpid()}.tmp")
        _write_exe(part, wanted)
        os.replace(part, launcher)
    except OSError:
        pass  # a read-only cache keeps its working launcher


def _read_marker(marker: Path) -> dict | None:
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    bin_dir = marker.parent / "bin"
    if not (bin_dir / "query-engine").is_file() or not (bin_dir / "schema-engine").is_file():
        return None
    return info


def _info_for(target: Path, info: dict) -> EngineInfo:
    return EngineInfo(
        kind="wasm-bridge",
        query_engine=target / "bin" / "query-engine",
        schema_engine=target / "bin" / "schema-engine",
        description=_describe(str(info.get("node_version", "?"))),
    )


def _run_npm_ci(npm: str, cwd: Path) -> None:
    cmd = [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline"]
    env = dict(os.environ)
    env.setdefault("npm_config_update_notifier", "false")
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=_NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"`npm ci` for the Prisma engine bridge took over {_NPM_TIMEOUT_S}s",
                           hint="check that the npm registry (or your npm mirror) is reachable") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "ERR!" in ln and "A complete log" not in ln),
                      lines[-1] if lines else "no output")
        raise HarnessError(
            f"`npm ci` for the Prisma engine bridge failed in {cwd}: {detail.strip()}",
            hint="the npm registry (or an npm mirror set in ~/.npmrc) must be reachable once; "
            "later runs use the cache",
        )


def _node_version(node: str) -> str:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"`{node} --version` failed: {exc}", hint="check the Node.js install") from None
    version = out.stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if out.returncode != 0 or not major.isdigit():
        raise HarnessError(f"`{node} --version` failed: {out.stderr.strip() or version}",
                           hint="check the Node.js install")
    if int(major) < 18:
        raise HarnessError(f"Node.js {version} is too old for the Prisma wasm engine bridge",
                           hint="install Node.js >= 18")
    return version


def _sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _query_engine_script(node: str, target: Path) -> str:
    # prisma-client-py runs `query-engine --version` 2-3 times before every connect: answered
    # here, as the bridge would, without starting Node (0.24 s of every proxy's start-up)
    return (
        "#!/bin/sh\n"
        "# Prisma query engine for prisma-client-py: the harness's bridge on Prisma's wasm engine.\n"
        'case "$1" in\n'
        f'  --version|-V|version) echo "query-engine ${{PRISMA_EXPECTED_ENGINE_VERSION:-{ENGINE_HASH}}}"; exit 0 ;;\n'
        "esac\n"
        f"NODE={_sh_quote(node)}\n"
        '[ -x "$NODE" ] || NODE=node\n'
        f'exec "$NODE" {_sh_quote(str(target / "bridge.mjs"))} "$@"\n'
    )


def _schema_engine_script() -> str:
    return (
        "#!/bin/sh\n"
        "# Stand-in for Prisma's schema engine: enough for `prisma generate` (it asks --version).\n"
        'case "$1" in\n'
        f'  --version|-V) echo "schema-engine-cli {ENGINE_HASH}"; exit 0 ;;\n'
        "esac\n"
        'echo "litellm-harness: Prisma\'s schema engine is not available (no engine download);'
        ' migrate/db push do not work this way - the harness applies the schema from'
        ' litellm-proxy-extras migration SQL instead (args: $*)" >&2\n'
        "exit 1\n"
    )


def _write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)
