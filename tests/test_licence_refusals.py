"""A licence refusal, wherever a step meets it, is `unsupported` with the refusal as the reason;
a plain 401/403 is a real refusal (failed), and budget rejections stay what they were.

The refusal texts are the ones 1.108.7 answers (status 403, 400 and 500 all occur)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import fakes
import pytest

from harness import assertions
from harness.execution.results import verdict_for
from harness.execution.scenario_run import ScenarioRun
from harness.proxy.control import ProxyControl
from harness.proxy.entities import EntityState
from harness.scenario import load

NOT_PREMIUM = ("You must be a LiteLLM Enterprise user to use this feature. If you have a license please set "
               "`LITELLM_LICENSE` in your env. Get a 7 day trial key here: https://www.litellm.ai/enterprise#trial. "
               "\nPricing: https://www.litellm.ai/#pricing")
#: /organization/* on 1.108.7: the router's dependency raises HTTPException(403, detail={"error": ...})
ORGS = (403, {"detail": {"error": f"Organizations are only available for LiteLLM Enterprise users. {NOT_PREMIUM}"}})
#: /key/{key}/regenerate on 1.108.7: a ValueError, so a 500
REGENERATE = (500, {"error": {"message": f"Regenerating Virtual Keys is an Enterprise feature, {NOT_PREMIUM}",
                              "type": "internal_server_error", "param": None, "code": "500"}})
#: /team/member_add with role admin on 1.108.7
TEAM_ADMIN = (400, {"error": {"message": f"Assigning team admins is a premium feature. {NOT_PREMIUM}",
                              "type": "bad_request_error", "param": None, "code": "400"}})
PLAIN_403 = (403, {"error": {"message": "Access denied: this key may not call /organization/update",
                             "type": "auth_error", "param": None, "code": "403"}})
AUTH_401 = (401, {"error": {"message": "Authentication Error, Only proxy admin can be used to generate, delete, "
                            "update info for new keys/users/teams. Route=/key/generate.", "type": "auth_error",
                            "param": "None", "code": "401"}})
BUDGET_400 = (400, {"error": {"message": "Budget has been exceeded! Key=abc Current cost: 0.15, Max budget: 0.1",
                              "type": "budget_exceeded", "param": None, "code": "400"}})
BUDGET_429 = (429, {"error": {"message": "ExceededBudget: Key over 1d budget. Spend=$0.15, Limit=$0.10",
                              "type": "budget_exceeded", "param": None, "code": "429"}})
OK = (200, {})


Resp = partial(fakes.Resp, cost=0.05)  # every fake answer carries the mock's cost


class Target:
    """Answers each path as told (`answers`: path -> (status, body)), creates succeed by default."""

    def __init__(self, answers: dict[str, tuple[int, dict]] | None = None, chat: list[tuple[int, dict]] | None = None):
        self.answers, self.chats = answers or {}, list(chat or [])
        self.control = ProxyControl.of("a", self._agent)

    def api(self, method, path, **kwargs):
        if path in self.answers:
            return Resp(*self.answers[path])
        if path == "/key/generate":
            return Resp(200, {"key": "sk-licence-test-000000001"})
        if path == "/team/new":
            return Resp(200, {"team_id": "team-1"})
        if path == "/user/new":
            return Resp(200, {"user_id": "u1"})
        if path == "/team/info":
            return Resp(200, {"team_info": {"spend": 0.0, "budget_reset_at": None}})
        return Resp(200, {})

    def chat(self, key, end_user=None, **kwargs):
        return Resp(*(self.chats.pop(0) if self.chats else OK))

    def _agent(self, op, body):
        if op == "route":
            return {"exists": True, "path": body["path"], "fields": None}
        if op == "auth-view":
            return {"entries": {}, "has_spend_counter_cache": True}
        return {"now": "2026-03-02T10:00:00+00:00", "still_running": [], "seconds": 0.0}


class Db:
    def __init__(self):
        self.organizations = []

    def row(self, entity):
        return {"spend": 0.0}

    def state(self, entity):
        return EntityState(0.0, None)

    def insert_organization(self, alias, max_budget, budget_duration, models):
        self.organizations.append(alias)
        return "org-1"


def _run(tmp_path: Path, steps: str, target: Target, db: Db | None = None, affects: str | None = None):
    path = tmp_path / "s.yaml"
    head = f"name: s\naffects: '{affects}'\n" if affects else "name: s\n"
    path.write_text(head + "steps:\n" + "".join(f"  - {s}\n" for s in steps.strip().splitlines()))
    scenario = load(path)
    results, error = ScenarioRun(scenario, target, db or Db()).run()
    verdict, reason = verdict_for(scenario, "1.108.7", results, error)
    return results, error, verdict, reason


# -- the rule itself ---------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [ORGS, REGENERATE, TEAM_ADMIN], ids=["403", "500", "400"])
def test_the_releases_licence_refusals_are_recognised_whatever_their_status(answer) -> None:
    assert assertions.classify(Resp(*answer)).is_licence_refusal


@pytest.mark.parametrize("answer", [PLAIN_403, AUTH_401, BUDGET_400, BUDGET_429, OK],
                         ids=["plain 403", "401", "budget 400", "budget 429", "200"])
def test_other_answers_are_not_licence_refusals(answer) -> None:
    assert not assertions.classify(Resp(*answer)).is_licence_refusal


def test_a_budget_rejection_that_mentions_the_licence_is_still_a_budget_rejection() -> None:
    body = {"error": {"message": f"Budget has been exceeded! Key=abc. {NOT_PREMIUM}", "type": "budget_exceeded"}}
    outcome = assertions.classify(Resp(400, body))
    assert outcome.is_budget_error and not outcome.is_licence_refusal


# -- create, answer, api_state ---------------------------------------------------------------

def test_a_licence_refusal_on_create_is_unsupported(tmp_path: Path) -> None:
    results, error, verdict, reason = _run(tmp_path, "create_team: {name: t1}", Target({"/team/new": TEAM_ADMIN}))
    assert [r.status for r in results] == ["unsupported"] and error is None
    assert verdict == "unsupported" and "/team/new answered 400: Assigning team admins" in reason


def test_create_organization_auto_still_falls_back_to_rows_on_the_licence_refusal(tmp_path: Path) -> None:
    db = Db()
    results, _, verdict, _ = _run(tmp_path, "create_organization: {name: o1, max_budget: 1}",
                                  Target({"/organization/new": ORGS}), db)
    assert results[0].status == "passed" and "Organizations are only available" in results[0].message
    assert db.organizations == ["o1"] and verdict == "passed"


def test_a_plain_403_on_create_is_a_failure_not_unsupported(tmp_path: Path) -> None:
    results, _, verdict, _ = _run(tmp_path, "create_team: {name: t1}", Target({"/team/new": PLAIN_403}))
    assert results[0].status == "failed" and verdict == "regression"


def test_a_licence_refusal_of_a_management_call_is_unsupported(tmp_path: Path) -> None:
    results, _, verdict, reason = _run(tmp_path, "create_team: {name: t1}\nupdate: {entity: t1, max_budget: 2}",
                                       Target({"/team/update": ORGS}))
    assert [r.status for r in results] == ["passed", "unsupported"]
    assert verdict == "unsupported" and "POST /team/update answered 403: Organizations" in reason


@pytest.mark.parametrize("answer", [PLAIN_403, AUTH_401], ids=["403", "401"])
def test_a_plain_refusal_of_a_management_call_is_a_failed_expectation(tmp_path: Path, answer) -> None:
    results, _, verdict, _ = _run(tmp_path, "create_team: {name: t1}\nupdate: {entity: t1, max_budget: 2}",
                                  Target({"/team/update": answer}))
    assert [r.status for r in results] == ["passed", "failed"] and verdict == "regression"
    assert results[1].actual == answer[0]


def test_a_licence_refusal_of_the_info_endpoint_is_unsupported_for_source_api(tmp_path: Path) -> None:
    steps = "create_team: {name: t1}\nexpect_state: {entity: t1, spend: 0, source: api}"
    results, _, verdict, _ = _run(tmp_path, steps, Target({"/team/info": ORGS}))
    assert [r.status for r in results] == ["passed", "unsupported"] and verdict == "unsupported"
    # `both` keeps the database reading and says why the API's is missing
    results, _, verdict, _ = _run(tmp_path, steps.replace("source: api", "source: both"), Target({"/team/info": ORGS}))
    assert results[1].status == "passed" and "api: not read (/team/info answered 403" in results[1].message


def test_a_plain_403_of_the_info_endpoint_is_a_failure(tmp_path: Path) -> None:
    steps = "create_team: {name: t1}\nexpect_state: {entity: t1, spend: 0, source: api}"
    results, _, verdict, _ = _run(tmp_path, steps, Target({"/team/info": PLAIN_403}))
    assert [r.status for r in results] == ["passed", "failed"] and verdict == "regression"


# -- api_call and the steps that send their own requests ---------------------------------------

PATCH_ORG = "api_call: {method: PATCH, path: /organization/update, json: {max_budget: 10}"


def test_a_licence_refusal_of_api_call_is_unsupported_though_200_was_expected(tmp_path: Path) -> None:
    # PR #27631's scenario on 1.108.7: `check` said `present` because of this 403
    steps = f"create_key: {{name: k1}}\n{PATCH_ORG}}}\nexpect_request: {{key: k1, outcome: accepted}}"
    results, error, verdict, reason = _run(tmp_path, steps, Target({"/organization/update": ORGS}), affects=">=1.84.0")
    assert [r.status for r in results] == ["passed", "unsupported", "skipped"]  # the scenario stops there
    assert error is None and verdict == "unsupported"
    assert reason.startswith("line ") and "PATCH /organization/update answered 403: Organizations are only" in reason


def test_api_call_asking_for_the_403_passes(tmp_path: Path) -> None:
    results, _, verdict, _ = _run(tmp_path, PATCH_ORG + ", expect_status: 403}", Target({"/organization/update": ORGS}))
    assert results[0].status == "passed" and verdict == "passed"


def test_api_call_with_any_status_allowed_is_still_unsupported_on_a_licence_refusal(tmp_path: Path) -> None:
    results, _, _, _ = _run(tmp_path, PATCH_ORG + ", expect_status: null}", Target({"/organization/update": REGENERATE}))
    assert results[0].status == "unsupported"


@pytest.mark.parametrize("answer", [PLAIN_403, AUTH_401, (500, {"error": {"message": "boom"}})], ids=["403", "401", "500"])
def test_api_call_answered_with_a_plain_refusal_fails(tmp_path: Path, answer) -> None:
    results, _, verdict, _ = _run(tmp_path, PATCH_ORG + "}", Target({"/organization/update": answer}))
    assert results[0].status == "failed" and results[0].actual == answer[0] and verdict == "regression"


def test_regenerate_key_licence_500_is_unsupported_and_a_plain_401_fails(tmp_path: Path) -> None:
    steps = "create_key: {name: k1}\nregenerate_key: {key: k1}"
    path = "/key/sk-licence-test-000000001/regenerate"
    results, _, verdict, _ = _run(tmp_path, steps, Target({path: REGENERATE}))
    assert results[1].status == "unsupported" and verdict == "unsupported"
    assert "Regenerating Virtual Keys is an Enterprise feature" in results[1].message
    results, _, verdict, _ = _run(tmp_path, steps, Target({path: AUTH_401}))
    assert results[1].status == "failed" and verdict == "regression"


def test_add_team_member_licence_refusal_is_unsupported(tmp_path: Path) -> None:
    steps = "create_team: {name: t1}\ncreate_user: {name: u1}\nadd_team_member: {team: t1, user: u1, role: admin}"
    results, error, verdict, _ = _run(tmp_path, steps, Target({"/team/member_add": TEAM_ADMIN}))
    assert results[2].status == "unsupported" and error is None and verdict == "unsupported"


def test_a_licence_refusal_on_the_request_path_is_unsupported(tmp_path: Path) -> None:
    results, _, verdict, _ = _run(tmp_path, "create_key: {name: k1}\nspend: {key: k1, requests: 2}",
                                  Target(chat=[OK, ORGS]))
    assert results[1].status == "unsupported" and "call 2 of `spend` answered 403" in results[1].message
    results, _, verdict, _ = _run(tmp_path, "create_key: {name: k1}\nexpect_request: {key: k1, outcome: rejected}",
                                  Target(chat=[REGENERATE]))
    assert results[1].status == "unsupported" and verdict == "unsupported"


@pytest.mark.parametrize("answer", [BUDGET_400, BUDGET_429], ids=["400", "429"])
def test_budget_rejections_are_unaffected(tmp_path: Path, answer) -> None:
    steps = ("create_key: {name: k1}\nspend: {key: k1, requests: 3, allow_rejections: true}\n"
             "expect_request: {key: k1, outcome: rejected, error: {type: budget_exceeded}}\n"
             "expect_request: {key: k1, outcome: accepted}")
    results, _, verdict, _ = _run(tmp_path, steps, Target(chat=[OK, answer, answer, answer]), affects=">=1.0")
    assert [r.status for r in results] == ["passed", "passed", "passed", "failed"]
    assert "call 2 was rejected" in results[1].message and verdict == "reproduced"
    # without allow_rejections the rejection fails the spend step, as before
    results, _, _, _ = _run(tmp_path, "create_key: {name: k1}\nspend: {key: k1, requests: 2}", Target(chat=[OK, answer]))
    assert results[1].status == "failed"
