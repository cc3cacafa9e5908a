"""The real LiteLLM proxy of one release, as a child process the harness owns.

The proxy runs `harness/standalone/agent.py` with the release environment's python, forked
from the release's zygote (zygote.py): LiteLLM's own app under uvicorn on 127.0.0.1 and a free
port, a fresh master key, its own database clone. The harness talks to it with `requests`: the
proxy's public API for everything a user would do, and the agent's operations (control.py) for
the clock, the scheduled jobs and resets between scenarios.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any

import requests
import yaml

from ..errors import HarnessError
from ..services.processes import free_port, is_running
from .control import ProxyControl, post
from .settings import ProxySettings

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Far beyond any scenario: the scheduler is paused after start-up anyway, this closes the
# window between its start and the pause.
NEVER_S = 10**8
#: a second mock model priced by its output tokens only (the mock answers with 20 completion
#: tokens on every release, while releases count its prompt differently): 0.01 per call, so
#: `spend: {amount: X}` lands on X exactly. Input must cost more than 0, or budget checks are skipped.
#: It stays a mock under the fake provider too: `amount` puts an exact sum on the counters, and at
#: the fake provider its calls would take what a scenario tells that provider (an error `status`,
#: other token counts, a `hold` scripted for any model).
UNIT_MODEL = "harness-unit"
UNIT_MODEL_COSTS = {"input_cost_per_token": 1e-15, "output_cost_per_token": 0.0005}


def read_tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "r", errors="replace") as fh:
            return ANSI.sub("", "".join(deque(fh, maxlen=lines))).rstrip()
    except OSError:
        return "(no proxy log)"


#: how long a job run on demand may take: a release that resets 33,000 end users one row at a
#: time loses its Prisma requests to prisma-client-py's 30 s timeout three times over (LiteLLM's
#: retries) before the job ends, and the harness must hear that end to say why (EngineTimedOut)
RUN_JOB_TIMEOUT_S = 300.0


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


#: with `provider: fake`: the spend model and a second provider shape, both real provider models
#: at the fake provider. The spend model is priced like the mock (`model`'s per-token costs in its
#: litellm_params) unless `model.pricing: cost_map`; harness-claude always by LiteLLM's cost map
#: (claude-sonnet-4-5 is in the maps of 1.82.3..1.108.7 at least, not of 1.72.0: its calls cost 0)
FAKE_MODELS = {"openai": "openai/gpt-4o", "anthropic": "anthropic/claude-sonnet-4-5"}
FAKE_ANTHROPIC_MODEL = "harness-claude"
#: the name the fake provider knows the OpenAI pass-through routes' calls by (`provider: [{model}]`)
PASSTHROUGH_MODEL = "openai-passthrough"


def _fake_models(model, upstream, extra=()) -> list[dict[str, Any]]:
    """The models at the fake provider; each one's `api_base` names it, so that a step can script
    its calls alone (`spend: {provider: [{model: ...}]}`)."""
    def at(model_name: str, params: dict[str, Any], shape: str, info: dict[str, Any] | None = None) -> dict[str, Any]:
        entry = {"model_name": model_name, "litellm_params": {
            **params, "api_key": "sk-fake-provider", "api_base": upstream.base_for(model_name, shape)}}
        return {**entry, "model_info": info} if info else entry

    costs = ({"input_cost_per_token": model.input_cost_per_token, "output_cost_per_token": model.output_cost_per_token}
             if model.pricing == "per_token" else {})
    return [
        at(model.name, {"model": FAKE_MODELS["openai"], **costs}, "openai"),
        at(FAKE_ANTHROPIC_MODEL, {"model": FAKE_MODELS["anthropic"]}, "anthropic"),
        *(at(m.model_name, m.litellm(), m.shape, m.model_info) for m in extra),
    ]


def fake_model_names(settings: ProxySettings) -> list[str]:
    """The `model_name`s a `provider: fake` proxy serves from the fake provider."""
    return [settings.model.name, FAKE_ANTHROPIC_MODEL, *(m.model_name for m in settings.model_list)]


def proxy_config(settings: ProxySettings, upstream=None) -> dict[str, Any]:
    """The config file the proxy loads: real provider models at `upstream`, a
    harness.upstream.FakeProvider (or, with `provider: mock`, the mock model), the mock unit model,
    then the scenario's settings on top."""
    model = settings.model
    general = {
        "proxy_batch_write_at": NEVER_S,
        "proxy_budget_rescheduler_min_time": NEVER_S,
        "proxy_budget_rescheduler_max_time": NEVER_S,
        **settings.general_settings,
    }
    models = [
            {
                "model_name": model.name,
                "litellm_params": {
                    "model": f"openai/{model.name}",
                    "api_key": "not-used",
                    "mock_response": model.mock_response,
                    "input_cost_per_token": model.input_cost_per_token,
                    "output_cost_per_token": model.output_cost_per_token,
                },
            },
            {
                "model_name": UNIT_MODEL,
                "litellm_params": {
                    "model": f"openai/{UNIT_MODEL}",
                    "api_key": "not-used",
                    "mock_response": model.mock_response,
                    **UNIT_MODEL_COSTS,
                },
            },
        ]
    if settings.provider == "fake":
        if upstream is None:
            raise HarnessError("provider: fake needs the fake provider started (harness.upstream)")
        models = _fake_models(model, upstream, settings.model_list) + models[1:]
    config = {
        "model_list": models,
        "general_settings": general,
        "litellm_settings": dict(settings.litellm_settings),
    }
    if settings.router_settings:
        config["router_settings"] = dict(settings.router_settings)
    return config


