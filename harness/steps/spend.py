"""Steps that spend: real `/chat/completions` calls of the spend model through a key (at the fake
provider, or the mock with `provider: mock`)."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from functools import partial
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from urllib.parse import urlsplit

from .. import assertions
from ..errors import HarnessError
from ..names import EntityKind, Name
from .base import Expectation, Step, StepContext, Strict, Unsupported, licence_gate

#: bounds of `concurrency`: simultaneous requests and the wall time they may take together
MAX_CONCURRENCY = 64
CONCURRENCY_TIMEOUT_S = 60.0
#: an amount lands exactly when it is this close to a whole number of calls
EXACT = 1e-9
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ProviderScript(Strict):
    """How the fake provider answers one `spend` step's calls to one model (`proxy: {provider: fake}`)."""

    model: str | None = Field(None, description="a `model_name` at the fake provider (default: the step's model): "
                              "e.g. the free primary whose failure sends the router to its fallback")
    status: int = Field(200, ge=200, le=599, description="an error status (500, 429, ...): fallbacks and retries")
    latency_ms: int = Field(0, ge=0, le=60_000, description="before the answer: above the model's "
                            "`litellm_params.timeout` it is a timeout")
    prompt_tokens: int | None = Field(None, ge=0, le=1_000_000, description="default: `proxy.fake_provider`'s")
    completion_tokens: int | None = Field(None, ge=0, le=1_000_000)
    usage_cost: float | None = Field(None, ge=0, description="a provider-stated `usage.cost` in the OpenAI-shaped "
                                     "answer (OpenRouter, Azure AI and Vertex send one; 0 is a stated zero)")
    times: int | None = Field(None, ge=1, le=10_000, description="the first N calls the model gets in this step "
                              "(on each replica's provider); default: every one")


