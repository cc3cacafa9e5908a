"""One cached uv environment per LiteLLM release, with LiteLLM's Prisma client generated.

Layout (``cache_dir()/envs/``)::

    litellm-<V>-<key12>/          the venv (bin/, lib/pythonX.Y/site-packages/ ...)
    litellm-<V>-<key12>/harness-release.json   marker, written LAST: pins, engine, timings
    litellm-<V>-<key12>.lock      filelock serialising builds of that key across processes

``key12`` hashes everything that changes the result: the litellm version, the harness's python
(path and version), the resolved prisma and litellm-proxy-extras pins, the freezegun pin,
``RECIPE_VERSION`` and the Prisma engine (kind and description: ``prisma generate`` records the
engine path in the generated client; at run time ``ReleaseEnv.env()`` sets
``PRISMA_QUERY_ENGINE_BINARY``, which takes precedence).

Pins come from the release's own wheel METADATA (see ``index.resolve_pins``): prisma = newest
inside litellm's ``extra-proxy`` range; litellm-proxy-extras = the lower bound of litellm's
range (the extras the release was cut with), falling back to the newest extras uploaded before
the litellm wheel when the range has no lower bound.

Warm path: an existing env for the version whose marker matches the current python, recipe,
freezegun pin and engine is reused WITHOUT asking the index (its pins were resolved when it was
built) and without running any subprocess: only files are stat'ed. A dir without a valid marker
is removed and rebuilt under the lock; the import check of the generated client runs at build
time, before the marker is written (``check_release`` re-runs it on demand).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from packaging.version import Version

from harness.engine import EngineInfo, ensure_engine
from harness.errors import HarnessError, ReleaseUnavailable
from harness.releases import cache, index
from harness.releases.policy import DENYLIST, FREEZEGUN_PIN, dependency_caps
from harness.settings import cache_dir

Progress = Callable[[str], None] | None

#: Bump when the way an environment is built changes (forces a rebuild of every env).
RECIPE_VERSION = 3  # 2: bytecode compiled at build time; 3: recursive client types
MARKER_NAME = "harness-release.json"
MARKER_FORMAT = 1
INSTALL_TIMEOUT_S = 1200
GENERATE_TIMEOUT_S = 600
CHECK_TIMEOUT_S = 300
LOCK_TIMEOUT_S = INSTALL_TIMEOUT_S + GENERATE_TIMEOUT_S + CHECK_TIMEOUT_S + 120


@dataclass(frozen=True)
class ReleaseEnv:
    """A ready environment for one LiteLLM release (venv + generated Prisma client)."""

    version: str
    root: Path
    python: Path
    bin_dir: Path
    site_packages: Path
    litellm_dir: Path
    schema_prisma: Path
    migrations_dir: Path  # litellm_proxy_extras/migrations ("" extras: may not exist)
    extras_version: str  # "" when the release has no litellm-proxy-extras requirement
    prisma_version: str
    engine: EngineInfo
    marker: dict = field(default_factory=dict, compare=False, repr=False)

    def env(self, base: dict | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) with the venv first on PATH and the engine's variables."""
        env = dict(os.environ if base is None else base)
        env.pop("PYTHONHOME", None)
        env.pop("CONDA_PREFIX", None)
        path = env.get("PATH", "")
        env["PATH"] = str(self.bin_dir) + (os.pathsep + path if path else "")
        env["VIRTUAL_ENV"] = str(self.root)
        env["PRISMA_HIDE_UPDATE_MESSAGE"] = "true"
        env.update(self.engine.env())
        return env


# --------------------------------------------------------------------------------------------
# public entry point


