"""Verdicts and reports: what results mean to a person, a pull request, CI and a bug report."""