class Spend(Step):
    """Mock-model calls through a key: `requests: N`, `until: amount` (at least), or `amount` (exactly, calibrated)."""

    action: ClassVar[str] = "spend"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {
        "key": ("key",),
        "end_user": ("end_user",),
        "tags": ("tag",),
    }
    key: Name
    end_user: Name | None = Field(None, description="an end user created by an earlier step (the request's `user`)")
    new_end_user: Name | None = Field(
        None, description="an end-user id no step created: the proxy meets it first here (default end-user budgets); "
        "later steps can name it as an end user"
    )
    tags: list[Name] = Field([], description="tags from create_tag, sent in the request's metadata")
    requests: int | None = Field(None, ge=1, le=10_000)
    until: float | None = Field(None, gt=0, description="keep calling until at least this much has been spent")
    amount: float | None = Field(
        None, gt=0, description="spend exactly this much: the release's cost per call of the unit-priced mock "
        "model is measured by the first call, and the amount must be a whole number of calls"
    )
    concurrency: int | None = Field(
        None, ge=2, le=MAX_CONCURRENCY, description=f"send the `requests` all at once (at most {MAX_CONCURRENCY}, "
        f"{CONCURRENCY_TIMEOUT_S:.0f} s together); the step notes how many were accepted"
    )
    max_accepted: int | None = Field(None, ge=0, description="with `concurrency`: more accepted calls than this fail the step")
    allow_rejections: bool = Field(False, description="a budget rejection ends the step instead of failing it")
    model: str | None = Field(None, description="a `model_name` of the proxy config to call instead of the spend "
                              "model (e.g. a free model with a paid fallback from `proxy: {model_list...}`)")
    stream: bool = Field(False, description="streamed calls (server-sent events, `stream_options.include_usage`)")
    cancel_after_chunks: int | None = Field(
        None, ge=1, le=1000, description="with `stream`: the client disconnects after this many chunks")
    provider: list[ProviderScript] = Field(
        [], description="with `proxy: {provider: fake}`: how the provider answers this step's calls, per model "
        "(status, latency, tokens, for the first `times`); withdrawn when the step ends")
    hold: Name | None = Field(
        None, description=f"with `requests: N` (at most {MAX_CONCURRENCY}) and `proxy: {{provider: fake}}`: the calls "
        "are sent in the background and held at the fake provider; the step returns once they are all there, "
        "later steps run, and `release: NAME` lets them finish")

    @model_validator(mode="after")
    def _one_amount(self) -> "Spend":
        if sum(x is not None for x in (self.requests, self.until, self.amount)) != 1:
            raise ValueError("give exactly one of `requests` (a count), `until` (at least an amount) or `amount` (exactly)")
        if self.end_user is not None and self.new_end_user is not None:
            raise ValueError("give `end_user` or `new_end_user`, not both")
        if self.concurrency is not None and self.requests is None:
            raise ValueError("`concurrency` goes with `requests: N`")
        if self.cancel_after_chunks is not None and not self.stream:
            raise ValueError("`cancel_after_chunks` goes with `stream: true`")
        if self.stream and (self.concurrency is not None or self.amount is not None):
            raise ValueError("`stream` goes with `requests` or `until`, not `concurrency` or `amount`")
        if self.model is not None and self.amount is not None:
            raise ValueError("`model` goes with `requests` or `until`, not `amount` (calibrated on the unit model)")
        if self.provider and (self.hold is not None or self.amount is not None):
            raise ValueError("`provider` does not go with `hold` (the hold is the provider's answer) or `amount`")
        if self.max_accepted is not None and self.concurrency is None:
            raise ValueError("`max_accepted` goes with `concurrency`")
        if self.hold is not None:
            if self.requests is None or self.concurrency is not None:
                raise ValueError("`hold` goes with `requests: N`, not `until`, `amount` or `concurrency`")
            if self.requests > MAX_CONCURRENCY:
                raise ValueError(f"`hold` holds at most {MAX_CONCURRENCY} calls")
            if self.cancel_after_chunks is not None:
                raise ValueError("`hold` and `cancel_after_chunks` do not go together")
        return self

    def created(self):
        return [(self.new_end_user, "end_user")] if self.new_end_user is not None else []

    def run(self, ctx: StepContext) -> str:
        key = ctx.entity(self.key)
        if self.new_end_user is not None:
            ctx.adopt("end_user", self.new_end_user, self.new_end_user)
        end_user = ctx.id_of(self.end_user or self.new_end_user)
        tags = [ctx.id_of(t) for t in self.tags]
        if self.hold is not None:
            return self._hold(ctx, key, end_user, tags)
        with scripted_provider(ctx, self.provider, self.model) as answered:
            note = self._spend(ctx, key, end_user, tags)
        return f"{note}; {answered()}" if self.provider else note

    def _spend(self, ctx: StepContext, key, end_user, tags) -> str:
        if self.concurrency is not None:
            return self._concurrent(ctx, key, end_user, tags)
        if self.amount is not None:
            return self._exact(ctx, key, end_user, tags)
        spent, calls = 0.0, 0
        limit = self.requests or 10_000
        while calls < limit and (self.until is None or spent < self.until):
            ok, cost, note = self._call(ctx, key, end_user, tags, calls + 1)
            calls += 1
            if not ok:
                return f"{calls - 1} calls spent {spent:.4f}; call {calls} was rejected: {note}"
            spent += cost
        shape = ""
        if self.stream:
            shape = " streamed" + (f", each cancelled after {self.cancel_after_chunks} chunks" if self.cancel_after_chunks else "")
        return f"{calls}{shape} calls{f' of {self.model}' if self.model else ''}, {spent:.4f} spent"

    def _call(self, ctx: StepContext, key, end_user, tags, number: int, model: str | None = None) -> tuple[bool, float, str]:
        shape = {"stream": True, "cancel_after_chunks": self.cancel_after_chunks} if self.stream else {}
        resp = ctx.target.chat(key.secret, end_user, tags=tags or None, model=model or self.model, **shape)
        if not resp.ok:
            outcome = assertions.classify(resp)
            if outcome.is_budget_error and self.allow_rejections:
                return False, 0.0, outcome.message[:120]
            licence_gate(f"call {number} of `spend`", resp)
            raise Expectation(
                f"call {number} of `spend` was rejected ({resp.status_code}): {outcome.message[:300]}",
                expected="accepted",
                actual=f"{outcome.status} {outcome.type}",
                entity=key,
            )
        # Each call's follow-up (cost tracking, budget-reservation reconciliation) finishes
        # before the next call, as for a client pacing its calls; without this, releases
        # with budget reservations (1.84+) reject back-to-back calls at random.
        ctx.target.control.settle()
        return True, assertions.response_cost(resp), ""

    def _exact(self, ctx: StepContext, key, end_user, tags) -> str:
        model = ctx.target.unit_model
        ok, per_call, note = self._call(ctx, key, end_user, tags, 1, model=model)
        if not ok:
            return f"the calibration call was rejected: {note}"
        if per_call <= 0:
            raise Unsupported(f"the release reported no cost for the mock model {model} (x-litellm-response-cost)")
        calls = round(self.amount / per_call)
        if calls < 1 or abs(calls * per_call - self.amount) > EXACT:
            raise Unsupported(
                f"{self.amount} is not a whole number of calls at {per_call!r} per call (measured on this release)"
            )
        spent = per_call
        for number in range(2, calls + 1):
            ok, cost, note = self._call(ctx, key, end_user, tags, number, model=model)
            if not ok:
                return f"{number - 1} calls spent {spent:.6f}; call {number} was rejected: {note}"
            spent += cost
        # The full float, not a rounded one: the proxy adds the same per-call costs, so an
        # at-the-limit scenario compares max_budget with this sum (0.1000000000001, not 0.1).
        return (f"{calls} calls of {model}, {spent!r} spent (the per-call costs added as floats; "
                f"calibrated on this release: {per_call!r} per call)")

    def _hold(self, ctx: StepContext, key, end_user, tags) -> str:
        _loopback_only(ctx, "`hold`")
        calls = []
        for _ in range(self.requests):
            replica = ctx.target.replica()
            calls.append((replica.upstream, partial(replica.chat, key.secret, end_user, tags=tags or None,
                                                    model=self.model, fresh_connection=True, stream=self.stream)))
        batch = ctx.target.holds.hold(self.hold, calls)
        held = batch.held()
        return (f"{held} of {self.requests} calls held at the provider as `{self.hold}`"
                + (f"; {self.requests - held} answered before reaching it" if held < self.requests else ""))

    def _concurrent(self, ctx: StepContext, key, end_user, tags) -> str:
        _loopback_only(ctx, "`concurrency`")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [
                pool.submit(ctx.target.chat, key.secret, end_user, tags=tags or None, model=self.model,
                            fresh_connection=True)
                for _ in range(self.requests)
            ]
            done, pending = wait(futures, timeout=CONCURRENCY_TIMEOUT_S)
            for future in pending:
                future.cancel()
        ctx.target.control.settle()
        if pending:
            raise Expectation(
                f"{len(pending)} of {self.requests} concurrent calls got no answer within {CONCURRENCY_TIMEOUT_S:.0f}s",
                expected="answers", actual=f"{len(pending)} unanswered", entity=key,
            )
        responses = [f.result() for f in futures]  # submission order: the same "first" rejection every run
        for number, resp in enumerate(responses, 1):
            if not resp.ok:
                licence_gate(f"concurrent call {number} of `spend`", resp)
        accepted = [r for r in responses if r.ok]
        rejected = [assertions.classify(r) for r in responses if not r.ok]
        other = [o for o in rejected if not o.is_budget_error]
        spent = sum(assertions.response_cost(r) for r in accepted)
        note = (f"{self.requests} calls, {self.concurrency} at a time, in {time.monotonic() - started:.2f}s: "
                f"{len(accepted)} accepted ({spent:.4f} spent), {len(rejected)} rejected")
        if other or (rejected and not self.allow_rejections):
            first = (other or rejected)[0]
            raise Expectation(f"{note}; first rejection ({first.status}): {first.message[:200]}",
                              expected="accepted", actual=f"{first.status} {first.type}", entity=key)
        if self.max_accepted is not None and len(accepted) > self.max_accepted:
            raise Expectation(f"{note}: more than max_accepted={self.max_accepted}",
                              expected=f"<= {self.max_accepted} accepted", actual=len(accepted), entity=key)
        return note