def ensure_release(version: str, progress: Progress = None) -> ReleaseEnv:
    """Return the environment of litellm ``version``, building and caching it on first use."""
    say = progress or (lambda _line: None)
    v = str(index.parse_version(version))
    if v in DENYLIST:
        raise ReleaseUnavailable(f"litellm {v} is refused: {DENYLIST[v]}")
    engine = ensure_engine()
    envs_root = cache_dir() / "envs"

    found = _find_ready(envs_root, v, engine)  # warm path: files only
    if found is not None:
        cache.hold(found.root)  # from here on no prune removes it; it may have just before:
        if _valid_marker(found.root) is not None:
            return found

    pins = _resolve_pins(v)
    inputs = _key_inputs(v, pins.prisma, pins.extras, engine)
    key = _key(inputs)
    root = envs_root / f"litellm-{v}-{key}"
    envs_root.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock, Timeout

    lock = FileLock(str(envs_root / f"litellm-{v}-{key}.lock"))
    try:
        lock.acquire(timeout=5)
    except Timeout:
        say(f"waiting for another process building litellm {v}")
        try:
            lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout:
            raise HarnessError(f"timed out waiting for the build lock of {root}") from None
    try:
        cache.hold(root)
        marker = _valid_marker(root, inputs)
        if marker is not None:
            return release_env_from(root, marker, engine)
        if root.exists():
            say(f"removing incomplete environment {root.name}")
            shutil.rmtree(root)
        marker = _build(root, v, pins, inputs, engine, say)
    finally:
        lock.release()
    _prune_to_default_cap(envs_root, say)
    return release_env_from(root, marker, engine)


def _prune_to_default_cap(envs_root: Path, say) -> None:
    """Keep the cache under its default cap after a build, oldest unused environment first."""
    try:
        cap = cache.default_max_size()
        if cap is None:
            return
        for env in cache.prune(envs_root, max_size=cap):
            say(f"cache over {cache.format_size(cap)}: removed litellm {env.version} "
                f"({cache.format_size(env.size)}, unused the longest)")
    except (OSError, HarnessError) as exc:  # a full or odd cache must not fail the run that built
        say(f"cache prune skipped: {exc}")


def check_release(env: ReleaseEnv) -> dict:
    """Run the (slow, ~1-5 s) import check inside ``env``; returns the installed versions."""
    return _verify(env.python, env.env(), expect=None)


# --------------------------------------------------------------------------------------------
# cache keys and markers


def _python_identity() -> dict:
    return {
        "executable": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "implementation": sys.implementation.name,
    }


def _engine_identity(engine: EngineInfo) -> dict:
    return {"kind": engine.kind, "description": engine.description}


def _key_inputs(version: str, prisma: str, extras: str, engine: EngineInfo) -> dict:
    caps = dependency_caps(version)
    return {
        **({"caps": caps} if caps else {}),
        "litellm": version,
        "prisma": prisma,
        "litellm-proxy-extras": extras,
        "freezegun": FREEZEGUN_PIN,
        "recipe": RECIPE_VERSION,
        "python": _python_identity(),
        "engine": _engine_identity(engine),
    }


def _key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def _pyver_dir() -> str:
    return f"python{sys.version_info[0]}.{sys.version_info[1]}"


def _layout(root: Path) -> dict[str, Path]:
    sp = root / "lib" / _pyver_dir() / "site-packages"
    return {
        "python": root / "bin" / "python",
        "bin_dir": root / "bin",
        "site_packages": sp,
        "litellm_dir": sp / "litellm",
        "schema_prisma": sp / "litellm" / "proxy" / "schema.prisma",
        "migrations_dir": sp / "litellm_proxy_extras" / "migrations",
        "client": sp / "prisma" / "client.py",
    }


