"""A reference model of LiteLLM's documented budget semantics (pure Python, no proxy)."""

from .options import COMPARISONS, KINDS, SPENDING_KINDS, ModelOptions
from .periods import next_reset
from .world import Decision, Entity, World, member_id

__all__ = ["COMPARISONS", "KINDS", "SPENDING_KINDS", "Decision", "Entity", "ModelOptions", "World",
           "member_id", "next_reset"]