@contextmanager
def scripted_provider(ctx: StepContext, scripts: list[ProviderScript], model: str | None):
    """Script the fake provider of every replica of the step's scope for the `with` block (the
    scripts are withdrawn when it ends, however it ends); yields a function that says what the
    providers answered meanwhile, per model, e.g. `harness-free 3x500, harness-mock 3x200`."""
    if not scripts:
        yield lambda: ""
        return
    providers = [r.upstream for r in ctx.target.replicas if getattr(r, "upstream", None) is not None]
    if not providers:
        raise HarnessError("`provider` needs the fake provider, not `provider: mock` (the replicas have no fake provider)")
    marks = [upstream.mark() for upstream in providers]
    try:
        for upstream in providers:
            for script in scripts:
                tokens = {k: v for k in ("prompt_tokens", "completion_tokens", "usage_cost") if (v := getattr(script, k)) is not None}
                behaviour = replace(upstream.default, status=script.status, latency_ms=script.latency_ms, **tokens)
                upstream.script(behaviour, times=script.times, model=script.model or model or ctx.target.settings.model.name)

        def answered() -> str:
            seen = Counter((r.get("model_name"), r.get("status"))
                           for upstream, mark in zip(providers, marks) for r in upstream.since(mark))
            return "provider answered " + (", ".join(f"{m} {n}x{status}" for (m, status), n in sorted(seen.items(), key=str))
                                           or "no call")

        yield answered
    finally:
        for upstream in providers:
            upstream.unscript_models()


