"""Steps that assert: a request's outcome, an entity's state."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .. import assertions
from ..calendar import next_boundary
from ..durations import parse_span
from ..errors import HarnessError
from ..faults.alerts import one_channel
from ..names import ANY_ENTITY, EntityKind, Name
from ..proxy.entities import KINDS, Entity, EntityState
from .base import Expectation, Step, StepContext, Strict, Unsupported, db_state, licence_gate
from .spend import ProviderScript, scripted_provider


class ExpectedError(Strict):
    type: str = Field("budget_exceeded", description="the error body's `type`")
    message: str | None = Field(None, description="a text the error message must contain")
    status: int | None = Field(None, description="HTTP status; releases differ (400, 429, 422), prefer type+message")


class ExpectRequest(Step):
    """One `/chat/completions` call; `outcome: accepted|rejected`, for rejections `error.type`/`.message`/`.status`."""

    action: ClassVar[str] = "expect_request"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"key": ("key",), "end_user": ("end_user",), "tags": ("tag",)}
    key: Name
    end_user: Name | None = None
    tags: list[Name] = []
    model: str | None = Field(None, description="a `model_name` of the proxy config to call instead of the spend model")
    provider: list[ProviderScript] = Field(
        [], description="with `proxy: {provider: fake}`: how the provider answers the call, per model (as `spend`'s)")
    outcome: Literal["accepted", "rejected"]
    error: ExpectedError | None = None

    @model_validator(mode="after")
    def _error_only_when_rejected(self) -> "ExpectRequest":
        if self.outcome == "accepted" and self.error is not None:
            raise ValueError("`error` only goes with `outcome: rejected`")
        return self

    def run(self, ctx: StepContext) -> str:
        key = ctx.entity(self.key)
        with scripted_provider(ctx, self.provider, self.model) as answered:
            resp = ctx.target.chat(key.secret, ctx.id_of(self.end_user), tags=[ctx.id_of(t) for t in self.tags] or None,
                                   model=self.model)
            ctx.target.control.settle()
            answers = answered()
        licence_gate("/chat/completions", resp)  # neither the acceptance nor the rejection the step is about
        outcome = assertions.classify(resp)
        try:
            assertions.check_request(outcome, self, entity=key, fail=Expectation)
        except Expectation as exc:
            if answers:
                exc = Expectation(f"{exc} ({answers})", exc.expected, exc.actual, exc.entity)
            if self.outcome != "accepted" or not outcome.is_budget_error:
                raise exc from None
            # a wrong budget rejection: what the database, the API and the auth path hold for
            # the entities the request went through, side by side
            raise Expectation(f"{exc} | readings: {self._readings(ctx)}", exc.expected, exc.actual, exc.entity) from None
        return f"{outcome.summary()}; {answers}" if answers else outcome.summary()

    def _readings(self, ctx: StepContext) -> str:
        parts = []
        for name in [self.key, self.end_user, *self.tags]:
            if name is None:
                continue
            entity = ctx.entity(name)
            readings: dict[str, EntityState] = {}
            if (state := ctx.db.state(entity)) is not None:
                readings["db"] = state
            if KINDS[entity.kind].info_path is not None:
                try:
                    readings["api"] = ctx.api_state(entity)
                except (Expectation, Unsupported, HarnessError):
                    pass  # a reading the release does not give (or refuses): the others still show
            parts.append(f"{entity.kind} {name}: {side_by_side(ctx, entity, readings, AuthView.read(ctx, entity))}")
        return " / ".join(parts)


class ExpectState(Step):
    """An entity's `spend` (within `tolerance`), `spend_at_least`, `budget_reset_at`, `budget_reset_within`, read through the API and/or the database."""

    action: ClassVar[str] = "expect_state"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"entity": ANY_ENTITY}
    entity: Name
    spend: float | None = Field(None, ge=0)
    spend_at_least: float | None = Field(None, ge=0)
    tolerance: float = Field(1e-6, ge=0)
    budget_reset_at: Literal["moved_forward", "unchanged", "in_future", "set"] | None = Field(
        None,
        description="moved_forward: later than before the last run_reset_job and than the clock; "
        "unchanged: as before the last run_reset_job",
    )
    budget_reset_within: str | None = Field(
        None, description="budget_reset_at lies after the clock and at most this span later (e.g. 1d: by next midnight)"
    )
    budget_reset_is: Literal["local_midnight", "next_monday", "first_of_next_month"] | None = Field(
        None, description="budget_reset_at is the first such instant after the clock, in the proxy's "
        "litellm_settings.timezone (UTC when unset)"
    )
    source: Literal["api", "db", "both"] = Field(
        "both", description="both: the API where the release has an info endpoint for the kind, and the database"
    )
    counter: float | None = Field(
        None, ge=0, description="the in-memory spend counter the auth path reads first (spend_counter_cache, "
        "under the release's key name, e.g. spend:key:<hash>); absent, the auth path reseeds from the database"
    )
    cached_spend: float | None = Field(
        None, ge=0, description="the spend on the entity object cached in user_api_key_cache"
    )
    window_spend: dict[str, float] | None = Field(
        None, description="budget_limits window usage by window, e.g. {1d: 0}: the counters spend:<kind>:<id>:window:<duration>"
    )
    redis_counter: float | None = Field(
        None, ge=0, description="the entity's spend counter in the deployment's Redis, under the release's key "
        "name (no key reads as 0: nothing counted)"
    )

    @field_validator("budget_reset_within")
    @classmethod
    def _within(cls, value: str | None) -> str | None:
        if value is not None:
            parse_span(value)
        return value

    @model_validator(mode="after")
    def _something(self) -> "ExpectState":
        wanted = (self.spend, self.spend_at_least, self.budget_reset_at, self.budget_reset_within, self.counter,
                  self.cached_spend, self.window_spend, self.budget_reset_is, self.redis_counter)
        if all(v is None for v in wanted):
            raise ValueError("say what to expect: `spend`, `spend_at_least`, `budget_reset_at`, `budget_reset_within`, "
                             "`budget_reset_is`, `counter`, `cached_spend`, `window_spend` or `redis_counter`")
        return self

    def run(self, ctx: StepContext) -> str:
        entity = ctx.entity(self.entity)
        readings: dict[str, EntityState] = {}
        if self.source in ("db", "both"):
            readings["db"] = db_state(ctx, entity)
        api_note = None
        if self.source == "api" or (self.source == "both" and KINDS[entity.kind].info_path is not None):
            try:
                readings["api"] = ctx.api_state(entity)
            except Unsupported as exc:
                # `both` asks for every reading the release offers: an info endpoint that is
                # missing or licence-gated leaves the database reading (`source: api` stays unsupported)
                if self.source == "api":
                    raise
                api_note = f"api: not read ({str(exc)[:120]})"
        wants_auth = any(v is not None for v in (self.counter, self.cached_spend, self.window_spend))
        reads_spend = wants_auth or self.spend is not None or self.spend_at_least is not None or self.redis_counter is not None
        # the auth path's view is read up front only when an expectation is about it; a plain
        # spend expectation shows it beside the readings when it fails (nothing ran in between)
        auth = AuthView.read(ctx, entity) if wants_auth or self.redis_counter is not None else None
        if wants_auth and not auth.has_counters:
            raise Unsupported("this release keeps no in-memory spend counters (no spend_counter_cache)")
        if self.redis_counter is not None and auth.redis is None:
            raise HarnessError("`redis_counter` needs a deployment with Redis")
        # the clock only bounds budget_reset_at: a spend expectation does not ask the proxy for it
        reads_clock = any(v is not None for v in (self.budget_reset_at, self.budget_reset_within, self.budget_reset_is))
        now = ctx.target.control.clock() if reads_clock else None
        notes = []
        try:
            for source, state in readings.items():
                assertions.check_state(
                    state,
                    self,
                    source=source,
                    clock=now,
                    before_reset=ctx.before_reset.get(entity.name) if ctx.reset_job_ran else None,
                    reset_job_ran=ctx.reset_job_ran,
                    entity=entity,
                    fail=Expectation,
                )
                if self.budget_reset_is is not None:
                    self._check_calendar(ctx, entity, source, state, now)
                notes.append(f"{source}: spend={state.spend}, budget_reset_at={_iso(state.budget_reset_at)}")
            if auth is not None and (wants_auth or self.redis_counter is not None):
                auth.check(self, entity, readings.get("db"))
        except Expectation as exc:
            # the auth path, the API and the database side by side: the family's typical bug
            # is one of them reset while the one enforcement reads first is not
            if not reads_spend:
                raise
            auth = auth or AuthView.read(ctx, entity)
            side = side_by_side(ctx, entity, readings, auth)
            raise Expectation(f"{exc} | readings: {side}", exc.expected, exc.actual, exc.entity) from None
        if auth is not None and (wants_auth or self.redis_counter is not None):
            notes.append(auth.summary())
        if api_note:
            notes.append(api_note)
        return "; ".join(notes)

    def _check_calendar(self, ctx: StepContext, entity: Entity, source: str, state: EntityState, now) -> None:
        tz = (ctx.scenario.proxy.litellm_settings or {}).get("timezone")
        expected = next_boundary(self.budget_reset_is, now, tz)
        got = state.budget_reset_at
        if got is None or abs((got - expected).total_seconds()) > 1:
            raise Expectation(
                f"{entity.kind} {entity.name} ({source}): budget_reset_at {_iso(got)} is not the {self.budget_reset_is} "
                f"after the clock {_iso(now)} in {tz or 'UTC'} ({_iso(expected)})",
                _iso(expected), _iso(got), entity,
            )