def write_modules(settings: ProxySettings, run_dir: Path) -> list[Path]:
    """The scenario's modules as <name>.py in `run_dir`, next to the config: LiteLLM loads
    `custom_auth` and callbacks (`my_auth.fn`) from the config's folder. The names are plain
    identifiers (settings.ModuleName), so every file stays in the run folder."""
    paths = []
    for name, source in settings.modules.items():
        path = run_dir / f"{name}.py"
        if path.resolve().parent != run_dir.resolve():
            raise HarnessError(f"module {name!r} would be written outside the run folder")
        path.write_text(source)
        paths.append(path)
    return paths


def settings_key(settings: ProxySettings) -> str:
    """Scenarios whose settings give the same key can share one proxy."""
    return hashlib.sha256(json.dumps(settings.model_dump(), sort_keys=True).encode()).hexdigest()[:12]


#: in the release's environment, read by its zygotes (harness/standalone/agent.py WARM_IMPORTS)
WARM_IMPORTS = "harness-warm-imports.txt"
MAX_WARM_IMPORTS = 5000


def remember_lazy_imports(release_root: Path, modules: list[str]) -> None:
    """Merge `modules` into the release's warm-import list (written whole, then renamed: a reader
    sees the old list or the new one)."""
    path = release_root / WARM_IMPORTS
    try:
        known = path.read_text().split()
    except OSError:
        known = []
    seen = set(known)
    new = [m for m in modules if m not in seen and re.fullmatch(r"[A-Za-z_][\w.]*", m)]
    if not new or len(known) >= MAX_WARM_IMPORTS:
        return
    part = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        part.write_text("\n".join(known + new[: MAX_WARM_IMPORTS - len(known)]) + "\n")
        os.replace(part, path)
    except OSError:
        part.unlink(missing_ok=True)


def base_env(release) -> dict[str, str]:
    """What every proxy of a release shares (the zygote's environment, set before the import)."""
    env = release.env(dict(os.environ))
    env.update({
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "DISABLE_SCHEMA_UPDATE": "true",
        "PROXY_BATCH_WRITE_AT": str(NEVER_S),
        "PROXY_BUDGET_RESCHEDULER_MIN_TIME": str(NEVER_S),
        "PROXY_BUDGET_RESCHEDULER_MAX_TIME": str(NEVER_S),
        "PYTHONUNBUFFERED": "1",
    })
    return env


