"""A Docker engine for the container providers, through testcontainers and docker-py.

The engine is detected up front in at most ~2 s (testcontainers itself would fail in a
constructor, or wait 60 s on a socket that accepts but never answers). Containers carry
`io.litellm-harness.*` labels (role: "db", "redis") so the ones a killed run left behind are
removed at the next start.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

from .messages import first_line
from .processes import owner_alive, process_start_ticks, unregister_cleanup

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
LABEL = "io.litellm-harness"
LABEL_HOST = "io.litellm-harness.host"
LABEL_PID = "io.litellm-harness.pid"
LABEL_PID_START = "io.litellm-harness.pid-start"
PROBE_TIMEOUT = 2.0


def _read_tc_properties(path: Path | None = None) -> dict[str, str]:
    """~/.testcontainers.properties as testcontainers reads it (key=value lines)."""
    path = path or Path.home() / ".testcontainers.properties"
    props: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return props
    for line in text.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def _docker_context_host() -> str | None:
    """The host of the current non-default docker context (`docker context use ...`), if any."""
    try:
        from docker.context import ContextAPI

        ctx = ContextAPI.get_current_context()
    except Exception:  # noqa: BLE001 - a broken context config just means "no context"
        return None
    if ctx is None or not ctx.Host or ctx.Name == "default":
        return None
    return ctx.Host


def resolve_docker_host(env: dict[str, str] | None = None, properties_file: Path | None = None) -> tuple[str, str]:
    """(docker host URL, where it came from), in testcontainers' order:
    `tc.host` in ~/.testcontainers.properties, then DOCKER_HOST, then the docker context, then the default socket.
    """
    env = os.environ if env is None else env
    tc_host = _read_tc_properties(properties_file).get("tc.host")
    if tc_host:
        return tc_host, "tc.host in ~/.testcontainers.properties"
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"], "DOCKER_HOST"
    ctx = _docker_context_host()
    if ctx:
        return ctx, "docker context"
    return DEFAULT_DOCKER_HOST, "default socket"


def host_is_local(docker_host: str) -> bool:
    """True when published ports of the engine are reachable on this machine's loopback."""
    parsed = urllib.parse.urlparse(docker_host)
    if parsed.scheme in ("unix", "npipe", ""):
        return True
    return parsed.hostname in ("localhost", "127.0.0.1", "::1")