def _valid_marker(root: Path, inputs: dict | None = None) -> dict | None:
    """The marker of ``root`` if the env is complete (cheap: reads one file, stats a few)."""
    try:
        marker = json.loads((root / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        return None
    got = marker.get("inputs")
    if not isinstance(got, dict) or root.name != f"litellm-{got.get('litellm')}-{_key(got)}":
        return None
    if inputs is not None and got != inputs:
        return None
    lay = _layout(root)
    # the venv's python is a symlink to the harness's interpreter: exists() follows it
    for name in ("python", "schema_prisma", "client"):
        if not lay[name].exists():
            return None
    if marker.get("pins", {}).get("litellm-proxy-extras") and not lay["migrations_dir"].is_dir():
        return None
    return marker


def _find_ready(envs_root: Path, version: str, engine: EngineInfo) -> ReleaseEnv | None:
    """A complete env of ``version`` built for this python/recipe/engine, newest first."""
    if not envs_root.is_dir():
        return None
    want = {k: v for k, v in _key_inputs(version, "", "", engine).items()
            if k not in ("prisma", "litellm-proxy-extras")}
    candidates = []
    for root in envs_root.glob(f"litellm-{version}-*"):
        if not root.is_dir():
            continue
        marker = _valid_marker(root)
        if marker is None:
            continue
        got = {k: v for k, v in marker["inputs"].items() if k not in ("prisma", "litellm-proxy-extras")}
        if got == want:
            candidates.append((marker.get("created_at", ""), root, marker))
    if not candidates:
        return None
    candidates.sort(key=lambda c: c[0], reverse=True)
    _, root, marker = candidates[0]
    return release_env_from(root, marker, engine)


def release_env_from(root: Path, marker: dict, engine: EngineInfo) -> ReleaseEnv:
    lay = _layout(root)
    pins = marker["pins"]
    return ReleaseEnv(
        version=pins["litellm"],
        root=root,
        python=lay["python"],
        bin_dir=lay["bin_dir"],
        site_packages=lay["site_packages"],
        litellm_dir=lay["litellm_dir"],
        schema_prisma=lay["schema_prisma"],
        migrations_dir=lay["migrations_dir"],
        extras_version=pins["litellm-proxy-extras"],
        prisma_version=pins["prisma"],
        engine=engine,
        marker=marker,
    )


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# building


def _resolve_pins(version: str):
    if Version(version) not in set(index.published_versions("litellm", include_prereleases=True)):
        near = ", ".join(str(x) for x in index.nearby(version, 3))
        raise ReleaseUnavailable(f"litellm {version} is not on the package index; nearby: {near}")
    return index.resolve_pins(version)


def uv_command() -> list[str]:
    try:
        import uv

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return [found]
    raise HarnessError("uv is not installed in the harness's python", hint="pip install uv")


def uv_env() -> dict[str, str]:
    env = dict(os.environ)
    env["UV_NO_PROGRESS"] = "1"
    if _cross_device_uv_cache():
        env.setdefault("UV_LINK_MODE", "copy")  # hardlinks cannot cross filesystems
    if index.index_url() != index.DEFAULT_INDEX:
        env.setdefault("UV_INDEX_URL", index.index_url())  # follow PIP_INDEX_URL as the harness does
    env.pop("VIRTUAL_ENV", None)
    return env


def _cross_device_uv_cache() -> bool:
    """True when uv's cache and our envs are on different filesystems (hardlinks would fail)."""
    try:
        uv_cache = Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")
        uv_cache.mkdir(parents=True, exist_ok=True)
        return uv_cache.stat().st_dev != cache_dir().stat().st_dev
    except OSError:
        return True


def decisive_uv_line(output: str) -> str:
    """The line of uv's output that says why it failed (``cause:`` / ``╰─▶`` / ``error:``)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for marker in ("cause:", "╰─▶", "Caused by:"):
        for ln in lines:
            if ln.startswith(marker):
                text = ln[len(marker):].strip()
                if text:
                    return text
    for ln in lines:
        if ln.startswith("error:") or ln.startswith("×"):
            return ln.split(":", 1)[-1].strip() if ln.startswith("error:") else ln.lstrip("× ").strip()
    return lines[-1] if lines else "no output"


def _run_streaming(cmd: list[str], env: dict, timeout: float, say, forward) -> tuple[int, str]:
    """Run ``cmd``; lines for which ``forward(line)`` is true go to ``say``. Returns (rc, output)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, cwd=str(cache_dir()))
    out: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)
        if forward(line):
            say("  " + line.strip())
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise HarnessError(f"`{' '.join(cmd[:3])} ...` took over {timeout:.0f}s")
    return proc.wait(), "".join(out)


