"""Scenario files: the vocabulary (model.py), reading with line numbers (loader.py)."""

from .loader import json_schema, load
from .model import Scenario

__all__ = ["Scenario", "json_schema", "load"]