class ReplicaView:
    """What one replica's auth path reads for an entity, from its agent: counters and cached objects."""

    def __init__(self, entries: dict, entity, has_counters: bool):
        self.entries, self.entity, self.has_counters = entries, entity, has_counters

    def counters(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.entries.get("spend_counter_cache", {}).items()
                if isinstance(v, (int, float)) and k.startswith("spend:")}

    def counter(self) -> tuple[str | None, float | None]:
        """The entity's own counter (not a window's), under the release's key name."""
        return own_counter(self.counters(), self.entity)

    def windows(self) -> dict[str, float]:
        return {k.rsplit(":window:", 1)[1]: v for k, v in self.counters().items() if ":window:" in k}

    def cached(self) -> tuple[str | None, float | None]:
        for key, value in self.entries.get("user_api_key_cache", {}).items():
            if isinstance(value, dict) and isinstance(value.get("spend"), (int, float)):
                return key, float(value["spend"])
        return None, None

    def check(self, step, what: str, entity, db_state) -> None:
        if step.counter is not None:
            key, value = self.counter()
            effective = value if key is not None else (db_state.spend if db_state else None)
            if effective is None or abs(effective - step.counter) > step.tolerance:
                where = key or "no counter (the auth path reseeds from the database)"
                raise Expectation(f"{what}: the spend counter {where} reads {effective}, expected {step.counter}",
                                  step.counter, effective, entity)
        if step.cached_spend is not None:
            key, value = self.cached()
            if key is not None and abs(value - step.cached_spend) > step.tolerance:
                raise Expectation(f"{what}: the cached object {key} in user_api_key_cache has spend {value}, "
                                  f"expected {step.cached_spend}", step.cached_spend, value, entity)
        for window, expected in (step.window_spend or {}).items():
            value = self.windows().get(window)
            if value is not None and abs(value - expected) > step.tolerance:
                raise Expectation(f"{what}: the {window} budget_limits window counter reads {value}, expected {expected}",
                                  expected, value, entity)

    def summary(self) -> str:
        key, value = self.counter()
        cached_key, cached = self.cached()
        parts = [f"counter {key}={value}" if key else "counter: none (reseeds from the database)"]
        if cached_key:
            parts.append(f"cached spend={cached}")
        parts += [f"window {w}={v}" for w, v in sorted(self.windows().items())]
        return ", ".join(parts)


