"""`--html` pages from real runs, opened from file:// in Debian's headless chromium (selenium with
the system chromedriver: nothing is downloaded). A `run` of the seed scenario on 1.82.3 (its
reset does not happen: line 29 fails), a `check` grid of two scenarios on 1.82.3, and the findings
page of a short seeded `explore` there.

In CI (CI=true) a missing chromium, chromedriver or selenium fails; elsewhere the test skips
saying which is missing. Cost with a warm 1.82.3 cache: ~70 s on 2 busy cores (two proxies).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SEED = "scenarios/reset_job/org_budget_reset.yaml"
OTHER = "scenarios/endpoints/user_new_calendar_reset.yaml"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e .)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--window-size=1000,800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: selenium-manager is never asked to download one
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory, browser):
    out = tmp_path_factory.mktemp("html")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.setattr(cli.signal, "signal", lambda *a: None)  # keep pytest's own handlers
        run_page, check_page = out / "run.html", out / "check.html"
        code = cli.main(["run", SEED, "--litellm", "1.82.3", "--html", str(run_page)])
        assert code == 0 and run_page.is_file()  # reproduced, as `affects` says
        code = cli.main(["check", "--catalogue", SEED, OTHER, "--litellm", "1.82.3", "--no-fail",
                         "--html", str(check_page)])
        assert code == 0 and check_page.is_file()
        explore_page = out / "explore.html"
        code = cli.main(["explore", "--litellm", "1.82.3", "--seed", "1", "--examples", "6", "--time-budget", "60",
                         "--out", str(out / "explore"), "--html", str(explore_page)])
        assert code in (0, 1) and explore_page.is_file()
    return run_page, check_page, explore_page


def _errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _shown(driver, css: str):
    from selenium.webdriver.common.by import By

    found = [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
    assert found, f"nothing rendered for {css}"
    return found


def test_the_run_page_draws_the_failing_reset(browser, pages) -> None:
    from selenium.webdriver.common.by import By

    run_page, *_ = pages
    browser.get(run_page.as_uri())
    lines = {e.get_attribute("data-entity") for e in _shown(browser, "svg.timeline polyline.entity-line")}
    assert lines == {"acme", "k1"}
    assert [e.get_attribute("data-entity") for e in _shown(browser, "svg.timeline line.budget-line")] == ["acme"]
    assert len(_shown(browser, "svg.timeline line.reset-mark")) == 1
    assert _shown(browser, "svg.timeline circle.request-accepted") and _shown(browser, "svg.timeline circle.request-rejected")
    failing, = _shown(browser, "svg.timeline rect.failing-step")
    assert failing.get_attribute("data-line") == "29" and failing.rect["width"] > 0
    box = browser.find_element(By.CSS_SELECTOR, "div.failing")
    assert box.get_attribute("data-line") == "29"
    assert "expect_request: {key: k1, outcome: accepted}" in box.find_element(By.CSS_SELECTOR, ".source-line").text
    assert '"max_budget": 0.5' in box.find_element(By.CSS_SELECTOR, ".readings").text
    assert _errors(browser) == []


def test_the_check_grid_links_to_each_cell(browser, pages) -> None:
    from selenium.webdriver.common.by import By

    _, check_page, _ = pages
    browser.get(check_page.as_uri())
    links = _shown(browser, "table.grid a")
    assert len(links) == 2
    targets = [link.get_attribute("href").split("#", 1)[1] for link in links]
    for target in targets:
        browser.get(check_page.as_uri())
        browser.find_element(By.CSS_SELECTOR, f'table.grid a[href="#{target}"]').click()
        assert browser.current_url.endswith(f"#{target}")
        section = browser.find_element(By.ID, target)
        top = browser.execute_script("return arguments[0].getBoundingClientRect().top", section)
        assert abs(top) < 5 or browser.execute_script(
            "return window.innerHeight + window.scrollY >= document.body.scrollHeight - 2"), top  # scrolled to it
        assert section.find_elements(By.CSS_SELECTOR, "svg.timeline")
    assert _errors(browser) == []


def test_the_explore_page_draws_each_finding(browser, pages) -> None:
    import json

    from selenium.webdriver.common.by import By

    explore_page = pages[2]
    findings = json.loads((explore_page.parent / "explore" / "findings.json").read_text())["findings"]
    browser.get(explore_page.as_uri())
    assert "explore --litellm 1.82.3 --seed 1" in browser.find_element(By.CSS_SELECTOR, "h1").text
    sections = browser.find_elements(By.CSS_SELECTOR, "section.cell")
    # one smallest example per finding; a short run may find none (then only the header renders;
    # a finding's section is the `run` page's renderer, drawn above)
    assert len(sections) == len(findings)
    assert len({s.get_attribute("id") for s in sections}) == len(sections)
    for section in sections:
        assert section.find_elements(By.CSS_SELECTOR, "svg.timeline rect.failing-step")
    assert _errors(browser) == []
