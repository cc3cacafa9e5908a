"""Regression-test harness for LiteLLM proxy budgets.

A scenario flows loader -> runner -> target (database, proxy, clock) -> assertions -> report;
each has one home: harness/scenario, harness/runner.py, harness/db + harness/releases +
harness/engine + harness/proxy, harness/assertions.py, harness/report.py.
"""

__version__ = "0.1.0"
