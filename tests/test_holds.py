"""`spend: {hold}` / `release`: the bookkeeping of held calls (harness.proxy.holds) against the
fake provider, with a fake proxy in front (no LiteLLM), and the loader's one-line refusals."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import fakes
import pytest
import requests

from harness.errors import ScenarioError
from harness.execution.scenario_run import ScenarioRun
from harness.proxy.holds import HeldCalls
from harness.scenario import load
from harness.upstream import FakeProvider


@pytest.fixture
def provider():
    provider = FakeProvider().start()
    yield provider
    provider.stop()


def post(provider: FakeProvider) -> requests.Response:
    return requests.post(f"{provider.openai_base}/chat/completions", json={"model": "gpt-4o", "messages": []},
                         timeout=10)


def refused() -> fakes.Resp:
    """A call the proxy answers itself (a budget refusal): it never reaches the provider."""
    return fakes.Resp(429, {"error": {"message": "Budget has been exceeded!", "type": "budget_exceeded"}})


def test_hold_returns_once_every_call_is_held_and_release_returns_their_answers(provider) -> None:
    holds = HeldCalls()
    batch = holds.hold("h", [(provider, partial(post, provider)) for _ in range(3)])
    assert provider.held("h") == 3 and batch.answered == 0
    assert holds.names() == ["h"]
    answers = holds.release("h")
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert provider.held("h") == 0 and holds.names() == []
    assert not any(t.is_alive() for t in batch.threads)


def test_a_call_answered_before_the_provider_withdraws_its_scripted_hold(provider) -> None:
    holds = HeldCalls()
    holds.hold("h", [(provider, partial(post, provider)), (provider, refused)])
    assert provider.held("h") == 1
    assert post(provider).status_code == 200  # not held in the refused call's place
    answers = holds.release("h")
    assert [a.status_code for a in answers] == [200, 429]


def test_close_releases_what_was_never_released_and_joins_the_threads(provider) -> None:
    holds = HeldCalls()
    first = holds.hold("a", [(provider, partial(post, provider))])
    second = holds.hold("b", [(provider, partial(post, provider)) for _ in range(2)])
    assert holds.close() == ["a", "b"]
    assert not any(t.is_alive() for t in first.threads + second.threads)
    assert provider.held("a") == provider.held("b") == 0 and holds.names() == []


def test_a_name_released_holds_again_the_next_time(provider) -> None:
    holds = HeldCalls()
    holds.hold("h", [(provider, partial(post, provider))])
    holds.release("h")
    holds.hold("h", [(provider, partial(post, provider))])  # a later scenario reusing the name
    assert provider.held("h") == 1
    holds.close()


def test_hold_without_a_fake_provider_and_an_unknown_release_are_harness_errors() -> None:
    from harness.errors import HarnessError

    holds = HeldCalls()
    with pytest.raises(HarnessError, match="needs the fake provider, not `provider: mock`"):
        holds.hold("h", [(None, refused)])
    with pytest.raises(HarnessError, match="no calls are held under `x`"):
        holds.release("x")


class FakeProxy:
    """The proxy reduced to forwarding chat calls to its fake provider; management calls succeed."""

    base_url = "http://127.0.0.1:9"

    def __init__(self, upstream: FakeProvider):
        self.upstream = upstream

    def api(self, method, path, **kwargs):
        return fakes.Resp(200, {"key": "sk-test-123456789", "user_id": "u"})

    def chat(self, key, end_user=None, **kwargs):
        return post(self.upstream)

    control = fakes.idle_control()


def scenario(tmp_path: Path, *steps: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nproxy: {provider: fake}\nsteps:\n  - create_key: {name: k}\n"
                    + "".join(f"  - {s}\n" for s in steps))
    return path


def test_release_notes_each_outcome_and_checks_expect(tmp_path, provider) -> None:
    path = scenario(tmp_path, "spend: {key: k, requests: 2, hold: h}", "expect_request: {key: k, outcome: accepted}",
                    "release: {name: h, expect: rejected}")
    steps, error = ScenarioRun(load(path), FakeProxy(provider), fakes.Db()).run()
    assert [s.status for s in steps] == ["passed", "passed", "passed", "failed"], [s.message for s in steps]
    assert steps[1].message == "2 of 2 calls held at the provider as `h`"
    assert "`h` released: 2 of 2 accepted" in steps[3].message and "1: accepted" in steps[3].message
    assert error is None


def test_a_scenario_that_ends_failed_with_calls_held_releases_them_and_joins_its_threads(tmp_path, provider) -> None:
    path = scenario(tmp_path, "spend: {key: k, requests: 2, hold: h}", "expect_request: {key: k, outcome: rejected}")
    run = ScenarioRun(load(path), FakeProxy(provider), fakes.Db())
    steps, _ = run.run()
    assert [s.status for s in steps] == ["passed", "passed", "failed"], [s.message for s in steps]
    assert provider.held("h") == 0 and run.fleet.holds.names() == []
    assert not [t for t in threading.enumerate() if t.name.startswith("hold-h-")]


def test_an_interrupted_scenario_releases_its_held_calls(tmp_path, provider) -> None:
    path = scenario(tmp_path, "spend: {key: k, requests: 2, hold: h}", "expect_request: {key: k, outcome: accepted}")
    run = ScenarioRun(load(path), FakeProxy(provider), fakes.Db())
    real = run.execute

    def interrupted(placed):
        if placed.step.action == "expect_request":
            raise KeyboardInterrupt
        return real(placed)

    run.execute = interrupted
    with pytest.raises(KeyboardInterrupt):
        run.run()
    assert provider.held("h") == 0 and run.fleet.holds.names() == []
    assert not [t for t in threading.enumerate() if t.name.startswith("hold-h-")]


@pytest.mark.parametrize("proxy, steps, line, message", [
    ("proxy: {provider: mock}\n", ["spend: {key: k, requests: 2, hold: h}"], 5,
     "`hold` needs the fake provider, not `provider: mock`"),
    ("proxy: {provider: fake}\n", ["spend: {key: k, requests: 2, hold: h}", "release: g"], 6,
     "`release: g` names no `hold` of an earlier `spend` step; holds: h"),
    ("proxy: {provider: fake}\n", ["release: h", "spend: {key: k, requests: 2, hold: h}"], 5,
     "`release: h` names no `hold`"),
    ("proxy: {provider: fake}\n", ["spend: {key: k, requests: 1, hold: h}", "release: h", "release: h"], 7,
     "`h` is released twice"),
    ("proxy: {provider: fake}\n", ["spend: {key: k, requests: 1, hold: h}", "spend: {key: k, requests: 1, hold: h}"], 6,
     "`hold: h` is already the hold of line 5"),
    ("proxy: {provider: fake}\n", ["spend: {key: k, until: 1, hold: h}"], 5, "`hold` goes with `requests: N`"),
])
def test_hold_and_release_mistakes_are_one_line_at_their_line(tmp_path, proxy, steps, line, message) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: s\n" + proxy + "steps:\n  - create_key: {name: k}\n" + "".join(f"  - {s}\n" for s in steps))
    with pytest.raises(ScenarioError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
