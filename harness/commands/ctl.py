"""`ctl ...`: drive a running `serve` (found through its connection file; no arguments needed).

Every action but `readings`, `info` and `stop` is a scenario step, run by serve through the same
step code a scenario file uses: `ctl step '<yaml mapping>'` takes any of them, and the short
forms below are the common ones written for you.
"""

from __future__ import annotations

import json
from typing import Any

import requests
import yaml
from rich.markup import escape

from ..errors import HarnessError
from .common import EXIT_FAILED, EXIT_OK

HELP = "drive a running `serve`: clock, jobs, readings, replicas, faults, any scenario step"
DESCRIPTION = __doc__

#: short form -> (its arguments, the step it sends)
SHORT_FORMS = {
    "freeze": (("at", "?", "now"), lambda a: {"freeze_clock": a.at}),
    "advance": (("by", None, None), lambda a: {"advance_clock": a.by}),
    "reset-job": ((), lambda a: {"run_reset_job": {}}),
    "flush": ((), lambda a: {"flush_spend": {}}),
    "stop-replica": (("replica", None, None), lambda a: {"stop_replica": {"replica": a.replica,
                                                                            "how": "kill" if a.kill else "term"}}),
    "start-replica": (("replica", None, None), lambda a: {"start_replica": a.replica}),
}
HELPS = {
    "freeze": "freeze the deployment's clock (at TIME, or now / --at)",
    "advance": "move the frozen clock forward by a span (1d, 25h, 90s)",
    "reset-job": "run the proxy's own reset_budget_job now",
    "flush": "let the calls' follow-up work finish, then run the spend-update job (update_spend_job)",
    "stop-replica": "stop a replica (SIGTERM; --kill for SIGKILL)",
    "start-replica": "start a stopped replica again",
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    step = sub.add_parser("step", help="run any scenario step, e.g. '{create_key: {name: k1, max_budget: 1}}'")
    step.add_argument("mapping", metavar="YAML")
    fault = sub.add_parser("fault", help="inject a fault: a fault step, e.g. '{postgres_network: {mode: refuse}}'")
    fault.add_argument("mapping", metavar="YAML")
    for name, (arg, _build) in SHORT_FORMS.items():
        p = sub.add_parser(name, help=HELPS[name])
        if arg:
            dest, nargs, default = arg
            p.add_argument(dest, nargs=nargs, default=default)
        if name == "stop-replica":
            p.add_argument("--kill", action="store_true")
    readings = sub.add_parser("readings", help="an entity's spend and budget_reset_at: database, counters, Redis")
    readings.add_argument("name")
    sub.add_parser("info", help="the served deployment's URLs and master key")
    sub.add_parser("stop", help="stop serve and everything it started")


def connection() -> dict[str, Any]:
    from .serve import info_path

    path = info_path()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise HarnessError(f"no serve is running (no connection info in {path}): start `python -m harness serve`") from None


def send(info: dict[str, Any], body: dict[str, Any], timeout: float = 600.0) -> tuple[int, dict[str, Any]]:
    try:
        resp = requests.post(info["control"], json=body, timeout=timeout,
                             headers={"Authorization": f"Bearer {info['token']}"})
    except requests.ConnectionError:
        raise HarnessError(f"serve is not answering at {info['control']} (it has stopped?)") from None
    return resp.status_code, resp.json()


def _mapping(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HarnessError(f"not YAML: {str(exc).splitlines()[0]}") from None


def run(args, console) -> int:
    info = connection()
    if args.action == "info":
        body = {"op": "info"}
    elif args.action == "stop":
        body = {"op": "stop"}
    elif args.action == "readings":
        body = {"op": "readings", "name": args.name}
    elif args.action in ("step", "fault"):
        body = {"op": "step", "step": _mapping(args.mapping)}
    else:
        body = {"op": "step", "step": SHORT_FORMS[args.action][1](args)}
    code, answer = send(info, body)
    if code == 400:
        raise HarnessError(answer.get("error", "refused"))
    if code != 200:
        console.print(escape(answer.get("error", f"answered {code}")), highlight=False)
        return EXIT_FAILED
    if args.action in ("readings", "info"):
        console.print(escape(json.dumps(answer, indent=2)), highlight=False)
    else:
        console.print(escape(answer.get("message") or "ok"), highlight=False)
    return EXIT_OK
