"""Regression-test harness for LiteLLM proxy budgets.

Layers, each importing only the ones below it (tests/test_import_contract.py enforces it):
commands (harness.commands, cli, pytest_plugin) -> reports -> execution (the one engine) ->
scenario -> steps (through a typed context) -> proxy -> db, redis, releases, engine, faults ->
services -> core (errors, settings, names, verdicts, calendar, durations, assertions).
harness.standalone runs in other interpreters. docs/architecture.md has the picture.
"""

__version__ = "0.1.0"
