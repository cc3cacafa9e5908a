"""Read-only views of the running proxy: control operations of the agent (runs INSIDE the
proxy, like agent.py, which serves `OPERATIONS` with its own).

* `route`: whether the release's app has a route (method + path template), and the fields of
  its request body model, so a step can say `unsupported` with the release's own reason
  instead of guessing from a 404 (which an existing route also answers for a missing entity);
* `auth-view`: what the auth path reads for an entity: the in-memory spend counters and the
  cached entity objects in `user_api_key_cache`, under the release's own key names, and the
  `budget_limits` window usage where the release keeps it.

Only the standard library and LiteLLM's own dependencies may be imported here.
"""

import re

_CONVERTER = re.compile(r"\{([^}:]+):[^}]+\}")


def _template(path: str) -> str:
    """`/key/{key:path}/reset_spend` -> `/key/{}/reset_spend`: placeholder names differ between releases."""
    return re.sub(r"\{[^}]+\}", "{}", _CONVERTER.sub(r"{\1}", path))


def _body_fields(route) -> list | None:
    dependant = getattr(route, "dependant", None)
    params = list(getattr(dependant, "body_params", []) or [])
    if len(params) != 1:
        return None
    field = params[0]
    model = getattr(field, "type_", None) or getattr(getattr(field, "field_info", None), "annotation", None)
    fields = getattr(model, "model_fields", None) or getattr(model, "__fields__", None)
    return sorted(fields) if fields else None


def _routes(routes, prefix: str = ""):
    """(full path, route) of every route, into included routers (FastAPI 0.13x keeps an
    included router as one `_IncludedRouter` entry instead of copying its routes)."""
    for candidate in routes:
        inner = getattr(candidate, "original_router", None)
        if inner is not None:
            context = getattr(candidate, "include_context", None)
            yield from _routes(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        else:
            yield prefix + (getattr(candidate, "path", "") or ""), candidate


def route(app, method: str, path: str) -> dict:
    wanted = _template(path)
    for full, candidate in _routes(app.routes):
        methods = getattr(candidate, "methods", None) or set()
        if method.upper() in methods and _template(full) == wanted:
            return {"exists": True, "path": full, "fields": _body_fields(candidate)}
    return {"exists": False, "path": path, "fields": None}


def _plain(value):
    """JSON-safe copy of a cached value (pydantic objects, datetimes)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    elif hasattr(value, "dict") and callable(value.dict) and not isinstance(value, dict):
        try:
            value = value.dict()
        except Exception:
            return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _cache_entries(cache) -> dict:
    store = getattr(cache, "cache_dict", None)
    if store is None:
        store = getattr(getattr(cache, "in_memory_cache", None), "cache_dict", None)
    return dict(store or {})


def auth_view(ids: list, caches) -> dict:
    """Every in-memory cache entry whose key contains one of `ids` (an entity's id, its token
    hash): the spend counters (`spend:key:<hash>`, `spend:team:<id>` ...) and the cached
    objects the auth path reads, by the cache that holds them, under the release's key names."""
    from litellm.proxy import proxy_server

    named = {}
    for attr in ("user_api_key_cache", "spend_counter_cache"):
        cache = getattr(proxy_server, attr, None)
        if cache is not None:
            named[id(getattr(cache, "in_memory_cache", cache))] = attr
    found: dict = {}
    for cache in list(caches):
        label = named.get(id(cache), type(cache).__name__ + "@" + hex(id(cache))[-6:])
        for key, value in _cache_entries(cache).items():
            text = str(key)
            if any(i and i in text for i in ids):
                found.setdefault(label, {})[text] = _plain(value)
    return {"entries": found, "has_spend_counter_cache": "spend_counter_cache" in named.values()}


def _op_route(body: dict, app, state: dict) -> dict:
    return route(app, body["method"], body["path"])


def _op_auth_view(body: dict, app, state: dict) -> dict:
    return auth_view([str(i) for i in body.get("ids", [])], state["caches"] or [])


#: the views, by operation name (agent.py's OPERATIONS includes them)
OPERATIONS = {
    "route": _op_route,
    "auth-view": _op_auth_view,
}
