"""Deployments in scenario files: both forms of `replicas`, `on:` read as a name, and the checks
that tie `on:` / `replica:` / Redis steps to the deployment (bad files live in
tests/data/bad_scenarios/, checked by test_scenario_loader with their `file:line:` messages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.scenario import load

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad_scenarios"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_no_deployment_is_one_replica_without_redis(tmp_path):
    scenario = load(write(tmp_path, "name: s\nsteps:\n  - run_reset_job\n"))
    assert scenario.deployment.names == ["a"]
    assert scenario.deployment.redis == "none" and scenario.deployment.routing == "round_robin"


def test_list_form_keeps_order_and_gives_empty_settings(tmp_path):
    scenario = load(write(tmp_path, "name: s\ndeployment:\n  replicas: [pod-b, pod_a, c9]\n  redis: env\n"
                                    "  routing: first\nsteps:\n  - run_reset_job\n"))
    d = scenario.deployment
    assert d.names == ["pod-b", "pod_a", "c9"]  # the first is the default, so order matters
    assert all(r.general_settings == {} and r.environment == {} for r in d.replicas.values())
    assert (d.redis, d.routing) == ("env", "first")


def test_mapping_form_carries_each_replicas_own_settings(tmp_path):
    scenario = load(write(tmp_path, """name: s
deployment:
  replicas:
    old: {litellm_settings: {timezone: Asia/Tokyo}, environment: {X_POD: old}}
    new: {}
  redis: coordination
steps:
  - run_reset_job
"""))
    d = scenario.deployment
    assert d.names == ["old", "new"]
    assert d.replicas["old"].litellm_settings == {"timezone": "Asia/Tokyo"}
    assert d.replicas["old"].environment == {"X_POD": "old"} and d.replicas["new"].environment == {}


def test_four_replicas_are_the_most(tmp_path):
    assert len(load(write(tmp_path, "name: s\ndeployment: {replicas: [a, b, c, d]}\nsteps:\n  - run_reset_job\n"))
               .deployment.names) == 4
    with pytest.raises(ScenarioError, match=r"s.yaml:2: `replicas`: a deployment has 1 to 4 replicas, not 5"):
        load(write(tmp_path, "name: s\ndeployment: {replicas: [a, b, c, d, e]}\nsteps:\n  - run_reset_job\n"))


@pytest.mark.parametrize("name", ["B", "1a", "a" * 17, "a.b", "a b"])
def test_bad_replica_names_are_refused_at_their_line(tmp_path, name):
    path = write(tmp_path, f"name: s\ndeployment:\n  replicas:\n    x: {{}}\n    '{name}': {{}}\nsteps:\n  - run_reset_job\n")
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:5: `{name}`: String should match pattern") and "\n" not in message


def test_yaml_on_key_is_the_string_on_not_true(tmp_path):
    """YAML 1.1 reads a bare `on` key as the boolean True; a step's `on:` must stay a replica name."""
    scenario = load(write(tmp_path, """name: s
deployment: {replicas: [a, b]}
steps:
  - create_key: {name: k1, max_budget: 1}
  - run_reset_job: {on: b}
  - expect_request:
      key: k1
      outcome: accepted
      on: a
  - spend: {key: k1, requests: 1, on: all}
  - run_reset_job
"""))
    ons = [p.step.on for p in scenario.steps]
    assert ons == [None, "b", "a", "all", None]
    assert all(p.step.on is not True for p in scenario.steps)


def test_yes_no_off_keys_stay_strings(tmp_path):
    # `on` is the one a scenario uses; the same rule keeps yes/no/off keys as written
    path = write(tmp_path, "name: s\nproxy:\n  litellm_settings: {off: 1, yes: 2, No: 3}\nsteps:\n  - run_reset_job\n")
    assert load(path).proxy.litellm_settings == {"off": 1, "yes": 2, "No": 3}


