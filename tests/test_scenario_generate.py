"""Scenarios built from the reference model (harness/scenario/generate.py) are valid scenario
files whose expectations are the model's predictions."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.model import ModelOptions
from harness.scenario import loader
from harness.scenario.generate import Budget, Topology, build, render

START = datetime(2026, 3, 2, 10, tzinfo=UTC)
budgets = st.builds(Budget, st.one_of(st.none(), st.sampled_from((0.05, 0.1, 0.15))),
                    st.one_of(st.none(), st.sampled_from(("1d", "7d", "1mo", "30s", "2h"))))
topologies = st.builds(Topology, st.one_of(st.none(), budgets), st.one_of(st.none(), budgets), budgets)
actions = st.lists(st.one_of(st.just(("request",)), st.just(("reset",)),
                             st.tuples(st.just("advance"), st.sampled_from(("1h", "1d2h", "8d", "32d")))),
                   min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(topologies, actions)
def test_every_generated_scenario_loads(tmp_path_factory, topology, steps):
    scenario, lines = build(topology, steps, START, name="generated", options=ModelOptions(), header=["seed 1"])
    path = tmp_path_factory.mktemp("gen") / "generated.yaml"
    path.write_text(render(scenario, lines))
    loaded = loader.load(path)
    assert len(loaded.steps) == len(scenario["steps"])
    assert path.read_text().startswith("# seed 1\n# model options: defaults")


def test_the_model_predicts_the_organization_reset():
    # the shape of upstream #25495: a 1d organization budget is spent, the day ends, the job runs
    topology = Topology(Budget(0.1, "1d"), None, Budget(None, None))
    scenario, _ = build(topology, [("request",), ("request",), ("request",), ("advance", "1d2h"), ("reset",), ("request",)],
                        START, name="org", options=ModelOptions())
    outcomes = [s["expect_request"]["outcome"] for s in scenario["steps"] if isinstance(s, dict) and "expect_request" in s]
    assert outcomes == ["accepted", "accepted", "rejected", "accepted"]  # organizations block at the limit
    org_spends = [s["expect_state"]["spend"] for s in scenario["steps"]
                  if isinstance(s, dict) and "expect_state" in s and s["expect_state"]["entity"] == "org1"
                  and "spend" in s["expect_state"]]  # the others check budget_reset_at
    assert org_spends == [0.05, 0.1, 0.1, 0.0, 0.05]
    # leaving organizations out of the reset job (the option for releases before 1.85.0) keeps it blocked
    old, _ = build(topology, [("request",), ("request",), ("advance", "1d2h"), ("reset",), ("request",)], START,
                   name="org", options=ModelOptions(reset_kinds=("key", "user", "team", "team_member", "end_user", "tag")))
    assert [s["expect_request"]["outcome"] for s in old["steps"] if isinstance(s, dict) and "expect_request" in s][-1] == "rejected"


@given(topologies, actions)
def test_every_expectation_step_names_the_rule_it_checks(topology, steps):
    rules: list = []
    scenario, _ = build(topology, steps, START, name="generated", options=ModelOptions(), rules=rules)
    assert len(rules) == len(scenario["steps"])
    for step, rule in zip(scenario["steps"], rules):
        is_expectation = isinstance(step, dict) and next(iter(step)).startswith("expect_")
        assert (rule is not None) == is_expectation
