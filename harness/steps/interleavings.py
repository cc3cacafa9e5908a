"""Steps that stop a function inside the proxy at a barrier and let it go, so that two replicas'
jobs (or a job and a request) interleave exactly as the scenario says (`pause`, `wait_paused`,
`resume`; with `run_reset_job: {wait: false}`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..errors import HarnessError
from ..proxy.control import AgentError
from .base import Step, StepContext, Unsupported

#: seconds a pause holds its calls at most, unless the step says otherwise
PAUSE_S = 30.0


def _unsupported_or_raise(exc: AgentError) -> None:
    # the agent marks a pause point the release lacks (module, class, function) with "unsupported:"
    if "unsupported: " in str(exc):
        raise Unsupported(str(exc).split("unsupported: ", 1)[1]) from None
    raise exc


class Pause(Step):
    """Arm a barrier in a proxy function: its calls wait `before` or `after` it runs until `resume` (at most `timeout` s)."""

    action: ClassVar[str] = "pause"

    name: str = Field(description="the pause's name, for `wait_paused` and `resume`")
    at: str = Field(pattern=r"^[\w.]+:[\w.]+$",
                    description="<module>:<qualified function>, an async function the proxy looks up "
                    "on its module or class, e.g. litellm.proxy.common_utils.reset_budget_job:"
                    "ResetBudgetJob._reset_budget_for_key")
    when: Literal["before", "after"] = Field("before", description="wait before the function runs or after it returned")
    timeout: float = Field(PAUSE_S, gt=0, le=120, description="seconds after which the calls go on by themselves (said as an error)")

    def run(self, ctx: StepContext) -> str:
        try:
            ctx.target.control.pause(self.name, self.at, self.when, self.timeout)
        except AgentError as exc:
            _unsupported_or_raise(exc)
        return f"pause {self.name} armed {self.when} {self.at} on {', '.join(ctx.target.names)}"


class WaitPaused(Step):
    """Wait until a call has reached pause `name`'s barrier (at most `timeout` s; not reaching it is an error)."""

    action: ClassVar[str] = "wait_paused"
    shorthand: ClassVar[str] = "name"

    name: str = Field(description="the pause")
    timeout: float = Field(PAUSE_S, gt=0, le=120, description="seconds to wait at most")

    def run(self, ctx: StepContext) -> str:
        reached = ctx.target.control.wait_paused(self.name, self.timeout)
        missed = [replica for replica, hit in reached.items() if not hit]
        if missed:
            raise HarnessError(f"no call reached pause {self.name} on {', '.join(missed)} within {self.timeout:g}s")
        return f"a call is held at pause {self.name} on {', '.join(reached)}"


class Resume(Step):
    """Let the calls held at pause `name` go on and disarm it; a pause that let them go by itself is an error."""

    action: ClassVar[str] = "resume"
    shorthand: ClassVar[str] = "name"

    name: str = Field(description="the pause")

    def run(self, ctx: StepContext) -> str:
        reports = [(replica, r) for replica, done in ctx.target.control.resume(self.name).items() for r in done]
        late = [replica for replica, r in reports if r.timed_out]
        if late:
            raise HarnessError(f"pause {self.name} let its calls go by itself (timeout) on {', '.join(late)} "
                               "before this resume: the interleaving is not the scenario's")
        return f"pause {self.name} resumed: " + ", ".join(f"{replica} held {r.hits} call(s)" for replica, r in reports)
