"""--proxy-config: the operator's settings kept, providers replaced by the spend model's, secrets collected."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.proxy import operator_config
from harness.proxy.proxy import proxy_config
from harness.reports.text import redact
from harness.proxy.settings import ProxySettings

OPERATOR = """
model_list:
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o-prod, api_key: azure-secret-123456, api_base: https://corp.example}
    model_info: {id: prod-gpt}
router_settings: {routing_strategy: usage-based-routing-v2}
litellm_settings: {timezone: Asia/Tokyo, max_end_user_budget_id: tier-a, drop_params: true}
general_settings:
  master_key: sk-operator-master-key-999
  database_url: postgresql://ops:hunter2secret@db.corp:5432/litellm
  proxy_budget_rescheduler_min_time: 60
  user_api_key_cache_ttl: 30
environment_variables: {SLACK_WEBHOOK_URL: https://hooks.example/x}
"""


def test_every_setting_is_kept_and_each_replacement_is_stated(tmp_path: Path) -> None:
    path = tmp_path / "ops.yaml"
    path.write_text(OPERATOR)
    operator = operator_config.load(path)
    settings = ProxySettings(provider="mock", litellm_settings={"max_end_user_budget_id": "scenario-tier"})
    generated = proxy_config(settings)
    merged, notes = operator_config.merge(operator, generated, {"mock_response": "ok", "api_key": "not-used"})
    assert merged["router_settings"] == {"routing_strategy": "usage-based-routing-v2"}
    assert merged["general_settings"]["user_api_key_cache_ttl"] == 30
    # the harness owns the scheduler and the database; the scenario's own settings win
    assert merged["general_settings"]["proxy_budget_rescheduler_min_time"] == generated["general_settings"]["proxy_budget_rescheduler_min_time"]
    assert "master_key" not in merged["general_settings"] and "database_url" not in merged["general_settings"]
    assert merged["litellm_settings"] == {"timezone": "Asia/Tokyo", "max_end_user_budget_id": "scenario-tier", "drop_params": True}
    operator_model = merged["model_list"][-1]
    assert operator_model["model_name"] == "gpt-4o" and operator_model["model_info"] == {"id": "prod-gpt"}
    assert operator_model["litellm_params"] == {"mock_response": "ok", "api_key": "not-used", "model": "openai/gpt-4o"}
    assert [m["model_name"] for m in merged["model_list"][:-1]] == [m["model_name"] for m in generated["model_list"]]
    assert "model gpt-4o (azure/gpt-4o-prod): provider replaced by the harness's spend model's" in notes
    assert "general_settings.master_key: the harness's own value is used" in notes
    assert any(n.startswith("environment_variables") for n in notes)
    text = f"{OPERATOR} {merged}"
    for secret in ("azure-secret-123456", "sk-operator-master-key-999", "hunter2secret"):
        assert secret not in redact(text, operator.secrets)


@pytest.mark.parametrize(
    "content, message",
    [("- a\n- b\n", "a proxy config is a mapping"), ("general_settings: [1]\n", "`general_settings` must be a mapping"),
     ("a: [\n", "ops.yaml:2: not valid YAML")],
)
def test_a_bad_file_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ops.yaml"
    path.write_text(content)
    with pytest.raises(HarnessError, match=message):
        operator_config.load(path)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no such proxy config file"):
        operator_config.load(tmp_path / "none.yaml")


@pytest.mark.parametrize("argv", [
    ["run", "s.yaml", "--litellm", "1.85.0"],
    ["matrix", "s.yaml", "--litellm", "1.85.0"],
    ["bisect", "s.yaml", "--good", "1.82.3", "--bad", "1.85.0"],
])
def test_run_matrix_and_bisect_take_proxy_config(argv: list[str]) -> None:
    from harness.cli import parser as _parser

    assert _parser().parse_args([*argv, "--proxy-config", "ops.yaml"]).proxy_config == "ops.yaml"


def test_an_operator_config_survives_the_trip_to_a_matrix_worker(tmp_path: Path) -> None:
    import pickle

    from harness import options

    path = tmp_path / "ops.yaml"
    path.write_text(OPERATOR)
    config = options.run_config(None, str(path))
    assert pickle.loads(pickle.dumps(config)).proxy_config == config.proxy_config


def test_scenario_router_settings_reach_the_config_on_top_of_the_operators(tmp_path: Path) -> None:
    budget = {"openai": {"budget_limit": 0.001, "time_period": "1d"}}
    generated = proxy_config(ProxySettings(provider="mock", router_settings={"provider_budget_config": budget}))
    assert generated["router_settings"] == {"provider_budget_config": budget}
    assert "router_settings" not in proxy_config(ProxySettings(provider="mock"))
    path = tmp_path / "ops.yaml"
    path.write_text(OPERATOR)
    merged, _ = operator_config.merge(operator_config.load(path), generated, {"mock_response": "ok", "api_key": "not-used"})
    assert merged["router_settings"] == {"routing_strategy": "usage-based-routing-v2", "provider_budget_config": budget}
