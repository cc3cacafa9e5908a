"""agent_views (runs inside the proxy; plain Python): route templates and included routers."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("agent_views", ROOT / "harness" / "standalone" / "agent_views.py")
agent_views = importlib.util.module_from_spec(spec)
spec.loader.exec_module(agent_views)


class Model:
    model_fields = {"key": None, "max_budget": None, "budget_limits": None}


def _route(path, methods, body=True):
    params = [SimpleNamespace(type_=Model)] if body else []
    return SimpleNamespace(path=path, methods=set(methods), dependant=SimpleNamespace(body_params=params))


def test_route_templates_match_whatever_the_placeholders_are_called() -> None:
    app = SimpleNamespace(routes=[_route("/key/{key:path}/reset_spend", {"POST"}), _route("/key/update", {"POST"})])
    found = agent_views.route(app, "POST", "/key/{token}/reset_spend")
    assert found["exists"] and found["path"] == "/key/{key:path}/reset_spend"
    assert agent_views.route(app, "GET", "/key/update")["exists"] is False
    assert agent_views.route(app, "POST", "/key/update")["fields"] == ["budget_limits", "key", "max_budget"]


def test_routes_inside_included_routers_are_found_with_their_prefix() -> None:
    inner = SimpleNamespace(routes=[_route("/member/{user_id}/reset_spend", {"POST"}, body=False)])
    included = SimpleNamespace(original_router=inner, include_context=SimpleNamespace(prefix="/team/{team_id}"))
    app = SimpleNamespace(routes=[included])
    found = agent_views.route(app, "POST", "/team/{t}/member/{u}/reset_spend")
    assert found["exists"] and found["fields"] is None
