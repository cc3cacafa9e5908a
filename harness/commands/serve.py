"""`serve --litellm V [...]`: one live deployment of a release, to drive by hand or from any HTTP
test suite, until Ctrl-C or `ctl stop`.

It is a scenario run that does not end: the deployment comes from the options (or `--scenario`,
whose steps run first, up to `--until-line`), and `ctl` sends it more steps, which run through
the same `ReleaseSession`, `ScenarioRun` and step code as every scenario (`harness.steps`).
The control address is loopback only and needs a token; both are in a 0600 file under the
runtime dir, where `ctl` finds them.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .. import options
from ..errors import HarnessError, ScenarioError
from ..faults.injectors import INJECTORS
from ..proxy.settings import Deployment, ProxySettings
from ..scenario import load
from ..scenario.model import Metadata, Scenario
from ..settings import runtime_dir
from .common import add_shared, check_versions, load_all

HELP = "start one live deployment of a release (URLs, master key, a control address for `ctl`)"

#: the Redis wiring a served deployment gets when --redis is given without --redis-via
DEFAULT_VIA = "cache"


def info_path() -> Path:
    """Where a running `serve` writes its connection info (one serve per user and runtime dir)."""
    return runtime_dir() / "serve.json"


def add_arguments(parser) -> None:
    parser.add_argument("--litellm", "--litellm-version", dest="litellm", metavar="VERSION", required=True,
                        help="the LiteLLM release to serve")
    parser.add_argument("--replicas", metavar="NAMES", help="replica names, comma-separated (default: a)")
    parser.add_argument("--redis", metavar="KIND|URL", help="give the deployment a Redis: embedded, container, auto, "
                        "or a redis:// URL (default: none, or what --scenario's deployment says)")
    parser.add_argument("--redis-via", choices=("cache", "coordination", "env"), default=None,
                        help=f"how the proxy finds the Redis (default: {DEFAULT_VIA})")
    add_shared(parser, ("db", "db_url", "at", "proxy_config"))
    parser.add_argument("--scenario", metavar="FILE", help="start from this scenario's deployment and state")
    parser.add_argument("--until-line", type=int, metavar="N", help="with --scenario: run its steps up to line N only")


def _replicas(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise HarnessError(f"--replicas {text!r}: write replica names separated by commas, e.g. a,b")
    return names


def _redis_choice(text: str | None) -> tuple[str | None, str | None]:
    """(provider kind, URL) of --redis."""
    if text is None:
        return None, None
    if "://" in text:
        return "url", text
    if text not in options.REDIS_KINDS:
        raise HarnessError(f"--redis {text!r}: use one of {', '.join(options.REDIS_KINDS)} or a redis:// URL")
    return text, None


def base_scenario(args, console) -> tuple[Scenario, dict[str, Any]]:
    """The served scenario and its raw file content (the steps `ctl step` appends to)."""
    if args.until_line is not None and not args.scenario:
        raise HarnessError("--until-line needs --scenario FILE")
    if args.scenario:
        scenarios, errors = load_all([args.scenario], console)
        if errors:
            raise HarnessError(f"--scenario {args.scenario} is not a valid scenario")
        scenario = scenarios[0]
        raw = yaml.safe_load(Path(args.scenario).read_text()) or {}
        raw_steps = list(raw.get("steps") or [])
        if args.until_line is not None:
            kept = [i for i, p in enumerate(scenario.steps) if p.line <= args.until_line]
            scenario = scenario.model_copy(update={"steps": tuple(scenario.steps[i] for i in kept)})
            raw_steps = [raw_steps[i] for i in kept]
        raw = {"proxy": raw.get("proxy"), "deployment": raw.get("deployment"), "steps": raw_steps}
    else:
        scenario = Scenario(path="(serve)", meta=Metadata(name="serve"), proxy=ProxySettings(), steps=())
        raw = {"proxy": None, "deployment": None, "steps": []}
    names = _replicas(args.replicas)
    deployment = scenario.deployment.model_dump(mode="json", exclude_defaults=True)
    if names is not None:
        deployment["replicas"] = names
    if args.redis is not None or args.redis_via is not None:
        deployment["redis"] = args.redis_via or (DEFAULT_VIA if scenario.deployment.redis == "none"
                                                 else scenario.deployment.redis)
    try:
        checked = Deployment.model_validate(deployment)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "deployment"
        raise HarnessError(f"--replicas/--redis ({where}): {error['msg'].removeprefix('Value error, ')}") from None
    raw["deployment"] = checked.model_dump(mode="json")
    return scenario.model_copy(update={"deployment": checked}), raw


class Served:
    """The live run `ctl` drives: steps are parsed by the scenario loader against everything run
    so far (so names and `${name.field}` references resolve as in a file) and executed one at a time."""

    def __init__(self, run, raw: dict[str, Any], scratch: Path):
        self.run, self.raw, self.scratch = run, raw, scratch
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def step(self, mapping: Any) -> str | None:
        from ..steps.base import Expectation, Skipped, Unsupported

        document = {"name": "serve", **{k: v for k, v in self.raw.items() if v is not None},
                    "steps": [*self.raw["steps"], mapping]}
        path = self.scratch / "ctl-steps.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        try:
            placed = load(path).steps[-1]
        except ScenarioError as exc:  # the file is ours: say the problem without its line
            raise BadStep(str(exc).split(": ", 1)[-1]) from None
        with self.lock:
            try:
                detail = self.run.execute(placed)
            except (Expectation, Skipped, Unsupported) as exc:
                self.raw["steps"].append(mapping)  # it ran: its entities exist
                raise StepOutcome(f"{type(exc).__name__.lower()}: {exc}") from None
            self.raw["steps"].append(mapping)
        return detail

    def info(self) -> dict[str, Any]:
        """What a client needs, as it is now (a restarted replica has a new port)."""
        fleet = self.run.fleet
        return {
            "replicas": {name: target.base_url for name, target in fleet.replicas.items()},
            "master_key": fleet.first.master_key,
            "model": fleet.first.unit_model,
            "database_url": fleet.first.database_url,
            "redis_url": fleet.redis.url if fleet.redis is not None else None,
        }

    def readings(self, name: str) -> dict[str, Any]:
        from ..steps.expectations import AuthView, side_by_side

        with self.lock:
            entity = self.run.entities.get(name)
            if entity is None:
                raise BadStep(f"no entity named {name!r}; known: {', '.join(sorted(self.run.entities)) or 'none'}")
            state = self.run.db.state(entity)
            text = side_by_side(self.run, entity, {"db": state} if state else {}, AuthView.read(self.run, entity))
            return {"message": f"{entity.kind} {name}: {text}",
                    "db": None if state is None else {"spend": state.spend, "budget_reset_at":
                                                      state.budget_reset_at.isoformat() if state.budget_reset_at else None},
                    "clock": self.run.target.control.clock().isoformat()}


class BadStep(Exception):
    """A step the loader refused (exit 2 at `ctl`)."""


class StepOutcome(Exception):
    """A step that ran but failed, was skipped or unsupported (exit 1 at `ctl`)."""


def _running_serve(path: Path) -> int | None:
    """The pid of the live serve whose connection file `path` is (None: none, or it is gone)."""
    try:
        pid = int(json.loads(path.read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid


def _handler(served: Served, token: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args) -> None:  # quiet: the terminal shows serve's own lines
            pass

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # http.server names it
            given = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return self._answer(401, {"error": "bad control token"})
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                op = request.get("op")
                if op == "step":
                    return self._answer(200, {"message": served.step(request.get("step")) or ""})
                if op == "readings":
                    return self._answer(200, served.readings(str(request.get("name"))))
                if op == "info":
                    return self._answer(200, served.info())
                if op == "stop":
                    served.stopping.set()
                    return self._answer(200, {"message": "stopping"})
                return self._answer(400, {"error": f"unknown operation {op!r}"})
            except BadStep as exc:
                return self._answer(400, {"error": str(exc)})
            except StepOutcome as exc:
                return self._answer(409, {"error": str(exc)})
            except HarnessError as exc:
                return self._answer(500, {"error": f"error: {exc}"})
            except Exception as exc:  # noqa: BLE001 - one bad request must not end the deployment
                return self._answer(500, {"error": f"{type(exc).__name__}: {str(exc)[:300]}"})

    return Handler


def run(args, console) -> int:
    import signal

    from ..execution.engine import Engine

    # Ctrl-C ends serve even when it was started in the background (which ignores SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from ..reports.terminal import ProgressPrinter

    scenario, raw = base_scenario(args, console)
    kind, url = _redis_choice(args.redis)
    config = options.run_config(args.at, args.proxy_config, kind, url)
    check_versions([args.litellm])
    path = info_path()
    other = _running_serve(path)
    if other is not None:
        raise HarnessError(f"a serve is already running here (pid {other}): `ctl stop` it, or give this one "
                           "its own HARNESS_RUNTIME_DIR")
    progress = ProgressPrinter(console)
    control = None
    with Engine([progress], config, db_kind=options.db_choice(args.db), db_url=args.db_url) as engine:
        session = engine.session(args.litellm)
        live = session.open(scenario, extra_requires=frozenset(INJECTORS))
        if scenario.steps:
            results, error = live.run()
            for r in results:
                if r.status is not None:
                    progress.say(f"line {r.line}: {r.status}: {r.source} {r.message}".rstrip())
            if error:  # the state it got to is still worth a look
                progress.say(f"--scenario stopped at {error}; serving the state it reached")
        served = Served(live, raw, session.run_dir)
        token = secrets.token_urlsafe(24)
        control = HTTPServer(("127.0.0.1", 0), _handler(served, token))
        threading.Thread(target=control.serve_forever, args=(0.05,), name="serve-control", daemon=True).start()
        info = {"pid": os.getpid(), "control": f"http://127.0.0.1:{control.server_port}", "token": token,
                **served.info()}
        path.touch(mode=0o600)
        os.chmod(path, 0o600)
        path.write_text(json.dumps(info, indent=2) + "\n")
        try:
            for name, base in info["replicas"].items():
                console.print(f"replica {name}: {base}")
            console.print(f"master key: {info['master_key']}")
            console.print(f"model: {info['model']}")
            console.print(f"DATABASE_URL: {info['database_url']}")
            console.print(f"Redis: {info['redis_url'] or 'none'}")
            console.print(f"control: {info['control']} (token in {path})")
            console.print("ready: `python -m harness ctl ...` drives it; Ctrl-C or `ctl stop` ends everything")
            while not served.stopping.wait(0.2):
                pass
        finally:
            control.shutdown()
            control.server_close()
            if _running_serve(path) == os.getpid():
                path.unlink()
            # a served deployment keeps nothing: SIGKILL, not the proxies' 0.5-0.9 s graceful
            # shutdown, so that everything is gone within a second of Ctrl-C
            for target in live.fleet.replicas.values():
                target.stop("kill")
    console.print("stopped: every proxy and server serve started has been stopped")
    return 0
