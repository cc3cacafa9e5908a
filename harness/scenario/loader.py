"""Scenario files -> `Scenario`, with every error as one line `file:line: what, and what is allowed`.

PyYAML's node tree keeps line numbers; we build plain Python values from it while recording
the line of every mapping key and list item, so a pydantic error location maps back to a line.
Nothing is started for an invalid file: the CLI and the pytest collector both call `load()`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from .. import steps as step_registry
from ..errors import ScenarioError, shorten
from ..faults.injectors import INJECTORS
from ..proxy.proxy import PASSTHROUGH_MODEL, UNIT_MODEL, fake_model_names
from ..proxy.settings import Deployment, ProxySettings
from ..steps.spend import ProviderScript
from .model import Metadata, PlacedStep, Scenario

Path_ = tuple[Any, ...]
TOP_LEVEL = {"name", "title", "description", "issue", "affects", "tags", "proxy", "deployment", "steps"}


class _Lines:
    """Line (1-based) of each value, by its path from the document root."""

    def __init__(self) -> None:
        self.at: dict[Path_, int] = {}

    def line(self, path: Path_) -> int:
        while path and path not in self.at:
            path = path[:-1]
        return self.at.get(path, 1)


#: what a scenario file may be at most; more is a mistake or an attack, never a scenario
MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_VALUES = 100_000
# YAML's printable set (YAML 1.1, 5.1): anything else is refused with its line, before parsing
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _Refused(Exception):
    """The composer met something a scenario file may not contain (a tag, deep nesting)."""

    def __init__(self, mark, message: str):
        super().__init__(message)
        self.line = mark.line + 1


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as text (the model parses times itself), refuses every
    explicit tag (plain values are all a scenario needs) and bounds the nesting depth."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise _Refused(event.start_mark, f"YAML tags such as `{_short_tag(tag)}` are not allowed in a scenario file; write the plain value")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"values nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


class _Builder:
    """Plain Python values from a node tree, recording the line of every key and list item.

    Aliases are followed (a value may be reused), but a value that contains itself and a
    document that expands past MAX_VALUES values (a "billion laughs") are refused."""

    def __init__(self, file: str, lines: "_Lines") -> None:
        self.file, self.lines = file, lines
        self.count = 0
        self.active: set[int] = set()
        self.scalars = _Loader("")

    def fail(self, node: yaml.Node, message: str) -> ScenarioError:
        return ScenarioError(f"{self.file}:{node.start_mark.line + 1}: {message}")

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node, f"the document expands to more than {MAX_VALUES} values (aliases of aliases?)")
        if len(path) > 2 * MAX_DEPTH:
            raise self.fail(node, f"values nested more than {MAX_DEPTH} levels deep (through aliases)")
        self.lines.at.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.active:
                raise self.fail(node, "an alias refers to a value that contains it")
            self.active.add(id(node))
            try:
                return self._mapping(node, path) if isinstance(node, yaml.MappingNode) else [
                    self.build(item, path + (i,)) for i, item in enumerate(node.value)
                ]
            finally:
                self.active.discard(id(node))
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, "merge keys (`<<`) are not supported in a scenario file")
            key = self.build(key_node, path + ("<key>",))
            if isinstance(key, bool) and key_node.value.lower() not in ("true", "false"):
                key = key_node.value  # YAML 1.1 reads the key `on:` (and yes/no/off) as a boolean
            if not isinstance(key, (str, int, float, bool)):
                raise self.fail(key_node, "a mapping key must be a plain value")
            if key in out:
                raise self.fail(key_node, f"`{key}` is given twice")
            self.lines.at[path + (key,)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, path + (key,))
        return out

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            value = self.scalars.construct_object(node)  # str, int, float, bool, null
        except ValueError:  # an integer past Python's digit limit
            raise self.fail(node, f"`{node.value[:20]}...` is too long a number") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, f"`{node.value[:40]}` is not a finite number")
        return value


def _line_at(text: str, offset: int) -> int:
    """1-based line of a character offset, counting line breaks as YAML does."""
    return len((text[:offset] + "x").splitlines())


def _read(path: Path) -> tuple[Any, _Lines, list[str]]:
    file = str(path)
    try:
        if path.is_dir():
            raise ScenarioError(f"{file}:1: is a directory, not a scenario file")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ScenarioError(f"{file}:1: the file has {size} bytes; a scenario file has at most {MAX_BYTES}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(f"{file}:1: no such scenario file") from None
    except OSError as exc:
        raise ScenarioError(f"{file}:1: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark is fine
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioError(f"{file}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        raise ScenarioError(
            f"{file}:{_line_at(text, bad.start())}: control character U+{ord(bad.group()):04X} is not allowed in a scenario file"
        )
    try:
        node = yaml.compose(text, Loader=_Loader)
    except _Refused as exc:
        raise ScenarioError(f"{file}:{exc.line}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}" if mark else f"{file}:1"
        raise ScenarioError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{file}:1: not valid YAML: {exc}") from None
    lines = _Lines()
    if node is None:
        raise ScenarioError(f"{file}:1: the file is empty: a scenario needs `name` and `steps`")
    return _Builder(file, lines).build(node, ()), lines, text.splitlines()


def _describe_error(err: dict[str, Any]) -> str:
    kind, loc, msg = err["type"], err["loc"], err["msg"]
    if len(loc) > 1 and loc[-1] == "[key]":  # a mapping's key was refused (a replica name): name it
        loc = loc[:-1]
    field = shorten(str(loc[-1])) if loc else ""  # may be the file's own key (a replica name)
    if kind == "extra_forbidden":
        return f"unknown key `{field}`"
    if kind == "missing":
        return f"`{field}` is required"
    msg = msg.removeprefix("Value error, ")
    return f"`{field}`: {msg}" if field and not isinstance(loc[-1], int) else msg


def _allowed_keys(model: type) -> str:
    names = [f.alias or n for n, f in model.model_fields.items()]
    return ", ".join(names)


def _submodel(annotation: Any) -> type | None:
    """The pydantic model inside `X`, `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _validation_error(file: str, lines: _Lines, base: Path_, exc: ValidationError, model: type) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    # model-level checks carry no field; point at the mapping itself
    line = lines.line(base + loc)
    text = _describe_error(err)
    if err["type"] == "model_type":  # pydantic's text names our class; say which key wants a mapping
        key = shorten(next((part for part in reversed(base + loc) if isinstance(part, str)), "the value"))
        text = f"`{key}` must be a mapping, e.g. `{key}: {{...}}`"
    elif err["type"] == "extra_forbidden":
        owner: type | None = model
        for part in loc[:-1]:  # walk down to the model that refused the key; list indexes stay put
            if owner is not None and isinstance(part, str):
                field = owner.model_fields.get(part)
                owner = _submodel(field.annotation) if field else None
        if owner is not None:
            text += f"; allowed: {_allowed_keys(owner)}"
    return ScenarioError(f"{file}:{line}: {text}")


def _validate(model: type, raw: Any, file: str, lines: _Lines, base: Path_) -> Any:
    """`model.model_validate(raw)`, every validation failure a `ScenarioError` at its line."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(file, lines, base, exc, model) from None
    except TypeError as exc:
        # pydantic turns a validator's ValueError into a ValidationError but lets a TypeError through;
        # it is still about this input (validators should raise ValueError: the fuzz test checks)
        raise ScenarioError(f"{file}:{lines.line(base)}: {shorten(str(exc), 200)}") from exc


def _parse_step(file: str, raw: Any, index: int, lines: _Lines, source: list[str]) -> PlacedStep:
    from ..steps import references

    step_types = step_registry.registry()
    path: Path_ = ("steps", index)
    line = lines.line(path)
    actions = ", ".join(step_types)
    if isinstance(raw, str) and raw in step_types:
        raw = {raw: {}}
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ScenarioError(f"{file}:{line}: a step is one action as `- action: {{...}}`; actions: {actions}")
    (action, params), = raw.items()
    cls = step_types.get(action)
    if cls is None:
        raise ScenarioError(f"{file}:{line}: unknown action `{shorten(str(action))}`; actions: {actions}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        if cls.shorthand is None:
            raise ScenarioError(f"{file}:{line}: `{action}` takes a mapping of parameters, e.g. `{action}: {{...}}`")
        params = {cls.shorthand: params}
        lines.at[path + (action, cls.shorthand)] = lines.line(path + (action,))
    try:
        found = references.scan(params)
    except references.BadReference as exc:
        raise ScenarioError(f"{file}:{lines.line(path + (action, *exc.path))}: {exc}") from None
    refs = tuple((name, field, lines.line(path + (action, *where))) for where, name, field in found)
    step = _validate(cls, params, file, lines, path + (action,))
    return PlacedStep(
        index=index, line=line, source=source[line - 1].strip() if line <= len(source) else "", step=step, refs=refs
    )


def _check_references(file: str, steps: list[PlacedStep], lines: _Lines) -> None:
    from ..steps import references

    known: dict[str, str] = {}
    for placed in steps:
        step = placed.step
        for field, kinds in type(step).references.items():
            value = getattr(step, field)
            for name in value if isinstance(value, list) else [value]:
                if name is None:
                    continue
                line = lines.line(("steps", placed.index, step.action, field))
                if name not in known:
                    raise ScenarioError(
                        f"{file}:{line}: `{field}: {name}` names no entity created by an earlier step"
                        + (f"; known: {', '.join(sorted(known))}" if known else "")
                    )
                if known[name] not in kinds:
                    raise ScenarioError(
                        f"{file}:{line}: `{field}: {name}` is {_a(known[name])}, but `{field}` takes {' or '.join(map(_a, kinds))}"
                    )
        for name, field, line in placed.refs:
            if name not in known:
                raise ScenarioError(
                    f"{file}:{line}: `${{{name}.{field}}}` names no entity created by an earlier step"
                    + (f"; known: {', '.join(sorted(known))}" if known else "")
                )
            problem = references.check(known[name], name, field)
            if problem:
                raise ScenarioError(f"{file}:{line}: {problem}")
        for name, kind in step.created():
            if name in known:
                raise ScenarioError(
                    f"{file}:{placed.line}: `{name}` is already the name of {_a(known[name])}; names must be unique"
                )
            known[name] = kind


def _check_deployment(file: str, steps: list[PlacedStep], lines: _Lines, deployment: Deployment) -> None:
    """`on:` and `replica:` name replicas of the deployment; the injectors a step requires exist
    and can be built on it (those that need Redis on a deployment with one)."""
    for placed in steps:
        step = placed.step
        line = lines.line(("steps", placed.index, step.action, "on"))
        if step.on is not None:
            if not type(step).replica_scoped:
                raise ScenarioError(f"{file}:{line}: `{step.action}` takes no `on`: {type(step).not_scoped_because}")
            if step.on != "all" and step.on not in deployment.replicas:
                raise ScenarioError(f"{file}:{line}: `on: {shorten(step.on)}` names no replica; the deployment has "
                                    f"{', '.join(deployment.names)} (or `on: all`)")
        replica = getattr(step, "replica", None)
        if isinstance(replica, str) and replica not in deployment.replicas:
            raise ScenarioError(f"{file}:{lines.line(('steps', placed.index, step.action, 'replica'))}: "
                                f"`replica: {shorten(replica)}` names no replica; the deployment has "
                                f"{', '.join(deployment.names)}")
        for name in sorted(type(step).requires):
            injector = INJECTORS.get(name)
            if injector is None:
                raise ScenarioError(f"{file}:{placed.line}: `{step.action}` requires `{name}`, which no fault injector "
                                    f"provides; injectors: {', '.join(INJECTORS)}")
            if injector.needs_redis and deployment.redis == "none":
                raise ScenarioError(f"{file}:{placed.line}: `{step.action}` needs a Redis: set `deployment: {{redis: cache}}` "
                                    "(or coordination, env)")


def _check_holds(file: str, steps: list[PlacedStep], lines: _Lines, proxy: ProxySettings) -> None:
    """A `spend: {hold}` needs the fake provider and a name of its own; `release` names an
    earlier hold, once."""
    held: dict[str, int] = {}
    released: set[str] = set()
    for placed in steps:
        step = placed.step
        name = getattr(step, "hold", None) if step.action == "spend" else None
        if name is not None:
            line = lines.line(("steps", placed.index, step.action, "hold"))
            if proxy.provider != "fake":
                raise ScenarioError(f"{file}:{line}: `hold` needs the fake provider, not `provider: mock`: the mock "
                                    "answers inside the proxy, so there is nowhere to hold a call")
            if name in held:
                raise ScenarioError(f"{file}:{line}: `hold: {name}` is already the hold of line {held[name]}")
            held[name] = line
        if step.action == "release":
            line = lines.line(("steps", placed.index, step.action, "name"))
            if step.name not in held:
                raise ScenarioError(f"{file}:{line}: `release: {shorten(step.name)}` names no `hold` of an earlier "
                                    "`spend` step" + (f"; holds: {', '.join(held)}" if held else ""))
            if step.name in released:
                raise ScenarioError(f"{file}:{line}: `{step.name}` is released twice")
            released.add(step.name)


#: the router's fallback lists: `[{model_name: [fallback, ...]}, ...]`
FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


def _check_models(file: str, steps: list[PlacedStep], lines: _Lines, proxy: ProxySettings) -> None:
    """`model_list` needs the fake provider and names of its own; fallbacks and `spend: {provider}`
    name models the proxy serves."""
    if proxy.model_list and proxy.provider != "fake":
        raise ScenarioError(f"{file}:{lines.line(('proxy', 'model_list'))}: `model_list` needs the fake provider, "
                            "not `provider: mock` (its models are served by the fake provider)")
    builtin = fake_model_names(proxy.model_copy(update={"model_list": []})) if proxy.provider == "fake" else [proxy.model.name]
    known = [*builtin, UNIT_MODEL]
    for index, extra in enumerate(proxy.model_list):
        if extra.model_name in (*known, PASSTHROUGH_MODEL):
            line = lines.line(("proxy", "model_list", index, "model_name"))
            raise ScenarioError(f"{file}:{line}: model `{extra.model_name}` is already a model of the proxy; "
                                f"models: {', '.join(known)}")
        known.append(extra.model_name)
    for section in ("router_settings", "litellm_settings"):
        for key in FALLBACK_KEYS:
            value = dict(getattr(proxy, section)).get(key)
            if value is not None:
                _check_fallbacks(file, lines, ("proxy", section, key), value, known)
    served = [*fake_model_names(proxy), PASSTHROUGH_MODEL] if proxy.provider == "fake" else []
    for placed in steps:
        step = placed.step
        scripts = getattr(step, "provider", None)
        if not (scripts and isinstance(scripts, list) and isinstance(scripts[0], ProviderScript)):
            continue
        if proxy.provider != "fake":
            line = lines.line(("steps", placed.index, step.action, "provider"))
            raise ScenarioError(f"{file}:{line}: `provider` scripts the fake provider: "
                                "remove `provider: mock`")
        for index, script in enumerate(scripts):
            model = script.model or getattr(step, "model", None) or proxy.model.name
            if model not in served:
                line = lines.line(("steps", placed.index, step.action, "provider", index, "model"))
                raise ScenarioError(f"{file}:{line}: `{shorten(model)}` is no model at the fake provider; "
                                    f"models: {', '.join(served)}")


def _check_fallbacks(file: str, lines: _Lines, path: Path_, value: Any, known: list[str]) -> None:
    name = ".".join(str(p) for p in path[1:])
    if not isinstance(value, list):
        raise ScenarioError(f"{file}:{lines.line(path)}: `{name}` is a list of `{{model: [fallback, ...]}}` mappings")
    for index, item in enumerate(value):
        line = lines.line((*path, index))
        if not (isinstance(item, dict) and len(item) == 1):
            raise ScenarioError(f"{file}:{line}: each `{name}` item is one `model: [fallback, ...]` mapping")
        (primary, targets), = item.items()
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ScenarioError(f"{file}:{line}: the fallbacks of `{shorten(str(primary))}` are a list of model names")
        for model in (primary, *targets):
            if model not in known:
                raise ScenarioError(f"{file}:{line}: `{shorten(str(model))}` in `{name}` is no model of the proxy; "
                                    f"models: {', '.join(known)}")


def _module_sources(file: str, raw: Any, lines: _Lines) -> Any:
    """`proxy.modules` with each `{file: path}` replaced by that file's text (read relative to the
    scenario file), so the settings carry the source itself: scenarios whose modules differ do
    not share a proxy, and nothing outside the run folder is read once the run starts."""
    if not isinstance(raw, dict) or not isinstance(raw.get("modules"), dict):
        return raw
    modules = {}
    for name, value in raw["modules"].items():
        if isinstance(value, dict):
            where = ("proxy", "modules", name)
            if set(value) != {"file"} or not isinstance(value["file"], str) or not value["file"]:
                raise ScenarioError(f"{file}:{lines.line(where)}: module `{shorten(str(name))}` is its source text "
                                    "or `{file: path}` (relative to the scenario file)")
            value = _module_file(file, value["file"], lines.line(where + ("file",)))
        modules[name] = value
    return {**raw, "modules": modules}


def _module_file(file: str, relative: str, line: int) -> str:
    path = Path(relative)
    if path.is_absolute():
        raise ScenarioError(f"{file}:{line}: `file: {shorten(relative)}` must be relative to the scenario file")
    full = Path(file).parent / path
    try:
        if full.stat().st_size > MAX_BYTES:
            raise ScenarioError(f"{file}:{line}: `{shorten(relative)}` has more than {MAX_BYTES} bytes")
        return full.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ScenarioError(f"{file}:{line}: no module file `{shorten(relative)}` next to the scenario file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{file}:{line}: `{shorten(relative)}` is a directory, not a module file") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{file}:{line}: `{shorten(relative)}` is not UTF-8 text") from None
    except OSError as exc:
        raise ScenarioError(f"{file}:{line}: cannot read `{shorten(relative)}`: {exc.strerror or exc}") from None


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def load(path: str | Path) -> Scenario:
    """Read and validate one scenario file; raise `ScenarioError` (one line) on the first problem."""
    path = Path(path)
    file = str(path)
    data, lines, source = _read(path)
    if not isinstance(data, dict):
        raise ScenarioError(f"{file}:1: a scenario is a mapping with `name` and `steps`")
    for key in data:
        if key not in TOP_LEVEL:
            raise ScenarioError(f"{file}:{lines.line((key,))}: unknown key `{shorten(str(key))}`; "
                                f"allowed: {', '.join(sorted(TOP_LEVEL))}")
    meta_raw = {k: data[k] for k in ("name", "title", "description", "issue", "affects", "tags") if k in data}
    meta = _validate(Metadata, meta_raw, file, lines, ())
    # an empty section (`proxy:` alone, null) means the defaults; `[]`, `false` or `0` are refused
    proxy_raw = _module_sources(file, data.get("proxy"), lines)
    proxy = _validate(ProxySettings, {} if proxy_raw is None else proxy_raw, file, lines, ("proxy",))
    deployment = _validate(Deployment, {} if data.get("deployment") is None else data["deployment"], file, lines,
                           ("deployment",))
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(f"{file}:{lines.line(('steps',))}: `steps` must be a non-empty list of actions")
    steps = [_parse_step(file, raw, i, lines, source) for i, raw in enumerate(raw_steps)]
    _check_references(file, steps, lines)
    _check_deployment(file, steps, lines, deployment)
    _check_holds(file, steps, lines, proxy)
    _check_models(file, steps, lines, proxy)
    return Scenario(path=file, meta=meta, proxy=proxy, deployment=deployment, steps=tuple(steps))


def json_schema(plugins: bool = True) -> dict[str, Any]:
    """The JSON Schema editors use; the published one (scenarios/scenario.schema.json) has the built-in steps."""
    step_variants: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    step_types = step_registry.registry() if plugins else step_registry.builtin()
    for action, cls in step_types.items():
        schema = cls.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        variants: list[dict[str, Any]] = [schema]
        if cls.shorthand is not None:
            variants.append(schema["properties"][cls.shorthand])
        if not schema.get("required"):
            variants.append({"type": "null"})
        step_variants.append(
            {
                "type": "object",
                "properties": {action: {"anyOf": variants} if len(variants) > 1 else schema},
                "required": [action],
                "additionalProperties": False,
                "description": cls.one_line_doc(),
            }
        )
        if not schema.get("required"):
            step_variants.append({"const": action})
    meta = Metadata.model_json_schema(ref_template="#/$defs/{model}")
    proxy = ProxySettings.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(proxy.pop("$defs", {}))
    # a scenario file may also name a module's file (the loader reads it: _module_sources)
    proxy["properties"]["modules"]["additionalProperties"] = {"anyOf": [
        {"type": "string", "description": "the module's source"},
        {"type": "object", "properties": {"file": {"type": "string", "description": "relative to the scenario file"}},
         "required": ["file"], "additionalProperties": False},
    ]}
    deployment = Deployment.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(deployment.pop("$defs", {}))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "LiteLLM budget harness scenario",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "steps"],
        "properties": {
            **meta["properties"],
            "proxy": proxy,
            "deployment": deployment,
            "steps": {"type": "array", "minItems": 1, "items": {"anyOf": step_variants}},
        },
        "$defs": defs,
    }

