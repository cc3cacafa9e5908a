"""What a proxy is started with: the mock model, the settings merged into its config, and how
its replicas are deployed. The scenario file's `proxy:` and `deployment:` are these models, so
the proxy layer reads them without knowing about scenario files."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before Python 3.12

from ..calendar import zone
from ..names import ReplicaName


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MockModel(_Strict):
    """The model `spend` calls: a mock response with a fixed per-token cost (no provider)."""

    name: str = "harness-mock"
    input_cost_per_token: float = Field(0.001, gt=0)
    output_cost_per_token: float = Field(0.002, gt=0)
    mock_response: str = "ok"


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


class ProxySettings(_Strict):
    """Merged into the proxy config the harness generates. Scenarios with equal settings share a proxy."""

    model: MockModel = MockModel()
    provider: Literal["mock", "fake"] = Field(
        "mock", description="who answers `spend`'s calls: `mock` (mock_response, priced by `model`) or `fake` "
        "(a loopback provider the harness starts; models openai/gpt-4o and anthropic/claude-sonnet-4-5 "
        "priced by LiteLLM's own cost map; see README 'Fake provider')")
    fake_provider: FakeProviderSettings = FakeProviderSettings()
    general_settings: dict[str, Any] = {}
    litellm_settings: LitellmSettings = {}
    router_settings: dict[str, Any] = Field({}, description="the proxy config's router_settings (e.g. provider_budget_config)")
    environment: dict[str, str] = Field({}, description="environment variables for the proxy process")


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
