"""Steps that run the proxy's own scheduled jobs now, inside the proxy."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..errors import HarnessError
from ..proxy.control import AgentError, EngineTimedOut
from .base import Step, StepContext, Unsupported


def engine_timed_out(ctx: StepContext, exc: EngineTimedOut) -> str:
    """Under a network fault the engine not answering is the fault's doing (the proxy's behaviour);
    without one it is the harness's engine being slow: the release cannot be judged here."""
    # the job may still be writing (and holding row locks) after the client gave up
    ctx.spoil_deployment(f"a job lost requests to the engine: {exc}")
    faults = ctx.network_faults()
    if not faults:
        raise Unsupported(str(exc))
    return f"{exc} (under the fault: {', '.join(faults)})"


class FlushSpend(Step):
    """Wait for the calls' follow-up work, then run the proxy's own `update_spend` job (queued spend -> database)."""

    action: ClassVar[str] = "flush_spend"

    def run(self, ctx: StepContext) -> str:
        still = ctx.target.control.settle()
        try:
            seconds = ctx.target.control.run_job("update_spend_job")
        except EngineTimedOut as exc:
            return engine_timed_out(ctx, exc)
        except AgentError as exc:
            # under an injected network fault the job failing is the proxy's behaviour, not the harness's
            faults = ctx.network_faults()
            if not faults:
                raise
            return f"update_spend_job failed under the fault ({', '.join(faults)}): {exc}"
        note = f" (tasks still running: {', '.join(still)})" if still else ""
        return f"update_spend_job ran in {seconds:.2f}s{note}"


class RunResetJob(Step):
    """Run the proxy's own scheduled `reset_budget_job` now, inside the proxy (`wait: false`: start it and go on)."""

    action: ClassVar[str] = "run_reset_job"

    wait: bool = Field(True, description="false: start the job and return at once; a later `wait_jobs` "
                       "or `run_reset_job` on the replica awaits it, and the scenario's end awaits it at the latest")

    def run(self, ctx: StepContext) -> str:
        ctx.before_reset = {
            name: (state.budget_reset_at if (state := ctx.db.state(e)) else None) for name, e in ctx.entities.items()
        }
        ctx.reset_job_ran = True
        try:
            if not self.wait:
                ctx.target.control.start_job("reset_budget_job")
                return f"reset_budget_job started on {', '.join(ctx.target.names)}"
            seconds = ctx.target.control.run_job("reset_budget_job")
        except EngineTimedOut as exc:
            return engine_timed_out(ctx, exc)
        except AgentError as exc:
            if "scheduled no job" in str(exc):  # disable_reset_budget: the release runs no reset job
                raise Unsupported(str(exc)) from None
            raise
        return f"reset_budget_job ran in {seconds:.2f}s"


class WaitJobs(Step):
    """Wait for the jobs `run_reset_job: {wait: false}` started; a job's error or a job still running after `timeout` is an error."""

    action: ClassVar[str] = "wait_jobs"

    timeout: float = Field(30.0, gt=0, le=120, description="seconds to wait at most")

    def run(self, ctx: StepContext) -> str:
        answers = ctx.target.control.wait_jobs(self.timeout)
        problems = [f"{name}: {error}" for name, answer in answers.items() for error in answer.errors]
        problems += [f"{name}: {job} still running after {self.timeout:g}s"
                     for name, answer in answers.items() for job in answer.still_running]
        if problems:
            raise HarnessError("started job(s) did not finish cleanly: " + "; ".join(problems))
        ran = [f"{job['job']} on {name} ({job['seconds']:.2f}s)" for name, answer in answers.items() for job in answer.finished]
        return "waited for " + ", ".join(ran) if ran else "no started job to wait for"
