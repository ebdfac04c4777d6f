"""An example value for a JSON Schema, so readers see a payload's shape at a glance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evkafka.asyncapi.schemas import COMPONENT_PREFIX

MAX_DEPTH = 8

_STRING_FORMATS = {
    "date-time": "2024-01-31T12:00:00Z",
    "date": "2024-01-31",
    "time": "12:00:00",
    "duration": "PT1H",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "email": "user@example.com",
    "uri": "urn:example:resource",
    "hostname": "host.example",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "binary": "<bytes>",
}
_SCALARS: dict[str, Any] = {"integer": 0, "number": 0.0, "boolean": True, "null": None}


#: Stands for "a model inside itself": dropped from lists and optional fields.
_CYCLE: Any = object()


def example_of(schema: Any, components: Mapping[str, Any]) -> Any:
    """A value valid for simple schemas: declared examples, defaults, then a typed placeholder."""
    value = _example(schema, components, frozenset())
    return None if value is _CYCLE else value


def _example(schema: Any, components: Mapping[str, Any], _seen: frozenset[str]) -> Any:
    if not isinstance(schema, dict) or len(_seen) > MAX_DEPTH:
        return _CYCLE
    for key in ("examples", "example", "const", "default"):
        value = schema.get(key)
        if key == "examples":
            if isinstance(value, list) and value:
                return value[0]
        elif key in schema and value not in ([], {}):  # an empty default shows no shape
            return value
    if schema.get("enum"):
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(COMPONENT_PREFIX):
        name = ref[len(COMPONENT_PREFIX) :]
        if name in _seen:
            return _CYCLE
        return _example(components.get(name), components, _seen | {name})
    for key in ("anyOf", "oneOf"):
        variants = [
            v for v in schema.get(key, ()) if isinstance(v, dict) and v.get("type") != "null"
        ]
        if variants:
            return _example(variants[0], components, _seen)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = _example(part, components, _seen)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        return _object_example(schema, components, _seen)
    if kind == "array":
        items = schema.get("prefixItems") or [schema.get("items", {})]
        return [v for v in (_example(s, components, _seen) for s in items) if v is not _CYCLE]
    if kind == "string":
        return _STRING_FORMATS.get(schema.get("format", ""), "string")
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", _SCALARS[kind]))
    return _SCALARS.get(kind) if isinstance(kind, str) else None


def _object_example(
    schema: dict[str, Any], components: Mapping[str, Any], seen: frozenset[str]
) -> Any:
    required = schema.get("required", ())
    out = {}
    for name, prop in schema.get("properties", {}).items():
        value = _example(prop, components, seen)
        if value is not _CYCLE:
            out[name] = value
        elif name in required:
            return _CYCLE
    extra = schema.get("additionalProperties")
    if not out and isinstance(extra, dict):
        value = _example(extra, components, seen)
        if value is not _CYCLE:
            out["key"] = value
    return out
