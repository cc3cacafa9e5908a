"""Per-model provider scripts (`spend`/`expect_request: {provider: [...]}`) and extra fake models
(`proxy: {model_list, router_settings}`): the fake provider answers each model as scripted, the
scripts end with the step, and the generated config points every model at its own path."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests

from harness.errors import HarnessError
from harness.proxy.proxy import proxy_config
from harness.proxy.settings import ProxySettings
from harness.steps.spend import ProviderScript, scripted_provider
from harness.upstream import Behaviour, FakeProvider


@pytest.fixture
def provider():
    p = FakeProvider().start()
    yield p
    p.stop()


def _status(provider: FakeProvider, model_name: str) -> int:
    return requests.post(f"{provider.base_for(model_name)}/chat/completions", json={"model": "gpt-4o"}, timeout=5).status_code


def test_a_model_script_answers_only_that_model_and_counts_its_calls(provider: FakeProvider) -> None:
    provider.script(Behaviour(status=500), times=2, model="free")
    assert [_status(provider, "free") for _ in range(3)] == [500, 500, 200]
    assert _status(provider, "paid") == 200
    assert [r["model_name"] for r in provider.requests] == ["free", "free", "free", "paid"]


def test_an_unbounded_model_script_lasts_until_unscripted_and_wins_over_the_shared_queue(provider: FakeProvider) -> None:
    provider.script(Behaviour(status=429), times=None, model="free")
    provider.script(Behaviour(status=503))  # the shared queue: the next call of any model not scripted
    assert [_status(provider, "free") for _ in range(3)] == [429, 429, 429]
    assert _status(provider, "paid") == 503
    provider.unscript_models()
    assert _status(provider, "free") == 200


def test_model_names_are_checked_and_unbounded_needs_a_model(provider: FakeProvider) -> None:
    with pytest.raises(ValueError):
        provider.base_for("../x")
    with pytest.raises(ValueError):
        provider.script(Behaviour(), times=None)
    assert provider.base_for("harness-claude", "anthropic").endswith("/m/harness-claude")


def _ctx(*upstreams, model_name: str = "harness-mock"):
    replicas = [SimpleNamespace(upstream=u) for u in upstreams]
    return SimpleNamespace(target=SimpleNamespace(replicas=replicas, settings=SimpleNamespace(
        model=SimpleNamespace(name=model_name))))


def test_a_step_scripts_every_replica_and_withdraws_the_scripts_even_when_it_fails() -> None:
    a, b = FakeProvider(Behaviour(prompt_tokens=3)).start(), FakeProvider().start()
    try:
        scripts = [ProviderScript(model="harness-free", status=500), ProviderScript(latency_ms=1, times=1)]
        with pytest.raises(RuntimeError):
            with scripted_provider(_ctx(a, b), scripts, "harness-free") as answered:
                assert [_status(a, "harness-free"), _status(b, "harness-free")] == [500, 500]
                assert _status(a, "harness-mock") == 200
                assert answered() == "provider answered harness-free 2x500, harness-mock 1x200"
                behaviour = a._by_model["harness-free"][0][0]
                assert behaviour.prompt_tokens == 3  # the tokens not scripted stay the provider's default
                raise RuntimeError("the step failed")
        assert (_status(a, "harness-free"), _status(b, "harness-free")) == (200, 200)
    finally:
        a.stop()
        b.stop()


def test_no_scripts_touch_nothing_and_a_proxy_without_fake_provider_is_an_error() -> None:
    with scripted_provider(_ctx(), [], None) as answered:
        assert answered() == ""
    with pytest.raises(HarnessError, match="needs the fake provider, not `provider: mock`"):
        with scripted_provider(_ctx(None), [ProviderScript(status=500)], None):
            pass


def test_extra_models_point_at_their_own_path_with_their_costs_and_router_settings_pass_through(provider) -> None:
    settings = ProxySettings.model_validate({
        "provider": "fake",
        "model_list": [{"model_name": "harness-free", "model": "openai/gpt-4o-mini", "input_cost_per_token": 0,
                        "output_cost_per_token": 0, "litellm_params": {"timeout": 1}}],
        "router_settings": {"num_retries": 0, "fallbacks": [{"harness-free": ["harness-mock"]}]},
    })
    config = proxy_config(settings, provider)
    models = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    assert models["harness-free"] == {"model": "openai/gpt-4o-mini", "input_cost_per_token": 0, "output_cost_per_token": 0,
                                      "timeout": 1, "api_key": "sk-fake-provider",
                                      "api_base": f"http://127.0.0.1:{provider.port}/m/harness-free/v1"}
    assert models["harness-mock"]["api_base"].endswith("/m/harness-mock/v1")
    assert config["router_settings"] == {"num_retries": 0, "fallbacks": [{"harness-free": ["harness-mock"]}]}
    assert "router_settings" not in proxy_config(ProxySettings(provider="mock"), None)


def test_a_stated_usage_cost_is_in_the_plain_and_the_streamed_usage(provider: FakeProvider) -> None:
    import json

    provider.script(Behaviour(usage_cost=0.0), times=2)
    url = f"{provider.openai_base}/chat/completions"
    assert requests.post(url, json={}, timeout=5).json()["usage"]["cost"] == 0.0
    events = [json.loads(line[5:]) for line in requests.post(
        url, json={"stream": True, "stream_options": {"include_usage": True}}, stream=True, timeout=5).iter_lines()
        if line.startswith(b"data:") and line != b"data: [DONE]"]
    assert events[-1]["usage"]["cost"] == 0.0
    assert "cost" not in requests.post(url, json={}, timeout=5).json()["usage"]  # unscripted: no stated cost
