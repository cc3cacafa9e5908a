"""An entity row the release never writes is a failed expectation naming what is missing, not a
harness error: the real `Database` on a fake connection whose queries find nothing."""

from __future__ import annotations

from pathlib import Path

import fakes

from harness.execution.results import verdict_for
from harness.execution.scenario_run import ScenarioRun
from harness.proxy.control import ProxyControl
from harness.proxy.entities import KINDS, Database, Entity, missing_row
from harness.scenario import load


class Cursor:
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params):
        self.log.append((sql, params))

    def fetchone(self):
        return None  # the release wrote no such row


class Conn:
    closed = False

    def __init__(self):
        self.log = []

    def cursor(self):
        return Cursor(self.log)


def fake_db() -> Database:
    db = Database("postgresql://fake/lh_none")
    db._conn = Conn()
    return db


Resp = fakes.Resp


class Target:
    """A proxy whose /team/member_add answers 200, as on a release that then writes no membership row."""

    def __init__(self):
        self.control = ProxyControl.of("a", lambda op, body: {"now": "2026-03-02T10:00:00+00:00", "still_running": []})
        self.calls = []

    def api(self, method, path, **kwargs):
        self.calls.append((path, kwargs.get("json")))
        if path == "/team/new":
            return Resp(200, {"team_id": "t-1"})
        if path == "/user/new":
            return Resp(200, {"user_id": "u1"})
        return Resp(200, {})


HEAD = ("create_team: {name: t1}", "create_user: {name: u1}", "add_team_member: {name: m1, team: t1, user: u1}")


def _run(tmp_path: Path, *steps: str):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\naffects: '<1.73'\nsteps:\n" + "".join(f"  - {s}\n" for s in (*HEAD, *steps)))
    scenario = load(path)
    target = Target()
    results, error = ScenarioRun(scenario, target, fake_db()).run()
    return results, error, verdict_for(scenario, "1.72.0", results, error), target


def test_the_database_reports_no_state_for_a_row_it_does_not_have() -> None:
    db = fake_db()
    member = Entity("team_member", "m1", "u1 in t-1", keys=("u1", "t-1"))
    assert db.row(member) is None and db.state(member) is None
    assert db._conn.log[-1] == (KINDS["team_member"].sql, ("u1", "t-1"))


def test_missing_row_names_the_table_and_the_keys() -> None:
    member = Entity("team_member", "m1", "u1 in t-1", keys=("u1", "t-1"))
    assert missing_row(member) == "no LiteLLM_TeamMembership row for team_member m1 (user_id=u1, team_id=t-1)"
    assert missing_row(Entity("team", "t1", "t-1")) == "no LiteLLM_TeamTable row for team t1 (team_id=t-1)"


def test_expect_state_on_a_row_the_release_never_created_is_a_failed_expectation(tmp_path: Path) -> None:
    results, error, (verdict, reason), _ = _run(tmp_path, "expect_state: {entity: m1, spend: 0}")
    assert error is None and results[-1].status == "failed"
    assert results[-1].message == ("no LiteLLM_TeamMembership row for team_member m1 (user_id=u1, team_id=t-1): "
                                   "the release did not create it (or has deleted it)")
    assert results[-1].expected == "a database row" and results[-1].actual is None
    assert verdict == "reproduced" and "no LiteLLM_TeamMembership row" in reason


def test_advance_clock_past_a_missing_row_is_a_failed_expectation(tmp_path: Path) -> None:
    results, error, (verdict, _), _ = _run(tmp_path, "advance_clock: {past: m1}")
    assert error is None and results[-1].status == "failed" and "no LiteLLM_TeamMembership row" in results[-1].message


def test_a_reference_into_a_missing_row_fails_the_step_instead_of_sending_none(tmp_path: Path) -> None:
    results, error, _, target = _run(
        tmp_path, "api_call: {path: /budget/update, json: {budget_id: '${m1.budget_id}', max_budget: 1}}")
    assert error is None and results[-1].status == "failed" and "no LiteLLM_TeamMembership row" in results[-1].message
    assert all(path != "/budget/update" for path, _ in target.calls)  # nothing sent
