"""`explore` without a proxy: generated examples are valid, replayable scenario files; the same
seed draws the same files; a catalogue scenario's story, generated, fails under the signature
harness/scenario/known.py labels with that scenario's report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, seed, settings

from harness.commands.explore import KINDS, STARTS, catalogue_reports, strategies
from harness.model import ModelOptions
from harness.scenario import generate as g
from harness.scenario import loader
from harness.scenario.generate import TIER, Budget, Topology, build, render
from harness.scenario.known import KNOWN, Report, label

START = datetime(2026, 3, 2, 10, tzinfo=UTC)


def _files(seed_value: int, count: int, tmp_path) -> list[str]:
    texts: list[str] = []

    @seed(seed_value)
    @settings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategies(set(KINDS)))
    def draw(drawn):
        rules: list = []
        scenario, lines = build(*drawn, name="example", options=ModelOptions(), rules=rules)
        assert len(rules) == len(scenario["steps"])  # one signature slot per step
        text = render(scenario, lines)
        path = tmp_path / f"e{len(texts)}.yaml"
        path.write_text(text)
        loader.load(path)  # every example is a scenario `run` accepts
        texts.append(text)

    draw()
    return texts


def test_the_same_seed_draws_the_same_scenario_files_and_another_seed_others(tmp_path):
    first = _files(7, 25, tmp_path)
    assert first == _files(7, 25, tmp_path)
    assert first != _files(8, 25, tmp_path)


def _signatures(topology: Topology, actions: list) -> list[tuple[str, str, str]]:
    rules: list = []
    build(topology, actions, START, name="story", options=ModelOptions(), rules=rules)
    return [r for r in rules if r is not None]


NONE = Budget(None, None)
DAY = Budget(0.05, "1d")
STORIES = {
    "org_budget_reset": (Topology(DAY, None, NONE), [("request",), ("request",), ("advance", "1d2h"), ("reset",)]),
    "tag_budget_reset": (Topology(None, None, NONE, tag=TIER, tier=DAY),
                         [("request",), ("request",), ("advance", "1d2h"), ("reset",)]),
    "end_user_budget_raised": (Topology(None, None, NONE, end_user=Budget(0.05, None)),
                               [("request",), ("request",), ("request",), ("update", "end_user", "max_budget", 10.0), ("request",)]),
    "tag_budget_raised": (Topology(None, None, NONE, tag=Budget(0.05, None)),
                          [("request",), ("request",), ("request",), ("update", "tag", "max_budget", 10.0), ("request",)]),
    "team_member_budget_raised": (Topology(None, Budget(100, None), NONE, user=NONE, member=0.05),
                                  [("request",), ("request",), ("request",), ("update", "team_member", "max_budget", 10.0), ("request",)]),
    "team_member_update_budget_duration": (
        Topology(None, Budget(100, None), NONE, user=NONE, member=0.05),
        [("update", "team_member", "budget_duration", "1d"), ("request",), ("request",), ("advance", "1d2h"), ("reset",)]),
    "end_user_update_budget_duration": (
        Topology(None, None, NONE, end_user=NONE),
        [("update", "end_user", "max_budget", 0.05), ("update", "end_user", "budget_duration", "1d"), ("request",),
         ("request",), ("advance", "1d2h"), ("reset",)]),
    "key_reset_spend_counter": (Topology(None, None, Budget(0.05, None)), [("request",), ("request",), ("request",), ("reset_spend", "key"), ("request",)]),
}


@pytest.mark.parametrize("scenario", sorted(STORIES))
def test_a_catalogue_story_generated_carries_the_signature_labelled_with_its_report(scenario):
    topology, actions = STORIES[scenario]
    signatures = [s for s, name in KNOWN.items() if name == scenario]
    assert signatures, f"{scenario} has no signature in harness/scenario/known.py"
    assert set(signatures) & set(_signatures(topology, actions)), _signatures(topology, actions)


def test_every_known_signature_names_a_catalogue_scenario_with_an_issue():
    reports = catalogue_reports("scenarios")
    missing = {name for name in KNOWN.values() if name not in reports}
    assert not missing, f"harness/scenario/known.py names scenarios the catalogue lacks: {sorted(missing)}"
    org = label(("organization", "reset", g.ZEROED), "1.82.3", reports)
    assert org.issue == "https://github.com/BerriAI/litellm/issues/25495" and org.in_measured_range
    assert label(("organization", "reset", g.ZEROED), "1.85.0", reports).in_measured_range is False


def test_a_signature_outside_the_table_is_new():
    reports = {"org_budget_reset": Report("org_budget_reset", "https://example.invalid/1", "<2")}
    assert label(("key", "request", g.ACCRUES), "1.0", reports).issue is None


def test_a_reported_signature_is_left_out_so_the_next_discrepancy_shows():
    topology, actions = STORIES["org_budget_reset"]
    rules: list = []
    skip = frozenset({("organization", "reset", g.ZEROED)})
    scenario, _ = build(topology, actions, START, name="s", options=ModelOptions(), rules=rules, skip=skip)
    assert skip.isdisjoint(r for r in rules if r) and len(rules) == len(scenario["steps"])
    assert ("key", "reset", g.KEPT) in rules  # the others stay


def test_the_frozen_clock_starts_are_fixed_instants():
    assert all(s.tzinfo is UTC for s in STARTS)


def test_relabel_labels_an_earlier_runs_findings_against_the_catalogue_now(tmp_path, capsys):
    import json

    from harness import cli

    finding = tmp_path / "findings" / "finding_01_organization_reset.yaml"
    finding.parent.mkdir()
    finding.write_text("# new: no catalogue scenario fails this way\nname: f\nsteps: [flush_spend]\n")
    entry = {"id": "F01", "signature": ["organization", "reset", g.ZEROED], "rule": g.ZEROED, "known": None,
             "scenario": str(finding), "summary": "organization / reset"}
    (tmp_path / "findings.json").write_text(json.dumps({"litellm": "1.82.3", "seed": 1, "findings": [entry]}))
    assert cli.main(["explore", "--relabel", "--out", str(tmp_path)]) == 1
    doc = json.loads((tmp_path / "findings.json").read_text())
    assert doc["findings"][0]["known"] == "https://github.com/BerriAI/litellm/issues/25495"
    assert finding.read_text().startswith("# known: https://github.com/BerriAI/litellm/issues/25495")
    assert finding.read_text().count("\n") == 3  # the label line replaced, the scenario kept


def test_after_a_reported_spend_discrepancy_the_entity_and_what_it_decides_are_no_longer_predicted():
    topology = Topology(DAY, None, NONE)
    actions = [("request",), ("request",), ("advance", "1d2h"), ("reset",), ("request",), ("request",)]
    rules: list = []
    scenario, _ = build(topology, actions, START, name="s", options=ModelOptions(), rules=rules,
                        skip=frozenset({("organization", "reset", g.ZEROED)}))
    after_reset = scenario["steps"][[i for i, s in enumerate(scenario["steps"]) if s == "run_reset_job"][0]:]
    assert not any(r and r[0] == "organization" for r in rules[len(scenario["steps"]) - len(after_reset):])
    # the requests after it are still made, without a predicted outcome; the key spends through the org
    assert [s for s in after_reset if isinstance(s, dict) and "spend" in s] and \
        not [s for s in after_reset if isinstance(s, dict) and "expect_request" in s]


def test_a_request_that_spends_an_entity_up_to_its_budget_makes_the_event_that_lifts_it_the_family():
    # the key reaches its 0.05 with the one request; the reset job lifts it: the next request's
    # expectation is the key's (key / reset), not a request no budget decided (`none`)
    topology = Topology(None, None, Budget(0.05, "2h"), user=Budget(None, "2h"))
    actions = [("advance", "3h"), ("request",), ("reset",), ("request",)]
    rules: list = []
    scenario, _ = build(topology, actions, datetime(2026, 6, 1, tzinfo=UTC), name="s", options=ModelOptions(), rules=rules)
    outcomes = [r for step, r in zip(scenario["steps"], rules) if isinstance(step, dict) and "expect_request" in step]
    assert outcomes == [("none", "request", g.ADMITTED), ("key", "reset", g.ADMITTED_AGAIN)]


def test_a_customer_budget_duration_update_is_sent_as_the_raw_body():
    # the release's request model may lack the field (#33941): `update` would be unsupported there
    topology, actions = STORIES["end_user_update_budget_duration"]
    scenario, _ = build(topology, actions, START, name="s", options=ModelOptions())
    calls = [s["api_call"] for s in scenario["steps"] if isinstance(s, dict) and "api_call" in s]
    assert calls == [{"path": "/customer/update", "json": {"user_id": "${customer1.id}", "budget_duration": "1d"}}]
    updates = [s["update"] for s in scenario["steps"] if isinstance(s, dict) and "update" in s]
    assert updates == [{"entity": "customer1", "max_budget": 0.05}]


def test_an_update_giving_the_same_budget_duration_sets_the_period_afresh():
    from harness.model import World

    world = World(ModelOptions())
    world.create("user", "u", datetime(2026, 6, 1, tzinfo=UTC), max_budget=None, budget_duration="1d")
    world.update("user", "u", datetime(2026, 6, 2, 2, tzinfo=UTC), budget_duration="1d")
    assert world.get("user", "u").budget_reset_at == datetime(2026, 6, 3, tzinfo=UTC)
    # without the option the period stands
    world = World(ModelOptions(duration_update_moves_reset_at=False))
    world.create("user", "u", datetime(2026, 6, 1, tzinfo=UTC), max_budget=None, budget_duration="1d")
    world.update("user", "u", datetime(2026, 6, 2, 2, tzinfo=UTC), budget_duration="1d")
    assert world.get("user", "u").budget_reset_at == datetime(2026, 6, 2, tzinfo=UTC)


def test_the_customer_update_that_leaves_budget_reset_at_is_labelled_with_33941():
    reports = catalogue_reports("scenarios")
    found = label(("end_user", "update_budget_duration", g.SET_AT_CREATE), "1.82.3", reports)
    assert found.issue == "https://github.com/BerriAI/litellm/issues/33941" and found.in_measured_range


def test_a_tier_raised_while_another_budget_still_blocks_is_named_once_a_request_may_pass():
    # explore --litellm 1.82.3 --seed 1: the end user on a raised tier was still rejected after
    # the key's reset_spend; the expectation is the end user's (its tier's update), not the key's
    topology = Topology(None, Budget(None, "7d"), NONE, end_user=TIER, tier=Budget(0.05, "1d"))
    actions = [("request",), ("request",), ("advance", "3h"), ("request",), ("update", "key", "max_budget", 10.0),
               ("update", "key", "max_budget", 0.05), ("reset",), ("update", "budget", "max_budget", 10.0), ("request",),
               ("reset_spend", "key"), ("reset_spend", "key"), ("request",)]
    rules: list = []
    scenario, _ = build(topology, actions, START, name="s", options=ModelOptions(), rules=rules)
    outcomes = [r for step, r in zip(scenario["steps"], rules) if isinstance(step, dict) and "expect_request" in step]
    assert outcomes[-1] == ("end_user", "tier_update_max_budget", g.ADMITTED_AGAIN)
    assert label(outcomes[-1], "1.82.3", catalogue_reports("scenarios")).issue is None  # no catalogue report yet


def test_a_budget_set_by_an_update_that_the_next_requests_reach_is_signed_by_the_update():
    # explore --litellm 1.82.3 --seed 1: a tag spent 0.3 without a budget, /tag/update gave it
    # 0.3, the next request took it over, the one after was admitted: the update did not take
    topology = Topology(None, None, NONE, tag=NONE)
    actions = [("request",)] * 6 + [("update", "tag", "max_budget", 0.3), ("request",), ("request",)]
    rules: list = []
    scenario, _ = build(topology, actions, START, name="s", options=ModelOptions(), rules=rules)
    outcomes = [r for step, r in zip(scenario["steps"], rules) if isinstance(step, dict) and "expect_request" in step]
    assert outcomes[-2:] == [("none", "request", g.ADMITTED), ("tag", "update_max_budget", g.rejected_by("tag"))]