def own_counter(counters: dict[str, float], entity) -> tuple[str | None, float | None]:
    """The entity's own spend counter among `counters` (not a budget_limits window's)."""
    ids = entity.row_keys
    own = {k: v for k, v in counters.items() if ":window:" not in k and all(i in k for i in ids)}
    if not own:
        return None, None
    key = sorted(own)[0]
    return key, own[key]


class AuthView:
    """What enforcement reads for an entity: each replica's in-memory view, and the Redis counters
    of a deployment with Redis (read by the harness straight from the server)."""

    def __init__(self, replicas: dict[str, ReplicaView], entity, redis: dict[str, float] | None = None,
                 redis_down: bool = False):
        #: `redis`: the Redis counters, None without a Redis; `redis_down`: Redis did not answer
        self.replicas, self.entity, self.redis, self.redis_down = replicas, entity, redis, redis_down
        self.has_counters = all(v.has_counters for v in replicas.values())

    @classmethod
    def read(cls, ctx: StepContext, entity: Entity) -> "AuthView":
        ids = [i for i in (entity.id, *entity.keys) if i]
        replicas = {name: ReplicaView(view.entries, entity, view.has_spend_counter_cache)
                    for name, view in ctx.target.control.auth_view(ids).items()}
        redis, down = None, False
        if ctx.target.redis is not None:
            redis = redis_counters(ctx.target.redis)
            down = redis is None
            redis = redis or {}
        return cls(replicas, entity, redis, down)

    def check(self, step, entity, db_state) -> None:
        what = f"{entity.kind} {entity.name}"
        many = len(self.replicas) > 1
        for name, view in self.replicas.items():
            view.check(step, f"{what} on replica {name}" if many else what, entity, db_state)
        if step.redis_counter is not None:
            if self.redis_down:
                raise Expectation(f"{what}: the Redis spend counter cannot be read: Redis did not answer",
                                  step.redis_counter, None, entity)
            key, value = own_counter(self.redis or {}, entity)
            got = 0.0 if key is None else value
            if abs(got - step.redis_counter) > step.tolerance:
                raise Expectation(f"{what}: the Redis spend counter {key or '(no key)'} reads {got}, expected "
                                  f"{step.redis_counter}", step.redis_counter, got, entity)

    def summary(self) -> str:
        many = len(self.replicas) > 1
        parts = [f"replica {n}: {v.summary()}" if many else v.summary() for n, v in self.replicas.items()]
        if self.redis_down:
            parts.append("redis: did not answer")
        elif self.redis is not None:
            key, value = own_counter(self.redis, self.entity)
            parts.append(f"redis {key}={value}" if key else "redis: no counter")
        return "; ".join(parts)


