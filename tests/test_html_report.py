"""`--html`: the page builder on fake results (timeline elements, grid links, escaping, redaction,
nothing fetched at view time) and the optional per-step readings capture."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.execution.hooks import HookList, Hooks
from harness.execution.results import RunOutcome, ScenarioResult, StepResult
from harness.execution.scenario_run import ScenarioRun
from harness.proxy.entities import EntityState
from harness.reports.html import HtmlReport, build_page, cell_id, request_outcome
from harness.scenario import load

ROOT = Path(__file__).resolve().parent.parent
MASTER = "sk-harness-Zq9vJt3mWm0a8s7d6f5g4h3j2k1l0p9o"
VIRTUAL = "sk-7Hh2Kk9Ll0Zz1Xx2Cc3Vv4Bb"
HOSTILE = "<script>alert('x')</script>"


def _reading(clock: str, spend: float, real: str, counters: dict | None = None) -> dict:
    acme = {"kind": "organization", "spend": spend, "max_budget": 0.5}
    if counters is not None:
        acme["counters"] = counters
    return {"clock": clock, "real": real, "spend": {"acme": acme, "k1": {"kind": "key", "spend": spend, "max_budget": None}}}


def fake_result(version: str = "1.82.3", verdict: str = "reproduced", counters: bool = False) -> ScenarioResult:
    scenario = load(ROOT / "scenarios" / "reset_job" / "org_budget_reset.yaml")
    by_line = {p.line: p for p in scenario.steps}
    c = (lambda v: {"replica a": v, "redis": v * 2}) if counters else (lambda v: None)
    plan = [  # line, status, message, clock, spend, real time the step ended
        (14, "passed", "clock frozen", "2026-03-01T10:00:00+00:00", 0.0, "2026-12-02T10:00:01+00:00"),
        (18, "passed", "12 calls, 0.6000 spent", "2026-03-01T10:00:00+00:00", 0.6, "2026-12-02T10:00:02+00:00"),
        (21, "passed", "rejected (400, type=budget_exceeded)", "2026-03-01T10:00:00+00:00", 0.6, "2026-12-02T10:00:03+00:00"),
        (26, "passed", "clock now 2026-03-02T12:00", "2026-03-02T12:00:00+00:00", 0.6, "2026-12-02T10:00:04+00:00"),
        (27, "passed", "reset_budget_job ran", "2026-03-02T12:00:00+00:00", 0.6, "2026-12-02T10:00:05+00:00"),
        (29, "failed", f"rejected for {VIRTUAL} as {MASTER} {HOSTILE}", "2026-03-02T12:00:00+00:00", 0.6,
         "2026-12-02T10:00:06+00:00"),
    ]
    steps = []
    for line, status, message, clock, spend, real in plan:
        placed = by_line[line]
        steps.append(StepResult(placed.index, line, placed.source, placed.step.describe(), status, 0.1, message,
                                readings=_reading(clock, spend, real, c(spend))))
    steps[-1].expected, steps[-1].actual = "accepted", "rejected"
    return ScenarioResult(scenario=scenario, version=version, verdict=verdict, reason=f"line 29: {HOSTILE}",
                          steps=steps, seconds=3.0, secrets=[MASTER],
                          faults=[{"target": "redis", "fault": "blackhole", "detail": {},
                                   "started_at": "2026-12-02T10:00:02.5+00:00", "ended_at": "2026-12-02T10:00:04.5+00:00"}])


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def of_class(self, name: str) -> list[dict]:
        return [a for _t, a in self.found if name in (a.get("class") or "").split()]


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    return parser


def test_a_timeline_has_every_element_on_the_scenarios_clock() -> None:
    page = build_page([fake_result()])
    els = parse(page)
    assert {a["data-entity"] for a in els.of_class("entity-line")} == {"acme", "k1"}
    assert [a["data-entity"] for a in els.of_class("budget-line")] == ["acme"]  # k1 has no max_budget
    assert len(els.of_class("reset-mark")) == 1
    # spend (all accepted), expect_request rejected (passed), expect_request accepted (failed: it was rejected)
    assert len(els.of_class("request-accepted")) == 1 and len(els.of_class("request-rejected")) == 2
    assert [a["data-line"] for a in els.of_class("failing-step")] == ["29"]
    assert len(els.of_class("fault-band")) == 1
    assert not els.of_class("counter-line")  # one replica, no Redis: none read
    failing = page[page.index('class="failing"'):]
    assert "- expect_request: {key: k1, outcome: accepted}" in failing and "&quot;max_budget&quot;: 0.5" in failing
    assert "03-02 12:00" in page  # the advanced scenario clock labels the axis, not the real time


def test_counters_per_replica_and_in_redis_are_lines_of_their_own() -> None:
    els = parse(build_page([fake_result(counters=True)]))
    assert {a["data-counter"] for a in els.of_class("counter-line")} == {"acme replica a", "acme redis"}


def test_the_fault_band_spans_the_steps_it_was_on_during() -> None:
    els = parse(build_page([fake_result()]))
    band = els.of_class("fault-band")[0]
    marks = {a["data-line"]: a for a in els.of_class("failing-step")}
    # started during step 3 (line 21), ended during step 5 (line 27): it ends before the failing step
    assert float(band["x"]) + float(band["width"]) <= float(marks["29"]["x"]) + 0.5


def test_text_is_escaped_and_secrets_redacted() -> None:
    page = build_page([fake_result()])
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert MASTER not in page and VIRTUAL not in page and "[REDACTED]" in page


def test_the_page_fetches_nothing_and_runs_no_script() -> None:
    page = build_page([fake_result(), fake_result("1.85.0", "passed")])
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "@import" not in page and "url(" not in page


def test_the_grid_links_every_cell_to_its_timeline() -> None:
    results = [fake_result(), fake_result("1.85.0", "passed")]
    els = parse(build_page(results))
    links = [a["href"] for t, a in els.found if t == "a"]
    ids = {a["id"] for _t, a in els.found if "id" in a}
    assert links == [f"#{cell_id(r)}" for r in results] and all(link[1:] in ids for link in links)
    assert not [a for t, a in els.found if t == "table" and a.get("class") == "grid"] or len(results) > 1
    assert not parse(build_page(results[:1])).of_class("grid")  # one cell: no grid unless asked


def test_cells_of_one_scenario_name_get_anchors_of_their_own() -> None:
    # explore's findings are all runs of one example scenario name on one release
    results = [fake_result(), fake_result(), fake_result()]
    ids = [a["id"] for t, a in parse(build_page(results, grid=True)).found if t == "section"]
    links = [a["href"][1:] for t, a in parse(build_page(results, grid=True)).found if t == "a"]
    assert len(set(ids)) == 3 and ids[0] == cell_id(results[0])
    assert set(links) <= set(ids)


def test_request_outcomes() -> None:
    spend = StepResult(0, 1, "- spend: {key: k1}", "", "passed", message="3 calls spent 0.1; call 4 was rejected: x")
    assert request_outcome(spend) == "rejected"
    assert request_outcome(StepResult(0, 1, "- expect_request:", "", "failed"), "rejected") == "accepted"
    assert request_outcome(StepResult(0, 1, "- expect_request:", "", "skipped"), "rejected") is None
    assert request_outcome(StepResult(0, 1, "- flush_spend", "", "passed")) is None


def test_the_hook_writes_after_the_run_and_asks_for_readings(tmp_path: Path) -> None:
    hook = HtmlReport(tmp_path / "sub" / "r.html")
    assert HookList([Hooks(), hook]).wants_readings and not HookList([Hooks()]).wants_readings
    result = fake_result()
    hook.after_run(RunOutcome([result.scenario], ["1.82.3"], [result]))
    assert "entity-line" in (tmp_path / "sub" / "r.html").read_text()
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(HarnessError, match="--html"):
        HtmlReport(blocked / "r.html").write([result])


class _Target:
    def api(self, method, path, **kwargs):
        from fakes import Resp
        return Resp(200, {"key": "sk-fake-key-0000000001"})


class _Db:
    def __init__(self):
        self.reads = 0

    def row(self, entity):
        self.reads += 1
        return {"spend": 0.25, "max_budget": 1.0}

    def state(self, entity):
        return EntityState(0.25, None)


@pytest.mark.parametrize("wanted", [False, True])
def test_readings_are_taken_only_when_a_hook_wants_them(tmp_path: Path, wanted: bool) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - create_key: {name: k1, max_budget: 1}\n  - create_key: {name: k2}\n")
    db = _Db()
    results, error = ScenarioRun(load(path), _Target(), db, readings=wanted).run()
    assert error is None
    if wanted:
        assert results[1].readings["spend"]["k1"] == {"kind": "key", "spend": 0.25, "max_budget": 1.0}
        assert results[1].readings["clock"] is None and results[1].readings["real"]
    else:
        assert [r.readings for r in results] == [None, None] and db.reads == 0
