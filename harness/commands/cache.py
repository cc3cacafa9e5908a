"""`cache list|prune`: the cached release environments (HARNESS_CACHE_DIR/envs)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ..errors import HarnessError
from ..releases import cache
from ..releases.cache import DEFAULT_MAX_SIZE
from ..durations import parse_span
from ..settings import cache_dir
from .common import EXIT_OK

HELP = "list or prune the cached release environments"
DESCRIPTION = ("Release environments live under HARNESS_CACHE_DIR/envs. An environment a running harness holds "
               "(or one being built) is never pruned.")


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="cache_command", required=True)
    actions.add_parser("list", help="each environment's size and last use, oldest use first")
    prune = actions.add_parser("prune", help="remove environments by age and/or to a size cap, oldest use first",
                               description="Without options: prune to the default cap (HARNESS_CACHE_MAX_SIZE, "
                               f"default {DEFAULT_MAX_SIZE}), which also applies after every build.")
    prune.add_argument("--older-than", metavar="SPAN", help="remove environments unused for longer (7d, 36h, 2w)")
    prune.add_argument("--max-size", metavar="SIZE", help="then remove the oldest until the cache fits (20G, 500M)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")


def run(args, console) -> int:
    envs_root = cache_dir() / "envs"
    now = time.time()

    def line(env) -> str:
        used = datetime.fromtimestamp(env.last_used, timezone.utc).isoformat(timespec="minutes")
        held = "  in use" if env.held else ""
        return f"{env.version:<10} {cache.format_size(env.size):>7}  last used {used} ({_age(now - env.last_used)} ago){held}  {env.root.name}"

    if args.cache_command == "list":
        envs = cache.list_envs(envs_root)
        for env in envs:
            console.print(line(env), highlight=False, markup=False)
        total = sum(e.size for e in envs)
        console.print(f"{len(envs)} environments, {cache.format_size(total)} in {envs_root} "
                      f"({cache.format_size(cache.disk_use(envs_root))} on disk: files hard-linked into several count once)",
                      highlight=False, markup=False)
        return EXIT_OK
    older_than = max_size = None
    if args.older_than is not None:
        try:
            text = args.older_than.strip()
            older_than = parse_span(float(text) if text.replace(".", "", 1).isdigit() else text).total_seconds()
        except ValueError as exc:
            raise HarnessError(f"--older-than: {exc}") from None
    if args.max_size is not None:
        max_size = cache.parse_size(args.max_size)
    if older_than is None and max_size is None:
        max_size = cache.default_max_size()
    before = sum(e.size for e in cache.list_envs(envs_root))
    removed = cache.prune(envs_root, older_than=older_than, max_size=max_size, dry_run=args.dry_run, now=now)
    verb = "would remove" if args.dry_run else "removed"
    for env in removed:
        console.print(f"{verb} {line(env)}", highlight=False, markup=False)
    after = before - sum(e.size for e in removed)
    console.print(f"{verb} {len(removed)} environments: {cache.format_size(before)} -> {cache.format_size(after)}",
                  highlight=False, markup=False)
    return EXIT_OK


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"