def test_on_all_and_replica_naming_a_replica_load(tmp_path):
    scenario = load(write(tmp_path, """name: s
deployment: {replicas: [a, b], redis: cache}
steps:
  - stop_replica: {replica: b, how: kill}
  - start_replica: b
  - restart_redis: {how: kill, data: empty}
  - run_reset_job: {on: all}
"""))
    stop, start, restart, job = (p.step for p in scenario.steps)
    assert (stop.replica, stop.how, start.replica) == ("b", "kill", "b")
    assert (restart.how, restart.data, job.on) == ("kill", "empty", "all")


@pytest.mark.parametrize("step", ["freeze_clock: {at: now, on: a}", "advance_clock: {by: 1h, on: all}"])
def test_clock_steps_take_no_on_even_all(tmp_path, step):
    path = write(tmp_path, f"name: s\ndeployment: {{replicas: [a, b]}}\nsteps:\n  - {step}\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:4: `\w+_clock` takes no `on`: the clock is one for the whole"):
        load(path)


@pytest.mark.parametrize("step", ["stop_redis: kill", "start_redis: keep", "restart_redis: {}", "snapshot_redis: s1",
                                  "flush_redis", "redis_network: refuse"])
def test_every_redis_step_needs_deployment_redis(tmp_path, step):
    path = write(tmp_path, f"name: s\ndeployment: {{replicas: [a, b]}}\nsteps:\n  - create_key: {{name: k1}}\n  - {step}\n")
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:5: `") and "needs a Redis: set `deployment: {redis: cache}`" in message
    assert "\n" not in message


def test_a_step_requiring_an_unknown_injector_is_refused_at_its_line(tmp_path, monkeypatch):
    from harness.steps.jobs import FlushSpend

    monkeypatch.setattr(FlushSpend, "requires", frozenset({"dns"}))
    with pytest.raises(ScenarioError, match=r"s.yaml:3: `flush_spend` requires `dns`, which no fault injector "
                                            r"provides; injectors: pg_relay, redis_relay, redis, redis_process, replicas"):
        load(write(tmp_path, "name: s\nsteps:\n  - flush_spend\n"))


def test_the_scenario_requires_what_its_steps_do_and_only_the_front_injectors_split_deployments(tmp_path):
    from harness.execution.session import deployment_key

    head = "name: s\ndeployment: {redis: cache}\nsteps:\n  - create_key: {name: k1}\n"
    plain = load(write(tmp_path, head))
    network = load(write(tmp_path, head + "  - redis_network: refuse\n  - stop_replica: {replica: a}\n"))
    postgres = load(write(tmp_path, head + "  - postgres_network: refuse\n"))
    assert plain.requires == frozenset() and network.requires == {"redis_relay", "replicas"}
    # every Redis deployment has the Redis relay; a PostgreSQL relay is a deployment of its own
    assert deployment_key(plain) == deployment_key(network)
    assert deployment_key(plain) != deployment_key(postgres)


def test_replica_of_a_single_replica_deployment_must_be_a(tmp_path):
    path = write(tmp_path, "name: s\nsteps:\n  - stop_replica: {replica: b}\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:3: `replica: b` names no replica; the deployment has a$"):
        load(path)


def test_unknown_deployment_key_lists_the_allowed_ones(tmp_path):
    path = write(tmp_path, "name: s\ndeployment:\n  replicas: [a]\n  pods: 2\nsteps:\n  - run_reset_job\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:4: unknown key `pods`; allowed: replicas, redis, routing"):
        load(path)


@pytest.mark.parametrize("value, text", [("redis: memcached", "`redis`: Input should be 'none', 'cache'"),
                                         ("routing: random", "`routing`: Input should be 'round_robin' or 'first'")])
def test_bad_redis_and_routing_values(tmp_path, value, text):
    path = write(tmp_path, f"name: s\ndeployment:\n  {value}\nsteps:\n  - run_reset_job\n")
    with pytest.raises(ScenarioError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}:3: {text}")


def test_the_deployment_fixtures_exist():
    """The bad files test_scenario_loader checks include one per deployment rule."""
    names = {p.stem for p in BAD.glob("*.yaml")}
    assert {"deployment_five_replicas", "deployment_bad_replica_name", "deployment_duplicate_replica",
            "deployment_replica_all", "on_unknown_replica", "on_clock_step", "on_fault_step", "replica_unknown",
            "redis_step_without_redis"} <= names