class ProxyTarget:
    """One proxy process, forked from the release's zygote. `start()`, `stop()`, `kill()`.

    Replicas of one deployment share the database and the master key (as a fleet does); each
    has its own port, config file, log and in-memory caches.
    """

    def __init__(self, zygote, database_url: str, settings: ProxySettings, run_dir: Path, operator=None,
                 name: str = "a", master_key: str | None = None, control_token: str | None = None):
        self.zygote = zygote
        self.release = zygote.release
        self.name = name
        self.operator = operator  # operator_config.OperatorConfig from --proxy-config, or None
        self.operator_notes: list[str] = []
        self.database_url = database_url
        self.settings = settings
        self.run_dir = run_dir
        self.master_key = master_key or "sk-harness-" + secrets.token_urlsafe(24)
        self.control_token = control_token or secrets.token_urlsafe(24)
        self.port = 0
        self.pid: int | None = None
        self.log_path = run_dir / "proxy.log"
        self.http = requests.Session()
        self.started_in_s: float | None = None
        #: the agent's operations on this proxy
        self.control = ProxyControl.of(name, self._call_agent)
        #: with `provider: fake`: the provider this replica's models call (harness.upstream)
        self.upstream = None

    # -- lifecycle ------------------------------------------------------------------------

    def passthrough_env(self) -> dict[str, str]:
        """With `provider: fake`: the OpenAI pass-through routes (`/openai/...`) reach the fake
        provider too, as model `PASSTHROUGH_MODEL` (the proxy reads these at each call)."""
        if self.upstream is None:
            return {}
        return {"OPENAI_API_BASE": self.upstream.base_for(PASSTHROUGH_MODEL, "anthropic"), "OPENAI_API_KEY": "sk-fake-provider"}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0, progress=None) -> None:
        """Fork the proxy (a new port on a restart) and wait until its agent answers."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.run_dir / "proxy_config.yaml"
        if self.settings.provider == "fake" and self.upstream is None:
            from ..upstream import Behaviour, FakeProvider

            self.upstream = FakeProvider(Behaviour(**self.settings.fake_provider.model_dump())).start()
        config = proxy_config(self.settings, self.upstream)
        if self.operator is not None:
            from .operator_config import merge

            mock = config["model_list"][0]["litellm_params"]
            config, self.operator_notes = merge(self.operator, config, {k: v for k, v in mock.items() if k != "model"})
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        write_modules(self.settings, self.run_dir)
        self.port = free_port()
        env = {
            "DATABASE_URL": self.database_url,
            "LITELLM_MASTER_KEY": self.master_key,
            "CONFIG_FILE_PATH": str(config_path),
            "HARNESS_PROXY_PORT": str(self.port),
            "HARNESS_CONTROL_TOKEN": self.control_token,
            **self.passthrough_env(),
            **self.settings.environment,
        }
        started = time.monotonic()
        self.http = requests.Session()
        # up when its agent answers, asked with a short timeout so the deadline below holds
        probe = ProxyControl.of(self.name, partial(post, self.http, self.base_url, self.control_token, timeout=2.0))
        self.pid = self.zygote.spawn(env, self.run_dir, self.log_path)
        deadline, last_note = started + timeout, started
        while True:
            if not self.alive:
                code = self.zygote.exit_code(self.pid)
                self.pid = None
                raise HarnessError(
                    f"the litellm {self.release.version} proxy exited with code {code} during start-up; "
                    f"last log lines:\n{self.log_tail(25)}"
                )
            try:
                probe.info()
                break
            except HarnessError:
                pass
            now = time.monotonic()
            if now > deadline:
                tail = self.log_tail(25)
                self.stop()
                raise HarnessError(
                    f"the litellm {self.release.version} proxy did not answer within {timeout:.0f}s; "
                    f"last log lines:\n{tail}"
                )
            if progress is not None and now - last_note > 10:
                progress(f"still waiting for the proxy ({now - started:.0f}s)")
                last_note = now
            time.sleep(0.01)  # a refused connection costs ~1 ms; the proxy is up within ~0.4 s
        self.started_in_s = time.monotonic() - started

    def stop(self, how: str = "term", grace: float = 10.0) -> str:
        """SIGTERM (then SIGKILL after `grace` s) or SIGKILL the proxy's process group.
        Returns "terminated", "killed" or "gone"."""
        pid, self.pid = self.pid, None
        self.http.close()
        if pid is None:
            self._stop_upstream()
            return "gone"
        outcome = "gone"
        try:
            if how == "term":
                os.killpg(pid, signal.SIGTERM)
                outcome = "terminated"
                if not _wait_gone(pid, grace):
                    outcome = "killed"
            else:
                outcome = "killed"
        except (ProcessLookupError, PermissionError):
            pass
        # The group can outlive its leader: LiteLLM 1.10x restarts its query engine when it
        # dies ("prisma-query-engine PID ... exited (waitpid thread); triggering reconnect"),
        # so the engine stopped by the SIGTERM above comes back, orphaned, as the proxy exits.
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _wait_gone(pid, 5)
        self._stop_upstream()
        return outcome

    def remember_lazy_imports(self) -> None:
        """Add what this replica imported after its fork to the release's warm-import list, which
        the next zygotes import before forking (agent.WARM_IMPORTS); best effort, never fails."""
        if not self.alive:
            return
        try:
            quick = ProxyControl.of(self.name, partial(post, self.http, self.base_url, self.control_token, timeout=0.5))
            modules = quick.lazy_imports()
        except (HarnessError, KeyError, TypeError):
            return
        root = getattr(self.release, "root", None)
        if root is not None:
            remember_lazy_imports(Path(root), modules)

    def _stop_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.stop()  # ends every held request too

    def __enter__(self) -> "ProxyTarget":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return self.pid is not None and is_running(self.pid)

    # -- talking to it --------------------------------------------------------------------

    def _call_agent(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        return post(self.http, self.base_url, self.control_token, op, body,
                    timeout=RUN_JOB_TIMEOUT_S if op == "run-job" else 120.0)

    def api(
        self, method: str, path: str, *, key: str | None = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {key or self.master_key}", **(headers or {})}
        try:
            return self.http.request(method, f"{self.base_url}{path}", headers=headers, timeout=60, **kwargs)
        except requests.RequestException as exc:
            raise HarnessError(f"{method} {path} got no answer from the proxy: {exc}") from None

    unit_model = UNIT_MODEL

    def chat(
        self, key: str, end_user: str | None = None, *, tags: list[str] | None = None, model: str | None = None,
        fresh_connection: bool = False, stream: bool = False, cancel_after_chunks: int | None = None,
    ) -> requests.Response:
        """One chat completion. With `stream`, the events are read (the response's `chunks` says
        how many); with `cancel_after_chunks`, the connection closes after that many (the client
        goes away mid-stream)."""
        body: dict[str, Any] = {
            "model": model or self.settings.model.name,
            "messages": [{"role": "user", "content": "harness"}],
        }
        if end_user is not None:
            body["user"] = end_user
        if tags:
            body["metadata"] = {"tags": tags}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            return self._stream(key, body, cancel_after_chunks)
        if fresh_connection:  # concurrent callers: a Session is not shared between threads
            try:
                return requests.post(f"{self.base_url}/chat/completions", json=body, timeout=60,
                                     headers={"Authorization": f"Bearer {key}"})
            except requests.RequestException as exc:
                raise HarnessError(f"POST /chat/completions got no answer from the proxy: {exc}") from None
        return self.api("POST", "/chat/completions", key=key, json=body)

    def _stream(self, key: str, body: dict[str, Any], cancel_after: int | None) -> requests.Response:
        try:  # its own connection: a cancelled stream leaves it unusable
            resp = requests.post(f"{self.base_url}/chat/completions", json=body, timeout=60, stream=True,
                                 headers={"Authorization": f"Bearer {key}"})
            resp.chunks = 0  # type: ignore[attr-defined]
            if not resp.ok:
                resp.content  # read the error body, then the connection is closed
                return resp
            with resp:
                for line in resp.iter_lines():
                    if line.startswith(b"data:") and line.strip() != b"data: [DONE]":
                        resp.chunks += 1  # type: ignore[attr-defined]
                        if cancel_after is not None and resp.chunks >= cancel_after:
                            break  # leaving `with` closes the socket: the client disconnects
            resp._content = b""  # consumed; .text of a stream is not its events
            return resp
        except requests.RequestException as exc:
            raise HarnessError(f"POST /chat/completions (stream) got no answer from the proxy: {exc}") from None

    def log_tail(self, lines: int = 40) -> str:
        return read_tail(self.log_path, lines)

    def secrets(self) -> list[str]:
        return [self.master_key, self.control_token, *(self.operator.secrets if self.operator else ())]
