"""Steps that run the proxy's own scheduled jobs now, inside the proxy."""

from __future__ import annotations

from typing import ClassVar

from ..errors import HarnessError
from .base import Step, Unsupported


class FlushSpend(Step):
    """Wait for the calls' follow-up work, then run the proxy's own `update_spend` job (queued spend -> database)."""

    action: ClassVar[str] = "flush_spend"

    def run(self, ctx) -> str:
        still = ctx.target.control("settle")["still_running"]
        try:
            ran = ctx.target.control("run-job", job="update_spend_job")
        except HarnessError as exc:
            # under an injected network fault the job failing is the proxy's behaviour, not the harness's
            faulted = [r for r in (ctx.fleet.pg_relay, ctx.fleet.redis_relay) if r is not None and r.mode != "pass"]
            if not faulted or "failed inside the proxy" not in str(exc):
                raise
            return f"update_spend_job failed under the fault ({', '.join(r.mode for r in faulted)}): {exc}"
        note = f" (tasks still running: {', '.join(still)})" if still else ""
        return f"update_spend_job ran in {ran['seconds']:.2f}s{note}"


class RunResetJob(Step):
    """Run the proxy's own scheduled `reset_budget_job` now, inside the proxy."""

    action: ClassVar[str] = "run_reset_job"

    def run(self, ctx) -> str:
        ctx.before_reset = {
            name: (state.budget_reset_at if (state := ctx.db.state(e)) else None) for name, e in ctx.entities.items()
        }
        ctx.reset_job_ran = True
        try:
            ran = ctx.target.control("run-job", job="reset_budget_job")
        except HarnessError as exc:
            if "scheduled no job" in str(exc):
                raise Unsupported(str(exc)) from None
            raise
        return f"reset_budget_job ran in {ran['seconds']:.2f}s"
