"""Payload types as JSON Schema, with nested models shared under `components/schemas`."""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Any, Literal

import msgspec
import pydantic

from evkafka.codec import is_pydantic_model

SchemaMode = Literal["validation", "serialization"]

COMPONENT_PREFIX = "#/components/schemas/"
_LOCAL_PREFIXES = ("#/$defs/", "#/definitions/")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def component_key(name: str) -> str:
    """A key valid in `components` maps and in a `$ref` (letters, digits, `.`, `-`, `_`)."""
    return _UNSAFE.sub("_", name).strip("_") or "_"


def unique_key(taken: Container[str], base: str, qualifier: str | None = None) -> str:
    """`base`, else `base.qualifier`, else `base_2`, `base_3`, ... whichever is free."""
    base = component_key(base)
    if base not in taken:
        return base
    if qualifier:
        qualified = component_key(f"{base}.{qualifier}")
        if qualified not in taken:
            return qualified
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def _generic_schema(tp: Any) -> dict[str, Any] | None:
    if tp is str:
        return {"type": "string"}
    if tp is bytes:
        return {"type": "string", "format": "binary"}
    if tp is dict:
        return {"type": "object"}
    if tp is list:
        return {"type": "array"}
    if tp is Any:
        return {}
    return None


def _raw_schema(tp: Any, mode: SchemaMode) -> dict[str, Any]:
    """The type's own JSON Schema, nested models still under a local `$defs`."""
    if is_pydantic_model(tp):
        raw: dict[str, Any] = tp.model_json_schema(mode=mode)
        defs = raw.pop("$defs", {})
        if "$ref" in raw:  # a recursive model is itself one of its $defs
            return {**raw, "$defs": defs}
        name = tp.__name__
        while name in defs:
            name += "_"
        defs[name] = raw
        return {"$ref": f"#/$defs/{name}", "$defs": defs}
    try:
        return msgspec.json.schema(tp)
    except (TypeError, ValueError):
        pass
    try:
        return pydantic.TypeAdapter(tp).json_schema(mode=mode)
    except Exception as exc:  # the type decodes but cannot describe itself
        return {"description": f"no JSON Schema for {tp!r}: {type(exc).__name__}"}


def _rewrite(node: Any, names: dict[str, str]) -> Any:
    """Point local refs at components; pydantic's discriminator object becomes AsyncAPI's string."""
    if isinstance(node, list):
        return [_rewrite(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            for prefix in _LOCAL_PREFIXES:
                if value.startswith(prefix):
                    local = value[len(prefix) :].replace("~1", "/").replace("~0", "~")
                    value = COMPONENT_PREFIX + names.get(local, component_key(local))
            out[key] = value
        elif key == "discriminator" and isinstance(value, dict) and "propertyName" in value:
            out[key] = value["propertyName"]
        else:
            out[key] = _rewrite(value, names)
    return out


class SchemaComponents:
    """`components/schemas` of one document: equal schemas shared, different ones never merged."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def payload(self, tp: Any, mode: SchemaMode = "validation") -> dict[str, Any]:
        """The payload schema of `tp`; its nested models land in `self.schemas`."""
        generic = _generic_schema(tp)
        if generic is not None:
            return generic
        raw = _raw_schema(tp, mode)
        defs: dict[str, Any] = raw.pop("$defs", None) or raw.pop("definitions", None) or {}
        names = self._place(defs, getattr(tp, "__module__", None))
        for local, key in names.items():
            self.schemas[key] = _rewrite(defs[local], names)
        return _rewrite(raw, names)  # type: ignore[no-any-return]

    def _place(self, defs: dict[str, Any], qualifier: str | None) -> dict[str, str]:
        """Component key per local def name: an equal existing schema is reused, a clash renamed."""
        names: dict[str, str] = {}
        for local in defs:
            names[local] = unique_key(set(names.values()), local)
        changed = True
        while changed:  # renaming one def changes the refs in others; settle on a fixed point
            changed = False
            for local, key in names.items():
                existing = self.schemas.get(key)
                if existing is None or existing == _rewrite(defs[local], names):
                    continue
                taken = set(self.schemas) | set(names.values())
                names[local] = unique_key(taken, key, qualifier)
                changed = True
        return names
