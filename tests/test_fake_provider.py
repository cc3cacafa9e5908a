"""The fake provider speaks OpenAI and Anthropic shapes, follows its script, and never holds past stop()."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from harness.upstream import Behaviour, FakeProvider


@pytest.fixture
def provider():
    p = FakeProvider().start()
    yield p
    p.stop()


def _events(resp: requests.Response) -> list[dict]:
    return [json.loads(line[5:]) for line in resp.iter_lines() if line.startswith(b"data:") and line != b"data: [DONE]"]


def test_openai_plain_reports_the_scripted_usage(provider: FakeProvider) -> None:
    provider.script(Behaviour(prompt_tokens=7, completion_tokens=3))
    body = requests.post(f"{provider.openai_base}/chat/completions", json={"model": "gpt-4o"}, timeout=5).json()
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert body["choices"][0]["message"]["content"] == "ok"


def test_openai_stream_ends_with_a_usage_chunk_only_when_asked(provider: FakeProvider) -> None:
    url = f"{provider.openai_base}/chat/completions"
    with_usage = _events(requests.post(url, json={"stream": True, "stream_options": {"include_usage": True}},
                                       stream=True, timeout=5))
    without = _events(requests.post(url, json={"stream": True}, stream=True, timeout=5))
    assert with_usage[-1]["usage"]["completion_tokens"] == 20 and with_usage[-1]["choices"] == []
    assert all("usage" not in e for e in without) and without[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_cut_stream_stops_after_n_chunks_without_usage(provider: FakeProvider) -> None:
    provider.script(Behaviour(cut_after_chunks=2))
    events = _events(requests.post(f"{provider.openai_base}/chat/completions",
                                   json={"stream": True, "stream_options": {"include_usage": True}}, stream=True, timeout=5))
    assert len(events) == 2 and all("usage" not in e for e in events)


def test_anthropic_messages_plain_and_streamed(provider: FakeProvider) -> None:
    url = f"{provider.anthropic_base}/v1/messages"
    plain = requests.post(url, json={"model": "claude"}, timeout=5).json()
    assert plain["usage"] == {"input_tokens": 10, "output_tokens": 20} and plain["type"] == "message"
    events = _events(requests.post(url, json={"stream": True}, stream=True, timeout=5))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert next(e for e in events if e["type"] == "message_delta")["usage"]["output_tokens"] == 20


def test_a_scripted_status_is_answered_then_the_default_again(provider: FakeProvider) -> None:
    provider.script(Behaviour(status=503), times=2)
    url = f"{provider.openai_base}/chat/completions"
    assert [requests.post(url, json={}, timeout=5).status_code for _ in range(3)] == [503, 503, 200]


def test_a_held_request_answers_only_after_release(provider: FakeProvider) -> None:
    provider.script(Behaviour(hold="h"))
    answers: list[int] = []
    thread = threading.Thread(target=lambda: answers.append(
        requests.post(f"{provider.openai_base}/chat/completions", json={}, timeout=10).status_code))
    thread.start()
    assert provider.wait_held("h", 1, timeout=5)
    time.sleep(0.1)
    assert answers == []
    provider.release("h")
    thread.join(5)
    assert answers == [200] and provider.held("h") == 0


def test_stop_ends_a_hold_that_was_never_released() -> None:
    provider = FakeProvider(Behaviour(hold="never")).start()
    url = f"{provider.openai_base}/chat/completions"
    thread = threading.Thread(target=lambda: requests.post(url, json={}, timeout=10), daemon=True)
    thread.start()
    assert provider.wait_held("never", 1, timeout=5)
    started = time.monotonic()
    provider.stop()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 5


def test_behaviour_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        Behaviour(latency_ms=10**6)


def test_the_default_config_points_the_spend_model_at_the_fake_provider_priced_per_token(provider: FakeProvider) -> None:
    from harness.errors import HarnessError
    from harness.proxy.proxy import UNIT_MODEL, UNIT_MODEL_COSTS, proxy_config
    from harness.proxy.settings import ProxySettings

    assert ProxySettings().provider == "fake"
    models = {m["model_name"]: m["litellm_params"] for m in proxy_config(ProxySettings(), provider)["model_list"]}
    # the mock's prices: 10 prompt + 20 completion tokens (the provider's default answer) cost 0.05
    assert models["harness-mock"] == {"model": "openai/gpt-4o", "input_cost_per_token": 0.001,
                                      "output_cost_per_token": 0.002, "api_key": "sk-fake-provider",
                                      "api_base": provider.base_for("harness-mock")}
    assert models["harness-claude"] == {"model": "anthropic/claude-sonnet-4-5", "api_key": "sk-fake-provider",
                                        "api_base": provider.base_for("harness-claude", "anthropic")}
    assert models[UNIT_MODEL] == {"model": f"openai/{UNIT_MODEL}", "api_key": "not-used", "mock_response": "ok",
                                  **UNIT_MODEL_COSTS}  # `spend: {amount}` stays exact, whatever the provider is told
    with pytest.raises(HarnessError, match="needs the fake provider started"):
        proxy_config(ProxySettings(), None)


def test_cost_map_pricing_leaves_the_spend_model_to_litellms_map_and_needs_the_fake_provider(provider: FakeProvider) -> None:
    from pydantic import ValidationError

    from harness.proxy.proxy import proxy_config
    from harness.proxy.settings import ProxySettings

    settings = ProxySettings.model_validate({"model": {"pricing": "cost_map"}})
    spend = proxy_config(settings, provider)["model_list"][0]["litellm_params"]
    assert spend == {"model": "openai/gpt-4o", "api_key": "sk-fake-provider", "api_base": provider.base_for("harness-mock")}
    with pytest.raises(ValidationError, match="needs the fake provider"):
        ProxySettings.model_validate({"provider": "mock", "model": {"pricing": "cost_map"}})


def test_provider_mock_still_gives_the_mock_config_without_a_fake_provider() -> None:
    from harness.proxy.proxy import UNIT_MODEL, UNIT_MODEL_COSTS, proxy_config
    from harness.proxy.settings import ProxySettings

    models = proxy_config(ProxySettings(provider="mock"), None)["model_list"]
    assert models == [
        {"model_name": "harness-mock", "litellm_params": {"model": "openai/harness-mock", "api_key": "not-used",
                                                          "mock_response": "ok", "input_cost_per_token": 0.001,
                                                          "output_cost_per_token": 0.002}},
        {"model_name": UNIT_MODEL, "litellm_params": {"model": f"openai/{UNIT_MODEL}", "api_key": "not-used",
                                                      "mock_response": "ok", **UNIT_MODEL_COSTS}},
    ]


@pytest.mark.parametrize("spend, message", [
    ("requests: 1, cancel_after_chunks: 2", "`cancel_after_chunks` goes with `stream: true`"),
    ("requests: 2, concurrency: 2, stream: true", "`stream` goes with `requests` or `until`"),
    ("amount: 0.1, model: harness-claude", "`model` goes with `requests` or `until`, not `amount`"),
])
def test_spend_shapes_that_do_not_combine_are_refused_with_a_line(tmp_path, spend: str, message: str) -> None:
    from harness.errors import ScenarioError
    from harness.scenario import load

    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nsteps:\n  - create_key: {{name: k1}}\n  - spend: {{key: k1, {spend}}}\n")
    with pytest.raises(ScenarioError, match="s.yaml:4") as err:
        load(path)
    assert message in str(err.value)


def test_the_request_log_is_bounded_and_since_a_mark_survives_the_trim(monkeypatch, provider: FakeProvider) -> None:
    from harness.upstream import fake_provider

    monkeypatch.setattr(fake_provider, "MAX_LOGGED", 4)
    url = f"{provider.openai_base}/chat/completions"
    for _ in range(3):
        requests.post(url, json={}, timeout=5)
    mark = provider.mark()
    for _ in range(3):
        requests.post(url, json={}, timeout=5)
    assert len(provider.requests) <= 4 and provider.mark() == 6
    assert len(provider.since(mark)) == 3 and len(provider.since(0)) == len(provider.requests)