def _loopback_only(ctx: StepContext, what: str) -> None:
    host = urlsplit(ctx.target.base_url).hostname
    if host not in LOOPBACK:  # background calls are for the proxy the harness started, never a remote one
        raise HarnessError(f"{what} sends calls only to a proxy on loopback, not {host}")


class Release(Step):
    """Let the calls `spend: {hold: NAME}` holds finish; the note gives each call's outcome and cost."""

    action: ClassVar[str] = "release"
    shorthand: ClassVar[str | None] = "name"
    replica_scoped: ClassVar[bool] = False
    not_scoped_because: ClassVar[str] = "the held calls finish on the replicas they were sent to"
    name: Name = Field(description="the `hold` of an earlier `spend` step")
    expect: Literal["accepted", "rejected"] | None = Field(
        None, description="every call must end so: `accepted`, or `rejected` (a budget refusal)")
    accepted: int | None = Field(None, ge=0, description="exactly this many of the calls must be accepted")

    def run(self, ctx: StepContext) -> str:
        answers = ctx.target.holds.release(self.name)
        ctx.target.control.settle()  # their cost tracking lands before the next step looks
        outcomes, spent, accepted, budget_refusals = [], 0.0, 0, 0
        for number, answer in enumerate(answers, 1):
            if isinstance(answer, BaseException):
                outcomes.append(f"{number}: no answer ({str(answer)[:120]})")
                continue
            if answer.ok:
                cost = assertions.response_cost(answer)
                spent += cost
                accepted += 1
                outcomes.append(f"{number}: accepted, cost {cost!r}")
                continue
            licence_gate(f"held call {number} of `{self.name}`", answer)
            outcome = assertions.classify(answer)
            budget_refusals += outcome.is_budget_error
            outcomes.append(f"{number}: rejected ({outcome.status} {outcome.type}: {outcome.message[:120]})")
        note = (f"`{self.name}` released: {accepted} of {len(answers)} accepted, {spent!r} spent; "
                + "; ".join(outcomes))
        if self.expect == "accepted" and accepted != len(answers):
            raise Expectation(note, expected="every call accepted", actual=f"{accepted} accepted")
        if self.expect == "rejected" and budget_refusals != len(answers):
            raise Expectation(note, expected="every call refused for its budget",
                              actual=f"{budget_refusals} budget refusals")
        if self.accepted is not None and accepted != self.accepted:
            raise Expectation(note, expected=f"{self.accepted} accepted", actual=f"{accepted} accepted")
        return note