def _build(root: Path, version: str, pins, inputs: dict, engine: EngineInfo, say) -> dict:
    timings: dict[str, float] = {}
    t_all = time.monotonic()
    extras_desc = f", litellm-proxy-extras {pins.extras}" if pins.extras else ""
    say(f"creating environment for litellm {version} (prisma {pins.prisma}{extras_desc})")
    try:
        as_of = None
        problem = _build_once(root, version, pins, engine, say, timings, as_of)
        if problem is not None:
            # The release's dependencies resolved today (unbounded fastapi, say) no longer import
            # with it: resolve them as they were when the release was published.
            as_of = _release_day_end(version)
            say(f"litellm {version}'s proxy does not import with today's dependencies ({problem}); "
                f"rebuilding with dependencies as of {as_of}")
            shutil.rmtree(root)
            problem = _build_once(root, version, pins, engine, say, timings, as_of)
            if problem is not None:
                raise ReleaseUnavailable(f"litellm {version} cannot be installed in a working state: its proxy "
                                         f"does not import, also with dependencies as of {as_of}: {problem}")
        installed = timings.pop("_installed")
        timings["total_s"] = round(time.monotonic() - t_all, 3)

        marker = {
            "format": MARKER_FORMAT,
            "inputs": inputs,
            "pins": {"litellm": version, "prisma": pins.prisma, "litellm-proxy-extras": pins.extras,
                     "freezegun": FREEZEGUN_PIN},
            "declared": {"prisma": pins.prisma_spec, "litellm-proxy-extras": pins.extras_spec,
                         "extras_rule": pins.extras_rule},
            "dependencies_as_of": as_of,
            "installed": installed["versions"],
            "engine": {"kind": engine.kind, "description": engine.description,
                       "query_engine": str(engine.query_engine or ""),
                       "schema_engine": str(engine.schema_engine or "")},
            "timings": timings,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "built_by_pid": os.getpid(),
        }
        write_json_atomic(root / MARKER_NAME, marker)  # LAST: marks the env complete
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    say(f"litellm {version} ready in {timings['total_s']:.1f}s")
    return marker


def _release_day_end(version: str) -> str:
    """The end of the day the litellm wheel was uploaded (UTC), for ``uv --exclude-newer``."""
    uploaded = index.upload_times("litellm").get(Version(version))
    if uploaded is None:
        raise HarnessError(f"the package index gives no upload time for litellm {version}")
    return uploaded.astimezone(timezone.utc).strftime("%Y-%m-%dT23:59:59Z")


#: checked at build time: the proxy module imports (the agent imports it the same way)
_PROXY_IMPORT = "import litellm.proxy.proxy_server"


