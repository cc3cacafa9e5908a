"""The vocabulary of outcomes, each with everything it means in one place.

A `Verdict` judges one cell (scenario x release); a `StepStatus` one step; a `CheckStatus` one
known bug on a release (`check`). Every command, report and the pytest plugin reads meaning,
style, marks and exit behaviour from here, never from a table of its own. They are `StrEnum`s:
they compare equal to their text and are written as it in JSON.
"""

from __future__ import annotations

from enum import StrEnum


class CheckStatus(StrEnum):
    """A known bug on a release, from the measurement (not from `affects`)."""

    PRESENT = "present"
    ABSENT = "absent"
    UNSUPPORTED = "unsupported"
    ERROR = "error"

    @property
    def style(self) -> str:
        return _CHECK_STYLE[self]

    @property
    def markdown(self) -> str:
        return _CHECK_MARKDOWN[self]


#: a bug's combined status is the first of these that any of its scenarios has
CHECK_PRECEDENCE = (CheckStatus.PRESENT, CheckStatus.ERROR, CheckStatus.ABSENT, CheckStatus.UNSUPPORTED)
_CHECK_STYLE = {CheckStatus.PRESENT: "bold yellow", CheckStatus.ABSENT: "bold green",
                CheckStatus.UNSUPPORTED: "bold blue", CheckStatus.ERROR: "bold red"}
_CHECK_MARKDOWN = {CheckStatus.PRESENT: "🐞 present", CheckStatus.ABSENT: "✅ absent",
                   CheckStatus.UNSUPPORTED: "⏭️ unsupported", CheckStatus.ERROR: "❌ error"}


class Verdict(StrEnum):
    PASSED = "passed"
    REPRODUCED = "reproduced"
    REGRESSION = "regression"
    UNEXPECTED_PASS = "unexpected pass"
    ERROR = "error"
    UNSUPPORTED = "unsupported"
    UNINSTALLABLE = "uninstallable"

    @property
    def meaning(self) -> str:
        return _VERDICTS[self][0]

    @property
    def style(self) -> str:
        """rich style of the verdict in terminal lines and tables"""
        return _VERDICTS[self][1]

    @property
    def markdown(self) -> str:
        return _VERDICTS[self][2]

    @property
    def ci_outcome(self) -> str:
        """`pass`, `fail` or `skip`: JUnit's outcome and whether a run fails"""
        return _VERDICTS[self][3]

    @property
    def failing(self) -> bool:
        """fails a run: its exit code, a pytest item, a JUnit testcase"""
        return self.ci_outcome == "fail"

    @property
    def earned(self) -> bool:
        """the release ran the scenario to a verdict (not unsupported, not uninstallable)"""
        return self.ci_outcome != "skip"

    @property
    def check_status(self) -> CheckStatus:
        return _VERDICTS[self][4]

    @property
    def bisect_outcome(self) -> str | None:
        """`holds` (every expectation held), `fails` (one failed), or None (no outcome)"""
        return _VERDICTS[self][5]


HOLDS, FAILS = "holds", "fails"
_VERDICTS: dict[Verdict, tuple[str, str, str, str, CheckStatus, str | None]] = {
    # verdict: (meaning, style, markdown, ci outcome, check status, bisect outcome)
    Verdict.PASSED: ("every expectation held", "bold green", "✅ passed", "pass", CheckStatus.ABSENT, HOLDS),
    Verdict.REPRODUCED: (
        "an expectation failed on a release inside `affects`: the known bug reproduces (not a failure)",
        "bold yellow", "🐞 reproduced", "pass", CheckStatus.PRESENT, FAILS),
    Verdict.UNEXPECTED_PASS: (
        "every expectation held on a release inside `affects`: the bug did not reproduce",
        "bold red", "❌ unexpected pass", "fail", CheckStatus.ABSENT, HOLDS),
    Verdict.REGRESSION: ("an expectation failed on a release outside `affects`", "bold red", "❌ regression", "fail",
                         CheckStatus.PRESENT, FAILS),
    Verdict.ERROR: ("the harness could not do a step", "bold red", "❌ error", "fail", CheckStatus.ERROR, None),
    Verdict.UNSUPPORTED: (
        "the release cannot run a step for a reason outside the scenario (endpoint missing or licence-gated): "
        "no verdict", "bold blue", "⏭️ unsupported", "skip", CheckStatus.UNSUPPORTED, None),
    Verdict.UNINSTALLABLE: ("no environment could be built for the release: no verdict", "dim", "⏭️ uninstallable",
                            "skip", CheckStatus.UNSUPPORTED, None),
}


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    UNSUPPORTED = "unsupported"
    SKIPPED = "skipped"

    @property
    def mark(self) -> str:
        """four columns in the progress line of a step"""
        return _STEP_MARK[self]

    @property
    def problem(self) -> bool:
        """shown with its details in a failure report"""
        return self in (StepStatus.FAILED, StepStatus.ERROR, StepStatus.UNSUPPORTED)

    @property
    def stops_scenario(self) -> bool:
        """the scenario's later steps are not run after it"""
        return self in (StepStatus.ERROR, StepStatus.UNSUPPORTED)


_STEP_MARK = {StepStatus.PASSED: "ok  ", StepStatus.FAILED: "FAIL", StepStatus.ERROR: "ERR ",
              StepStatus.UNSUPPORTED: "N/A ", StepStatus.SKIPPED: "skip"}


def exit_code(verdicts, whole: bool = True) -> int:
    """1 when a verdict fails the run, or (``whole``) when no cell earned a verdict; else 0.

    ``whole=False`` is one shard of a matrix: "no verdict" is the whole matrix's to judge."""
    verdicts = [Verdict(v) for v in verdicts]
    if any(v.failing for v in verdicts):
        return 1
    if whole and verdicts and not any(v.earned for v in verdicts):
        return 1
    return 0
