"""`--proxy-config FILE`: run the scenarios with the proxy settings an operator actually runs.

Every setting of the operator's file is kept, with three kinds of exception, each stated in the
run's notes: every model's provider is replaced by the harness's spend model's (the fake
provider, or the mock with `provider: mock`, at the spend model's prices; its `model_name` and
`model_info` stay, so routing by name and per-model settings still apply); the settings the harness must
own to control the proxy (database, master key, scheduler intervals) are the harness's; and
the scenario's own `proxy:` settings, which are the point of a scenario, win over the file's.
Values that look secret (keys, passwords, tokens, URLs with credentials) are collected so
reports redact them; the file's content never reaches a report, only the notes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import HarnessError

#: general_settings the harness owns (the proxy's database, master key and scheduler)
HARNESS_OWNED = ("database_url", "master_key", "proxy_batch_write_at", "proxy_budget_rescheduler_min_time",
                 "proxy_budget_rescheduler_max_time", "disable_reset_budget")
_SECRET_WORDS = ("key", "secret", "password", "token", "credential", "dsn")


@dataclass(frozen=True)
class OperatorConfig:
    path: str
    data: dict[str, Any]
    notes: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)


def _secrets(value: Any, key: str = "") -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _secrets(v, str(k))]
    if isinstance(value, list):
        return [s for v in value for s in _secrets(v, key)]
    if isinstance(value, str) and len(value) >= 6:
        if any(word in key.lower() for word in _SECRET_WORDS) or "://" in value and "@" in value:
            return [value]
    return []


def load(path: str | Path) -> OperatorConfig:
    """Read the operator's file; a problem is one line `file: ...` (exit 2)."""
    file = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{file}: no such proxy config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{file}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else file
        raise HarnessError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HarnessError(f"{file}: a proxy config is a mapping (model_list, general_settings, litellm_settings, ...)")
    for section in ("general_settings", "litellm_settings", "router_settings", "environment_variables"):
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise HarnessError(f"{file}: `{section}` must be a mapping")
    if data.get("model_list") is not None and not isinstance(data["model_list"], list):
        raise HarnessError(f"{file}: `model_list` must be a list")
    return OperatorConfig(file, data, secrets=tuple(dict.fromkeys(_secrets(data))))


def merge(operator: OperatorConfig, generated: dict[str, Any], mock_params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The operator's config with the harness's models and owned settings; notes say what was replaced."""
    data = copy.deepcopy(operator.data)
    notes: list[str] = []
    models = []
    for entry in data.pop("model_list", None) or []:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("model_name", "?"))
        provider = (entry.get("litellm_params") or {}).get("model", "?")
        kept = {k: v for k, v in entry.items() if k not in ("litellm_params",)}
        models.append({**kept, "litellm_params": {**mock_params, "model": f"openai/{name}"}})
        notes.append(f"model {name} ({provider}): provider replaced by the harness's spend model's")
    general = dict(data.pop("general_settings", None) or {})
    for owned in HARNESS_OWNED:
        if owned in general:
            notes.append(f"general_settings.{owned}: the harness's own value is used")
            general.pop(owned)
    litellm_settings = dict(data.pop("litellm_settings", None) or {})
    if data.pop("environment_variables", None):
        notes.append("environment_variables: not set (the harness sets the proxy's environment)")
    merged = {
        **data,  # router_settings and every other top-level section, as they are
        "model_list": generated["model_list"] + models,
        "general_settings": {**general, **generated["general_settings"]},
        "litellm_settings": {**litellm_settings, **generated["litellm_settings"]},
    }
    if "router_settings" in generated:  # the scenario's own router settings win, as its other sections do
        merged["router_settings"] = {**(data.get("router_settings") or {}), **generated["router_settings"]}
    return merged, notes