def _build_once(root: Path, version: str, pins, engine: EngineInfo, say, timings: dict,
                as_of: str | None) -> str | None:
    """Venv, install, generate, checks; None when the proxy module imports, else why not."""
    lay = _layout(root)
    uv = uv_command()
    uenv = uv_env()
    t = time.monotonic()
    proc = subprocess.run(uv + ["venv", "--quiet", "--python", sys.executable, str(root)],
                          env=uenv, capture_output=True, text=True, timeout=300, cwd=str(cache_dir()))
    if proc.returncode != 0:
        raise HarnessError(f"uv venv failed for litellm {version}: "
                           f"{decisive_uv_line(proc.stderr + proc.stdout)}")
    timings["venv_s"] = round(time.monotonic() - t, 3)

    reqs = [f"litellm[proxy]=={version}", f"prisma=={pins.prisma}"]
    if pins.extras:
        reqs.append(f"litellm-proxy-extras=={pins.extras}")
    elif pins.extras_spec:  # declared but nothing published matches: let uv say why
        reqs.append(f"litellm-proxy-extras{pins.extras_spec}")
    reqs.append(f"freezegun=={FREEZEGUN_PIN}")
    reqs += dependency_caps(version)
    say("installing " + " ".join(reqs))
    t = time.monotonic()
    rc, out = _run_streaming(
        # --compile-bytecode: PYTHONDONTWRITEBYTECODE=1 is common on CI/dev machines, and
        # then every import of litellm.proxy compiles from source (~3x slower proxy start)
        uv + ["pip", "install", "--compile-bytecode", "--python", str(lay["python"]), *_as_of_args(as_of, reqs), *reqs],
        uenv, INSTALL_TIMEOUT_S,
        say, lambda ln: ln.lstrip().startswith(("Resolved", "Prepared", "Installed", "Downloading")),
    )
    if rc != 0:
        raise ReleaseUnavailable(f"litellm {version} cannot be installed: {decisive_uv_line(out)}")
    timings["install_s"] = round(time.monotonic() - t, 3)
    if not lay["schema_prisma"].is_file():
        raise ReleaseUnavailable(f"litellm {version} ships no {lay['schema_prisma'].relative_to(root)}")

    say("generating Prisma client")
    t = time.monotonic()
    renv = release_env_from(root, {"pins": {"litellm": version, "prisma": pins.prisma,
                                        "litellm-proxy-extras": pins.extras}}, engine)
    generate(renv, compile_bytecode=False)
    timings["generate_s"] = round(time.monotonic() - t, 3)
    say("compiling the generated client")
    t = time.monotonic()
    compile_client(renv)
    timings["compile_client_s"] = round(time.monotonic() - t, 3)

    say("checking the generated client imports")
    t = time.monotonic()
    installed = _verify(lay["python"], renv.env(), expect={
        "litellm": version, "prisma": pins.prisma,
        **({"litellm-proxy-extras": pins.extras} if pins.extras else {}),
        "freezegun": FREEZEGUN_PIN,
    })
    if installed.get("site_packages") != str(lay["site_packages"]):
        raise HarnessError(f"unexpected site-packages {installed.get('site_packages')} in {root}")
    timings["check_s"] = round(time.monotonic() - t, 3)
    timings["_installed"] = installed
    say("checking the proxy imports")
    t = time.monotonic()
    proc = subprocess.run([str(lay["python"]), "-c", _PROXY_IMPORT], env={**renv.env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
                          capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, cwd=str(root))
    timings["proxy_import_s"] = round(time.monotonic() - t, 3)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit {proc.returncode}"
    return None


def _as_of_args(as_of: str | None, reqs: list[str]) -> list[str]:
    """Exclude what was uploaded after ``as_of``, except the packages pinned exactly."""
    if as_of is None:
        return []
    args = ["--exclude-newer", as_of]
    for req in reqs:
        if "==" in req:
            name = req.split("==")[0].split("[")[0]
            args += ["--exclude-newer-package", f"{name}=2100-01-01T00:00:00Z"]
    return args




def generate(env: ReleaseEnv, compile_bytecode: bool = True) -> float:
    """Run ``prisma generate`` on LiteLLM's schema inside ``env``; returns the seconds it took.

    Note: every ``prisma`` CLI call imports the ``prisma`` package, which imports the generated
    client when there is one (17 MB of ``types.py`` for LiteLLM's schema): re-generating into an
    env that already has a client is much slower than the first generate of a build.
    """
    prisma = env.bin_dir / "prisma"
    if not prisma.exists():
        raise HarnessError(f"{prisma} is missing: prisma is not installed in {env.root}")
    t = time.monotonic()
    try:
        # Recursive TypedDicts instead of types unrolled 5 levels deep: types.py shrinks from
        # 17 MB to 4 MB and the proxy imports it ~4x faster. Only static typing changes; the
        # client's runtime code and queries are the same.
        gen_env = {**env.env(), "PRISMA_PY_CONFIG_RECURSIVE_TYPE_DEPTH": "-1"}
        proc = subprocess.run([str(prisma), "generate", "--schema", str(env.schema_prisma)],
                              env=gen_env, capture_output=True, text=True, cwd=str(env.root),
                              timeout=GENERATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"prisma generate for litellm {env.version} took over {GENERATE_TIMEOUT_S}s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "rror" in ln), lines[-1] if lines else "no output")
        raise HarnessError(f"prisma generate failed for litellm {env.version}: {detail}")
    if compile_bytecode:
        compile_client(env)
    return time.monotonic() - t


def compile_client(env: ReleaseEnv) -> None:
    """Write the generated client's bytecode (its import drops from ~8 s to ~4 s)."""
    proc = subprocess.run([str(env.python), "-m", "compileall", "-q", "-j", "0",
                           str(env.site_packages / "prisma")],
                          env=env.env(), capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        raise HarnessError(f"compiling the generated Prisma client failed in {env.root}: "
                           f"{lines[-1] if lines else 'exit ' + str(proc.returncode)}")


_CHECK = r"""
import json, sysconfig
from importlib.metadata import version
import prisma
from prisma import Prisma
names = ["litellm", "prisma", "litellm-proxy-extras", "freezegun"]
vs = {}
for n in names:
    try:
        vs[n] = version(n)
    except Exception:
        vs[n] = ""
print(json.dumps({"versions": vs, "site_packages": sysconfig.get_paths()["purelib"]}))
"""


def _verify(python: Path, env: dict, expect: dict | None) -> dict:
    try:
        proc = subprocess.run([str(python), "-c", _CHECK], env=env, capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"importing the generated Prisma client in {python.parent.parent} hung") from None
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise HarnessError(f"the generated Prisma client does not import in {python.parent.parent}: "
                           f"{last[-1] if last else 'exit ' + str(proc.returncode)}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, want in (expect or {}).items():
        got = data["versions"].get(name)
        if got != want:
            raise HarnessError(f"{name} {got or '(missing)'} installed where {want} was pinned "
                               f"in {python.parent.parent}")
    return data
