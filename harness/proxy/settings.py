"""What a proxy is started with: the spend model, the settings merged into its config, and how
its replicas are deployed. The scenario file's `proxy:` and `deployment:` are these models, so
the proxy layer reads them without knowing about scenario files."""

from __future__ import annotations

import keyword
import sys
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before Python 3.12

from ..calendar import zone
from ..names import ReplicaName


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MockModel(_Strict):
    """The model `spend` calls, priced per token: `openai/gpt-4o` at the fake provider (the default)
    or, with `provider: mock`, a mock response. Both answer 10 prompt + 20 completion tokens, so a
    call costs 10 * 0.001 + 20 * 0.002 = 0.05 with either provider."""

    name: str = "harness-mock"
    input_cost_per_token: float = Field(0.001, gt=0)
    output_cost_per_token: float = Field(0.002, gt=0)
    pricing: Literal["per_token", "cost_map"] = Field(
        "per_token", description="`per_token`: the two costs above; `cost_map` (fake provider only): LiteLLM's own "
        "cost map prices openai/gpt-4o (0.000225 per call of 10 + 20 tokens)")
    mock_response: str = Field("ok", description="with `provider: mock`: the answer's text")


def _zone_name(name: str) -> str:
    zone(name)  # ValueError when it names no time zone
    return name