def engine_shares_our_network(docker_host: str) -> bool:
    """True when the engine behind a unix socket runs in this process's network namespace.

    Then ports it publishes on 127.0.0.1 are reachable here even when we run inside a
    container ourselves (/.dockerenv exists, e.g. a CI sandbox that starts its own dockerd).
    A socket mounted in from another host or namespace gives a peer pid of 0 (not visible
    here) or a different namespace: False.
    """
    parsed = urllib.parse.urlparse(docker_host)
    if parsed.scheme != "unix":
        return False
    try:
        import struct

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            sock.connect(parsed.path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
        return pid > 0 and os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except (OSError, AttributeError):  # no SO_PEERCRED (not Linux), or /proc not readable
        return False


def publishes_on_our_loopback(docker_host: str) -> bool:
    """Can we reach the engine's published ports on 127.0.0.1 (so publish on loopback only)?"""
    if not host_is_local(docker_host):
        return False
    try:
        from testcontainers.core.utils import inside_container
    except ImportError:  # pragma: no cover
        inside_container = lambda: False  # noqa: E731
    # inside a container, a unix socket usually belongs to the host's engine (socket mounted
    # in): its loopback is not ours, unless the engine runs in our own network namespace
    return not inside_container() or engine_shares_our_network(docker_host)


@dataclass(frozen=True)
class EngineProbe:
    ok: bool
    host: str
    source: str
    detail: str  # e.g. "socket missing", "no answer within 2 s", "Docker 27.1"

    def describe(self) -> str:
        if self.ok:
            return f"Docker engine answered at {self.host} ({self.detail})"
        return f"no Docker engine answered at {self.host} ({self.detail})"


def probe_engine(timeout: float = PROBE_TIMEOUT, env: dict[str, str] | None = None) -> EngineProbe:
    """Is a Docker engine answering? Never takes much longer than `timeout`."""
    host, source = resolve_docker_host(env)
    parsed = urllib.parse.urlparse(host)
    if parsed.scheme == "unix":
        path = parsed.path or host[len("unix://"):]
        if not os.path.exists(path):
            return EngineProbe(False, host, source, "socket missing")
        try:  # cheap pre-check: refuses at once when no daemon listens on a stale socket file
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(path)
        except OSError as exc:
            return EngineProbe(False, host, source, f"socket does not accept: {exc.strerror or exc}")

    result: list[EngineProbe] = []

    def ping() -> None:
        try:
            client = _docker_client(host, timeout=max(1, int(timeout)))
            try:
                client.ping()
                version = client.version().get("Version", "?")
            finally:
                client.close()
            result.append(EngineProbe(True, host, source, f"Docker {version}"))
        except Exception as exc:  # noqa: BLE001
            result.append(EngineProbe(False, host, source, first_line(exc)[:160]))

    thread = threading.Thread(target=ping, name="harness-docker-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.2)
    if not result:
        return EngineProbe(False, host, source, f"no answer within {timeout:g} s")
    return result[0]


def require_engine(option: str) -> EngineProbe:
    """The probe of an engine that answered, else the one-line error of `{option} container`
    (option: "--db", "--redis")."""
    probe = probe_engine()
    if not probe.ok:
        raise HarnessError(
            f"{option} container: {probe.describe()}",
            hint=("start dockerd (as root: scripts/docker-engine.sh start, then export the lines it prints), "
                  f"or set DOCKER_HOST / tc.host, or use {option} embedded"),
        )
    return probe


def _docker_client(host: str, timeout: int = 30):
    import docker

    kwargs = {"base_url": host, "timeout": timeout}
    if host.startswith("ssh://"):
        kwargs["use_ssh_client"] = True
    return docker.DockerClient(**kwargs)


def owner_labels(role: str) -> dict[str, str]:
    """Labels naming this process as a container's owner; `role` is "db" or "redis"."""
    return {
        LABEL: role,
        LABEL_HOST: socket.gethostname(),
        LABEL_PID: str(os.getpid()),
        LABEL_PID_START: str(process_start_ticks(os.getpid()) or ""),
    }


def remove_leftover_containers(client, role: str) -> list[str]:
    """Remove harness containers of `role` on this machine whose owning process is dead."""
    removed: list[str] = []
    me = socket.gethostname()
    for ctr in client.containers.list(all=True, filters={"label": f"{LABEL}={role}"}):
        labels = ctr.labels or {}
        if labels.get(LABEL_HOST) != me:
            continue
        try:
            pid = int(labels.get(LABEL_PID, "0"))
            start = int(labels[LABEL_PID_START]) if labels.get(LABEL_PID_START) else None
        except ValueError:
            pid, start = 0, None
        if owner_alive(pid, start):
            continue
        try:
            ctr.remove(force=True, v=True)
            removed.append(f"removed leftover container {ctr.short_id} of dead process {pid}")
        except Exception:  # noqa: BLE001 - already gone, or being removed by someone else
            pass
    return removed


def _disable_ryuk_unless_present(client) -> bool:
    """Disable Ryuk when its image is not present locally (no registry may be reachable).

    Returns True if Ryuk stays enabled.
    """
    from testcontainers.core.config import testcontainers_config as tc_config

    if tc_config.ryuk_disabled:
        return False
    import docker.errors

    try:
        client.images.get(tc_config.ryuk_image)
        return True
    except docker.errors.ImageNotFound:
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
        tc_config.ryuk_disabled = True
        return False
    except Exception:  # noqa: BLE001 - cannot tell: keep our own cleanup in charge
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
        tc_config.ryuk_disabled = True
        return False


def image_present(client, image: str) -> bool:
    import docker.errors

    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_image(client, image: str, *, what: str, env_var: str, fallback: str) -> None:
    """Pull the image when it is absent (engines that reach a registry), with a clear error otherwise.

    testcontainers would pull too, but its error says nothing about what to do instead.
    """
    if image_present(client, image):
        return
    try:
        client.images.pull(image)
    except Exception as exc:  # noqa: BLE001 - no registry, unknown image, no auth ...
        why = first_line(Exception(getattr(exc, "explanation", None) or exc))[:200]
        raise HarnessError(
            f"{what} image {image} is not present locally and could not be pulled: {why}",
            hint=("build one without a registry: run scripts/docker-engine.sh start (as root) and export the "
                  f"{env_var} it prints; or use {fallback}"),
        ) from None


def prepare_engine(probe: EngineProbe, role: str, image: str, *, what: str, env_var: str, fallback: str) -> tuple[list[str], bool]:
    """Before a container of `role` starts: point testcontainers at the probed engine, remove
    leftovers of dead runs, disable Ryuk unless its image is present, make sure `image` is there.
    Returns (what was cleaned, whether Ryuk stays enabled)."""
    host = probe.host
    if probe.source != "DOCKER_HOST" and host != DEFAULT_DOCKER_HOST:
        os.environ["DOCKER_HOST"] = host  # what testcontainers' DockerClient resolves, made explicit
    client = _docker_client(host)
    try:
        cleaned = remove_leftover_containers(client, role)
        ryuk = _disable_ryuk_unless_present(client)
        ensure_image(client, image, what=what, env_var=env_var, fallback=fallback)
    finally:
        client.close()
    return cleaned, ryuk


def image_present_at(host: str, image: str) -> bool:
    """Is `image` present in the engine at `host` (False when that cannot be told)?"""
    try:
        client = _docker_client(host)
        try:
            return image_present(client, image)
        finally:
            client.close()
    except Exception:  # noqa: BLE001
        return False


class OwnedContainer:
    """Mixin of the container providers (PostgreSQL, Redis): stopping and naming the
    testcontainers container they hold in `self._container`."""

    _container = None

    def stop(self) -> None:
        super().stop()
        unregister_cleanup(self)
        ctr, self._container = self._container, None
        if ctr is not None:
            try:
                ctr.stop()  # remove(force=True, v=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    @property
    def container_id(self) -> str | None:
        try:
            return self._container.get_container_id() if self._container is not None else None
        except Exception:  # noqa: BLE001
            return None
