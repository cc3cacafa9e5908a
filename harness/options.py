"""One option table for the CLI and the pytest plugin, so the two never drift apart."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .db import KINDS as DB_KINDS  # the providers' registries: a new provider is offered here by itself
from .redis import KINDS as REDIS_KINDS


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    dest: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)


OPTIONS = (
    Option(
        ("--litellm-version", "--litellm"),
        "litellm_versions",
        "a LiteLLM release to run against (repeatable)",
        {"action": "append", "metavar": "VERSION"},
    ),
    Option(
        ("--db",),
        "db",
        "PostgreSQL provider: auto (container if a Docker engine answers, else embedded), "
        "container, embedded, or url (default: $HARNESS_DB or auto)",
        {"choices": DB_KINDS, "default": None},
    ),
    Option(("--db-url",), "db_url", "server URL for --db url (default: $HARNESS_DB_URL)", {"metavar": "URL"}),
    Option(
        ("--redis",),
        "redis",
        "Redis provider for scenarios whose deployment has a Redis: auto (url if set, else container if a Docker "
        "engine answers, else embedded), container, embedded, or url (default: $HARNESS_REDIS or auto)",
        {"choices": REDIS_KINDS, "default": None},
    ),
    Option(("--redis-url",), "redis_url", "server URL for --redis url; the harness uses only its own database "
           "index there (default: $HARNESS_REDIS_URL)", {"metavar": "URL"}),
    Option(
        ("--at",),
        "at",
        "run as if now were TIME: `freeze_clock: now` freezes the proxy's clock there "
        "(ISO 8601, e.g. 2027-01-31T23:59:00Z; naive times are UTC)",
        {"metavar": "TIME", "default": None},
    ),
    Option(
        ("--proxy-config",),
        "proxy_config",
        "the operator's proxy config file: every setting is kept, model providers are replaced by the "
        "harness's spend model's (each replacement stated), secrets never reach reports",
        {"metavar": "FILE", "default": None},
    ),
    Option(
        ("--report-dir",),
        "report_dir",
        "write a JSON report per (scenario, release) into this directory",
        {"metavar": "DIR"},
    ),
)


def add_to(adder) -> None:
    """`adder` is argparse's `add_argument` or pytest's `group.addoption`."""
    for option in OPTIONS:
        adder(*option.flags, dest=option.dest, help=option.help, **option.kwargs)


def run_config(at: str | None, proxy_config: str | None = None, redis: str | None = None, redis_url: str | None = None):
    """The `RunConfig` of the options given; a bad --at or --proxy-config is a one-line HarnessError.
    `redis`/`redis_url` choose the Redis of deployments that use one (None: $HARNESS_REDIS, else auto)."""
    from .errors import HarnessError
    from .proxy import operator_config
    from .execution.results import RunConfig
    from .durations import parse_instant

    operator = operator_config.load(proxy_config) if proxy_config else None
    if redis is not None and redis not in REDIS_KINDS:
        raise HarnessError(f"--redis: unknown Redis kind {redis!r}; use one of: {', '.join(REDIS_KINDS)}")
    common = {"proxy_config": operator, "redis": redis, "redis_url": redis_url}
    if at is None or at == "now":
        return RunConfig(**common)
    try:
        return RunConfig(at=parse_instant(at), **common)
    except ValueError as exc:
        raise HarnessError(f"--at: {exc}") from None


def db_choice(value: str | None) -> str:
    """The provider asked for: the option, then $HARNESS_DB, then auto. An empty value is not unset."""
    return value if value is not None else os.environ.get("HARNESS_DB", "auto")