def redis_counters(server) -> dict[str, float] | None:
    """Every `spend:` counter in the harness's Redis database (None when Redis does not answer)."""
    import redis

    try:
        with server.client(socket_timeout=3) as conn:
            keys = [k for k in conn.scan_iter(match="*spend:*", count=500)]
            values = conn.mget(keys) if keys else []
    except redis.RedisError:
        return None
    out = {}
    for key, value in zip(keys, values):
        try:
            out[key.decode() if isinstance(key, bytes) else key] = float(value)
        except (TypeError, ValueError):
            continue  # not a number: a reservation hash or the like
    return out


def side_by_side(ctx: StepContext, entity: Entity, readings: dict, auth: AuthView) -> str:
    parts = [f"{source} spend={state.spend}" for source, state in readings.items()]
    if "db" not in readings and (state := ctx.db.state(entity)) is not None:
        parts.append(f"db spend={state.spend}")
    parts.append(auth.summary())
    return "; ".join(parts)


def _iso(moment) -> str:
    return moment.isoformat() if moment else "null"


class ExpectAlert(Step):
    """LiteLLM posted `count` alerts of `type` (its own names: soft_budget_crossed, threshold_crossed, budget_crossed, projected_limit_exceeded) naming `entity` to the loopback alert sink within `within` seconds; `at_most` also bounds them (then the whole window is waited). Webhook posts are counted, Slack posts only where none came."""

    action: ClassVar[str] = "expect_alert"
    references: ClassVar[dict[str, tuple[EntityKind, ...]]] = {"entity": ANY_ENTITY}
    requires: ClassVar[frozenset[str]] = frozenset({"alert_sink"})
    replica_scoped: ClassVar[bool] = False
    not_scoped_because: ClassVar[str] = "every replica posts to the deployment's one sink"
    type: str = Field(pattern=r"^[a-z_]{1,64}$", description="the alert's name, as the release's WebhookEvent `event` spells it")
    entity: Name | None = Field(None, description="the alert must name this entity (its id or token hash in the body)")
    count: int = Field(1, ge=0, le=1000, description="at least this many")
    at_most: int | None = Field(None, ge=0, le=1000, description="and no more than this many")
    within: float = Field(30, gt=0, le=600, description="seconds to wait for them")
    if_none: Literal["fail", "unsupported"] = Field(
        "fail", description="`unsupported`: a control step; no such alert at all means the release does not send "
        "this alert in this setup, so it cannot drive the scenario")

    @model_validator(mode="after")
    def _bounds(self) -> "ExpectAlert":
        if self.at_most is not None and self.at_most < self.count:
            raise ValueError("`at_most` is below `count`")
        if self.if_none == "unsupported" and self.count < 1:
            raise ValueError("`if_none: unsupported` goes with `count` of 1 or more")
        return self

    def run(self, ctx: StepContext) -> str:
        sink = ctx.injector("alert_sink")
        entity = ctx.entity(self.entity)
        names = entity.row_keys if entity is not None else ()

        def match(alert) -> bool:
            return alert.is_type(self.type) and (entity is None or alert.mentions(*names))

        # with an upper bound the whole window counts; otherwise stop as soon as enough arrived
        wanted = self.count if self.at_most is None else 1001
        found = sink.wait_for(match, wanted, self.within, pick=one_channel)
        what = f"{self.type} alert(s)" + (f" naming {self.entity}" if self.entity else "")
        if not found and self.if_none == "unsupported":
            raise Unsupported(f"the release posted no {what} within {self.within:g}s (it does not send this alert "
                              f"in this setup; posts received: {', '.join(sorted({a.event or a.channel for a in sink.alerts})) or 'none'})")
        if len(found) < self.count or (self.at_most is not None and len(found) > self.at_most):
            bound = f"{self.count}" + (f"..{self.at_most}" if self.at_most is not None else "+")
            others = sorted({a.event or a.channel for a in sink.alerts})
            raise Expectation(f"expected {bound} {what} within {self.within:g}s, got {len(found)} "
                              f"(all posts received: {', '.join(others) or 'none'})",
                              expected=bound, actual=len(found), entity=entity)
        first = found[0].at.isoformat() if found else "-"
        return f"{len(found)} {what} (first at {first})"
