"""The LLM provider the proxy calls when a scenario chooses `provider: fake`: a loopback HTTP
server speaking OpenAI chat completions and Anthropic messages (`fake_provider.py`)."""

from .fake_provider import Behaviour, FakeProvider

__all__ = ["Behaviour", "FakeProvider"]
