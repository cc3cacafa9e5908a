"""The one execution engine: plans cells, owns release sessions, runs scenarios, calls hooks."""
