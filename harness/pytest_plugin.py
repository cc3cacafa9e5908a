"""Scenario files under a `scenarios/` directory become pytest items, one per release.

* `--litellm-version V` (repeatable; default: the `litellm_versions` ini value) parametrizes them.
* On a release inside the scenario's `affects`, the item is a strict expected failure: a pass
  fails the run ("the bug did not reproduce"). Only a failed expectation counts as the expected
  failure; a harness error is an error everywhere.
* Tags become marks, so `-m organization` and `-k org_budget_reset` work as usual.
* Items of one release run together and share that release's proxy.
* `--explore-examples N` sizes the seeded exploration test (tests/test_explore.py); 0 skips it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import options
from .errors import HarnessError, ScenarioError

DEFAULT_VERSIONS = "1.82.3"


class ScenarioFailed(Exception):
    """The scenario's expectations did not hold (what `affects` predicts on affected releases)."""


class ScenarioUnsupported(Exception):
    pass


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("litellm-harness", "LiteLLM budget scenarios")
    options.add_to(group.addoption)
    group.addoption("--explore-examples", dest="explore_examples", type=int, default=4, metavar="N",
                    help="examples of the seeded exploration test (tests/test_explore.py: `explore --seed 1` "
                    "on 1.85.0, every finding replayed); 0 skips it (default 4)")
    group.addoption("--long-scenarios", dest="long_scenarios", action="store_true",
                    help="also run scenario files tagged `long` (minutes per release; skipped otherwise, saying so)")
    parser.addini("litellm_versions", "releases scenario files run on when no --litellm-version is given",
                  type="args", default=DEFAULT_VERSIONS.split())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario: a scenario file run against a real proxy")
    config.addinivalue_line("markers", "slow: needs a release environment, a PostgreSQL server or a running proxy")
    config.stash[_ENGINE] = _Engine(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    engine = config.stash.get(_ENGINE, None)
    if engine is not None:
        engine.close()


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    if file_path.suffix in (".yaml", ".yml") and "scenarios" in file_path.parts and not file_path.name.startswith("_"):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # keep a release's items together so they share its proxy; the rest keep their order
    first_scenario = next((i for i, item in enumerate(items) if isinstance(item, ScenarioItem)), None)
    if first_scenario is None:
        return
    scenario_items = sorted((i for i in items if isinstance(i, ScenarioItem)), key=lambda i: i.version_key)
    others = [i for i in items if not isinstance(i, ScenarioItem)]
    items[:] = others + scenario_items


def versions(config: pytest.Config) -> list[str]:
    chosen = config.getoption("litellm_versions") or config.getini("litellm_versions")
    return list(dict.fromkeys(chosen))


class ScenarioFile(pytest.File):
    def collect(self):
        from .scenario import load

        try:
            scenario = load(self.path)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        for version in versions(self.config):
            item = ScenarioItem.from_parent(self, name=f"{scenario.name}[{version}]", scenario=scenario, version=version)
            item.add_marker(pytest.mark.scenario)
            item.add_marker(pytest.mark.slow)
            for tag in scenario.meta.tags:
                self.config.addinivalue_line("markers", f"{tag}: scenario tag")  # so -m works without warnings
                item.add_marker(getattr(pytest.mark, tag))
            if scenario.meta.long and not self.config.getoption("long_scenarios"):
                item.add_marker(pytest.mark.skip(reason="tagged `long` (minutes per release): "
                                                 "run with --long-scenarios, or `python -m harness run`"))
            elif scenario.expected_to_fail_on(version):
                item.add_marker(
                    pytest.mark.xfail(
                        reason=f"affects {scenario.meta.affects}: the bug should reproduce on {version} "
                        "(a pass here means it did not reproduce)",
                        raises=ScenarioFailed,
                        strict=True,
                    )
                )
            yield item


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario, version: str, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.version = version
        self.result = None

    @property
    def version_key(self):
        from packaging.version import Version

        return Version(self.version)

    def runtest(self) -> None:
        from .verdicts import CheckStatus, Verdict

        self.result = self.config.stash[_ENGINE].cell(self.scenario, self.version)
        verdict = Verdict(self.result.verdict)
        self.user_properties.append(("verdict", str(verdict)))
        if not verdict.earned:
            pytest.skip(f"litellm {self.version} cannot run this scenario ({verdict}): {self.result.reason}")
        if verdict == Verdict.ERROR:
            raise HarnessError(self.result.reason)
        if verdict.check_status == CheckStatus.PRESENT:  # an expectation failed: reproduced or regression
            raise ScenarioFailed(self.result.reason)

    def repr_failure(self, excinfo, style=None):
        from .reports.text import failure_details, verdict_line

        if self.result is not None and isinstance(excinfo.value, (ScenarioFailed, HarnessError)):
            return f"{verdict_line(self.result)}\n{failure_details(self.result)}"
        if isinstance(excinfo.value, HarnessError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.scenario.name} on litellm {self.version}"


class _Engine:
    """The test session's engine (harness.execution), made at the first scenario item: one
    database server, one live release at a time (items are sorted by release)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.engine = None

    def cell(self, scenario, version: str):
        if self.engine is None:
            from .execution.engine import Engine
            from .reports.terminal import ProgressPrinter

            get = self.config.getoption
            hooks = []
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None and get("verbose") > 0:
                hooks.append(ProgressPrinter(_ReporterConsole(reporter)))
            run_config = options.run_config(get("at"), get("proxy_config"), get("redis"), get("redis_url"))
            self.engine = Engine(hooks, run_config, db_kind=options.db_choice(get("db")), db_url=get("db_url"))
        return self.engine.run_cell(scenario, version)

    def close(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            engine.close()


class _ReporterConsole:
    """Progress lines through pytest's terminal reporter (indented under the item)."""

    def __init__(self, reporter):
        self.reporter = reporter

    def print(self, text: str, **_kwargs) -> None:
        from rich.text import Text

        self.reporter.write_line("    " + Text.from_markup(text).plain)


_ENGINE = pytest.StashKey[_Engine]()
