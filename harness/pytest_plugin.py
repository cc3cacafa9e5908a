"""Scenario files under a `scenarios/` directory become pytest items, one per release.

* `--litellm-version V` (repeatable; default: the `litellm_versions` ini value) parametrizes them.
* On a release inside the scenario's `affects`, the item is a strict expected failure: a pass
  fails the run ("the bug did not reproduce"). Only a failed expectation counts as the expected
  failure; a harness error is an error everywhere.
* Tags become marks, so `-m organization` and `-k org_budget_reset` work as usual.
* Items of one release run together and share that release's proxy.
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
    parser.addini("litellm_versions", "releases scenario files run on when no --litellm-version is given",
                  type="args", default=DEFAULT_VERSIONS.split())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario: a scenario file run against a real proxy")
    config.addinivalue_line("markers", "slow: needs a release environment, a PostgreSQL server or a running proxy")
    config.stash[_SESSIONS] = _Sessions(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    sessions = config.stash.get(_SESSIONS, None)
    if sessions is not None:
        sessions.close()


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
            if scenario.expected_to_fail_on(version):
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
        from .execution.results import REGRESSION, REPRODUCED, UNSUPPORTED

        session = self.config.stash[_SESSIONS].for_version(self.version)
        self.result = session.run(self.scenario)
        self.user_properties.append(("verdict", self.result.verdict))
        if self.result.verdict == UNSUPPORTED:
            pytest.skip(f"litellm {self.version} cannot run this scenario: {self.result.reason}")
        if self.result.verdict in (REPRODUCED, REGRESSION):
            raise ScenarioFailed(self.result.reason)
        if self.result.verdict == "error":
            raise HarnessError(self.result.reason)

    def repr_failure(self, excinfo, style=None):
        from .report import failure_details, verdict_line

        if self.result is not None and isinstance(excinfo.value, (ScenarioFailed, HarnessError)):
            return f"{verdict_line(self.result)}\n{failure_details(self.result)}"
        if isinstance(excinfo.value, HarnessError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.scenario.name} on litellm {self.version}"


class _Sessions:
    """One database server for the test session, one ReleaseSession per release (lazily)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.server = None
        self.sessions: dict = {}

    def for_version(self, version: str):
        from .db import start_server
        from .execution.session import ReleaseSession

        if self.server is None:
            kind = options.db_choice(self.config.getoption("db"))
            self.server = start_server(kind, self.config.getoption("db_url"))
        if version not in self.sessions:
            # one live release at a time keeps memory flat: items are sorted by release
            for other in list(self.sessions):
                self.sessions.pop(other).close()
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            say = (lambda msg: reporter.write_line(f"    {msg}")) if reporter and self.config.getoption("verbose") > 0 else None
            self.sessions[version] = ReleaseSession(version, self.server, progress=say,
                                                    config=options.run_config(
                                                        self.config.getoption("at"), self.config.getoption("proxy_config"),
                                                        self.config.getoption("redis"), self.config.getoption("redis_url")))
        return self.sessions[version]

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None


_SESSIONS = pytest.StashKey[_Sessions]()
