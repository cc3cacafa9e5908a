"""Steps that run the proxy's own scheduled jobs now, inside the proxy."""

from __future__ import annotations

from typing import ClassVar

from ..proxy.control import AgentError
from .base import Step, StepContext, Unsupported


class FlushSpend(Step):
    """Wait for the calls' follow-up work, then run the proxy's own `update_spend` job (queued spend -> database)."""

    action: ClassVar[str] = "flush_spend"

    def run(self, ctx: StepContext) -> str:
        still = ctx.target.control.settle()
        try:
            seconds = ctx.target.control.run_job("update_spend_job")
        except AgentError as exc:
            # under an injected network fault the job failing is the proxy's behaviour, not the harness's
            faults = ctx.network_faults()
            if not faults:
                raise
            return f"update_spend_job failed under the fault ({', '.join(faults)}): {exc}"
        note = f" (tasks still running: {', '.join(still)})" if still else ""
        return f"update_spend_job ran in {seconds:.2f}s{note}"


class RunResetJob(Step):
    """Run the proxy's own scheduled `reset_budget_job` now, inside the proxy."""

    action: ClassVar[str] = "run_reset_job"

    def run(self, ctx: StepContext) -> str:
        ctx.before_reset = {
            name: (state.budget_reset_at if (state := ctx.db.state(e)) else None) for name, e in ctx.entities.items()
        }
        ctx.reset_job_ran = True
        try:
            seconds = ctx.target.control.run_job("reset_budget_job")
        except AgentError as exc:
            if "scheduled no job" in str(exc):  # disable_reset_budget: the release runs no reset job
                raise Unsupported(str(exc)) from None
            raise
        return f"reset_budget_job ran in {seconds:.2f}s"