# `timezone` is a typed key rather than a check by a validator of the whole mapping, so that a bad
# one is a pydantic error located at the key (the loader turns that into its line)
class LitellmSettings(TypedDict, total=False):
    """Passed to the proxy as they are; `timezone` is also the zone calendar resets are computed in."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    timezone: Annotated[str, AfterValidator(_zone_name), Field(description="IANA time zone name, e.g. Asia/Tokyo")] | None


class FakeProviderSettings(_Strict):
    """With `provider: fake`: how the fake provider answers every call (harness.upstream.Behaviour)."""

    prompt_tokens: int = Field(10, ge=0, le=1_000_000)
    completion_tokens: int = Field(20, ge=0, le=1_000_000)
    latency_ms: int = Field(0, ge=0, le=60_000, description="before the answer (or the first chunk)")
    chunks: int = Field(4, ge=1, le=1000, description="content chunks of a stream")
    chunk_delay_ms: int = Field(0, ge=0, le=60_000, description="between a stream's chunks")
    status: int = Field(200, ge=200, le=599, description="an error status for every call (fallbacks, retries)")


#: litellm_params the harness sets itself on a `model_list` entry (it points the model at the fake provider)
FAKE_MODEL_OWN_PARAMS = ("model", "api_base", "api_key")
FAKE_MODEL_SHAPES = ("openai", "anthropic")


class FakeModel(_Strict):
    """One more model at the fake provider (`proxy: {provider: fake, model_list: [...]}`)."""

    model_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the name `spend: {model}` calls")
    model: str = Field(
        pattern=r"^(openai|anthropic|azure_ai)/[A-Za-z0-9_.:-]+$",
        description="the provider model LiteLLM prices and calls: `openai/...`, `azure_ai/...` (both OpenAI-shaped) or "
        "`anthropic/...` (e.g. openai/gpt-4o-mini)")
    input_cost_per_token: float | None = Field(None, ge=0, description="overrides the cost map (0: a free model)")
    output_cost_per_token: float | None = Field(None, ge=0)
    litellm_params: dict[str, Any] = Field(
        {}, description="more litellm_params (timeout, max_retries, ...); model, api_base and api_key are the harness's")
    model_info: dict[str, Any] = {}

    @field_validator("litellm_params")
    @classmethod
    def _own_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        taken = [k for k in FAKE_MODEL_OWN_PARAMS if k in value]
        if taken:
            raise ValueError(f"{', '.join(taken)} {'is' if len(taken) == 1 else 'are'} set by the harness "
                             "(the model points at the fake provider)")
        return value

    @property
    def shape(self) -> str:
        """The request shape the fake provider answers: anthropic messages, else OpenAI chat."""
        return "anthropic" if self.model.startswith("anthropic/") else "openai"

    def litellm(self) -> dict[str, Any]:
        """Its litellm_params without the address (the proxy adds the provider's)."""
        costs = {k: v for k in ("input_cost_per_token", "output_cost_per_token") if (v := getattr(self, k)) is not None}
        return {"model": self.model, **costs, **self.litellm_params}


#: names a scenario module may not take: they would shadow what the proxy itself imports
RESERVED_MODULES = frozenset(sys.stdlib_module_names) | {
    "litellm", "harness", "agent", "agent_views", "prisma", "redis", "fastapi", "starlette", "uvicorn", "pydantic",
    "proxy_config",
}
MAX_MODULES = 8
MAX_MODULE_CHARS = 256 * 1024


def _module_name(name: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise ValueError(f"module names are plain Python identifiers (e.g. `my_auth`), not {name!r}")
    if name in RESERVED_MODULES:
        raise ValueError(f"`{name}` would shadow a module the proxy imports; choose another name")
    return name


def _module_source(source: str) -> str:
    if len(source) > MAX_MODULE_CHARS:
        raise ValueError(f"the module has {len(source)} characters; at most {MAX_MODULE_CHARS}")
    try:  # a module that does not compile would only fail inside the proxy's start-up
        compile(source, "<module>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ValueError(f"not valid Python: {exc.msg} (line {exc.lineno} of the module)") from None
    except ValueError as exc:  # a NUL character
        raise ValueError(f"not valid Python: {exc}") from None
    return source


ModuleName = Annotated[str, AfterValidator(_module_name)]
ModuleSource = Annotated[str, AfterValidator(_module_source)]


class ProxySettings(_Strict):
    """Merged into the proxy config the harness generates. Scenarios with equal settings share a proxy."""

    model: MockModel = MockModel()
    provider: Literal["mock", "fake"] = Field(
        "fake", description="who answers `spend`'s calls: `fake` (a loopback provider the harness starts: the spend "
        "model is openai/gpt-4o at it, through LiteLLM's provider code, priced by `model`; a second model "
        "harness-claude is anthropic/claude-sonnet-4-5, priced by LiteLLM's cost map; 1.2 ms per call more than "
        "mock on 1.85.0, benchmarks/bench_traffic.py) or `mock` (mock_response inside the proxy, priced by `model`; no hold, provider scripts or "
        "model_list); see README 'Fake provider'")
    fake_provider: FakeProviderSettings = FakeProviderSettings()
    model_list: list[FakeModel] = Field(
        [], description="with `provider: fake`: more models at the fake provider (e.g. a free model with a paid fallback)")
    general_settings: dict[str, Any] = {}
    litellm_settings: LitellmSettings = {}
    router_settings: dict[str, Any] = Field({}, description="the proxy config's router_settings (fallbacks, retries, provider_budget_config, ...)")
    environment: dict[str, str] = Field({}, description="environment variables for the proxy process")
    modules: dict[ModuleName, ModuleSource] = Field(
        {}, description="Python modules the config refers to (`general_settings.custom_auth: my_auth.user_api_key_auth`, "
        "`litellm_settings.callbacks: [my_cb.handler]`): name -> source, written as <name>.py next to each replica's "
        "config; in a scenario file the source may be `{file: path}`, relative to the scenario file")

    @model_validator(mode="after")
    def _cost_map_needs_a_provider(self) -> "ProxySettings":
        if self.provider == "mock" and self.model.pricing == "cost_map":
            raise ValueError("`model: {pricing: cost_map}` needs the fake provider: the mock's model is in no cost "
                             "map (its calls would cost 0); remove `provider: mock` or the pricing")
        return self

    @field_validator("modules")
    @classmethod
    def _module_count(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_MODULES:
            raise ValueError(f"at most {MAX_MODULES} modules, not {len(value)}")
        return value


class ReplicaSettings(_Strict):
    """One replica's own settings, on top of the scenario's `proxy:` ones (read at start-up)."""

    general_settings: dict[str, Any] = {}
    litellm_settings: dict[str, Any] = {}
    environment: dict[str, str] = Field({}, description="environment variables of this replica only")


def _kind(value: Any) -> str:
    kinds = ((type(None), "null"), (bool, "a boolean"), ((int, float), "a number"), (dict, "a mapping"), (list, "a list"))
    return next((name for types, name in kinds if isinstance(value, types)), type(value).__name__)


class Deployment(_Strict):
    """How the proxy is deployed: named replicas on one database, and whether they share a Redis.

    `redis` says how the proxy finds it, because bugs depend on it: `cache` (litellm_settings.cache
    + cache_params), `coordination` (general_settings.coordination_redis), `env` (bare REDIS_*
    variables), or `none`. Requests of a step without `on:` are spread over the replicas by
    `routing`."""

    replicas: dict[ReplicaName, ReplicaSettings] = Field(
        default_factory=lambda: {"a": ReplicaSettings()},
        description="replica names (a list) or names -> their own settings; the first is the default",
    )
    redis: Literal["none", "cache", "coordination", "env"] = "none"
    routing: Literal["round_robin", "first"] = Field(
        "round_robin", description="who serves a request of a step without `on:`: each replica in turn, or the first")

    @field_validator("replicas", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            # the names become mapping keys: an unhashable item would be a TypeError, which pydantic
            # does not turn into a validation error
            for item in value:
                if not isinstance(item, str):
                    raise ValueError(f"replica names are strings, not {_kind(item)}; write e.g. `replicas: [a, b]`")
            if len(set(value)) != len(value):
                raise ValueError("replica names must be unique")
            return {name: {} for name in value}
        return value

    @field_validator("replicas")
    @classmethod
    def _count(cls, value: dict) -> dict:
        if not 1 <= len(value) <= 4:
            raise ValueError(f"a deployment has 1 to 4 replicas, not {len(value)}")
        if "all" in value:
            raise ValueError("`all` is not a replica name (it means every replica in `on: all`)")
        return value

    @property
    def names(self) -> list[str]:
        return list(self.replicas)
