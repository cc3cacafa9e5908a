"""`daemon start|stop|status`: the warm daemon, which keeps imported zygotes of recent releases.

With a daemon running, every command that runs a release (run, matrix, check, bisect, explore,
serve, the pytest plugin) takes the release's zygote from it instead of importing LiteLLM
itself, and the daemon imports the next spare in the background (harness/proxy/daemon.py).
"""

from __future__ import annotations

from ..errors import HarnessError
from ..proxy import daemon
from ..proxy.proxy import base_env
from ..releases import ensure_release
from .common import EXIT_OK, check_versions

HELP = "start, stop or show the warm daemon (imported zygotes of recently used releases)"
DESCRIPTION = ("The daemon keeps one imported zygote per recently used release and environment, and hands it to "
               "the next run of that release, which then skips LiteLLM's import. A changed environment, release "
               "or harness is never served a stale zygote. HARNESS_DAEMON=use (default) uses a running daemon, "
               "start starts one on demand, off never asks one.")


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="daemon_command", required=True)
    start = actions.add_parser("start", help="start the daemon in the background (nothing if one runs)")
    start.add_argument("--idle-timeout", type=float, default=daemon.DEFAULT_IDLE_S, metavar="SECONDS",
                       help=f"stop after this long without a request (default {daemon.DEFAULT_IDLE_S:.0f})")
    start.add_argument("--max-releases", type=int, default=daemon.DEFAULT_MAX_RELEASES, metavar="N",
                       help=f"keep spares of at most N releases, least recently used out (default {daemon.DEFAULT_MAX_RELEASES})")
    start.add_argument("--litellm", "--litellm-version", dest="litellm", action="append", default=[], metavar="VERSION",
                       help="import a spare of this release now (repeatable); otherwise each release is warmed on first use")
    actions.add_parser("stop", help="stop the daemon and every spare zygote it holds")
    actions.add_parser("status", help="the daemon's pid, its spares (release, state, age, pid), runners and PostgreSQL")


def _age(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _print_status(console, info) -> None:
    console.print(f"daemon pid {info['pid']}, up {_age(info['uptime_s'])}, idle {_age(info['idle_s'])} "
                  f"(stops after {_age(info['idle_timeout_s'])}), {info['served']} zygotes handed over, "
                  f"harness {info['harness']}", highlight=False, markup=False)
    if not info["spares"]:
        console.print("no spare zygotes (a release is warmed on its first use)", highlight=False, markup=False)
    for spare in sorted(info["spares"], key=lambda s: s["release"]):
        imported = f", imported in {spare['import_s']:.1f}s" if spare["import_s"] is not None else ""
        console.print(f"  litellm {spare['release']:<10} {spare['state']:<9} pid {spare['pid']}  age {_age(spare['age_s'])}"
                      f"{imported}  key {spare['key'][:12]}", highlight=False, markup=False)
    for runner in info.get("runners", []):
        console.print(f"  harness runner  {runner['state']:<9} pid {runner['pid']}  key {runner['key'][:12]}",
                      highlight=False, markup=False)
    if info.get("runners"):
        console.print(f"  {info.get('runs', 0)} command lines run by the runners", highlight=False, markup=False)
    if info.get("postgres"):
        pg = info["postgres"]
        console.print(f"  PostgreSQL {pg['version']} (embedded) pid {pg['pid']} on 127.0.0.1:{pg['port']}",
                      highlight=False, markup=False)


def run(args, console) -> int:
    if args.daemon_command == "status":
        info = daemon.status()
        if info is None:
            console.print(f"no daemon runs (socket {daemon.socket_path()})", highlight=False, markup=False)
            return 1
        _print_status(console, info)
        return EXIT_OK
    if args.daemon_command == "stop":
        info = daemon.stop()
        console.print("no daemon ran" if info is None else
                      f"stopped the daemon (pid {info['pid']}) and {len(info['spares'])} spare zygotes",
                      highlight=False, markup=False)
        return EXIT_OK
    if args.idle_timeout <= 0 or args.max_releases < 1:
        raise HarnessError("--idle-timeout must be above 0 and --max-releases at least 1")
    if args.litellm:
        check_versions(args.litellm)
    info = daemon.start(idle_s=args.idle_timeout, max_releases=args.max_releases)
    for version in args.litellm:
        release = ensure_release(version, progress=lambda line: console.print(line, highlight=False, markup=False))
        refused = daemon.warm(release, base_env(release))
        if refused:
            raise HarnessError(f"the daemon will not warm litellm {version}: {refused}")
    _print_status(console, daemon.status() or info)
    return EXIT_OK
