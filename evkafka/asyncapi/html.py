"""One self-contained HTML page for an AsyncAPI 3 document: inline CSS, no scripts, no network."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from html import escape
from typing import Any, NamedTuple
from urllib.parse import unquote

from evkafka.asyncapi.examples import example_of
from evkafka.asyncapi.schemas import COMPONENT_PREFIX

MAX_NESTING = 6

CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f6f7f9}
nav{position:fixed;top:0;bottom:0;left:0;width:260px;overflow:auto;padding:20px 16px;background:#1d2330;color:#c9d1e0}
nav a{color:#c9d1e0;text-decoration:none;display:block;padding:2px 0;overflow-wrap:anywhere}
nav a:hover{color:#fff}
nav h4{margin:16px 0 4px;color:#8b96ab;font-size:12px;text-transform:uppercase;letter-spacing:.06em}
main{margin-left:260px;padding:24px 40px;max-width:1160px}
h1{margin:0 0 4px}
h2{margin:36px 0 12px;padding-bottom:6px;border-bottom:2px solid #dfe3ea}
h3{margin:0 0 6px;overflow-wrap:anywhere}
.card{background:#fff;border:1px solid #dfe3ea;border-radius:8px;padding:16px 20px;margin:0 0 16px}
.muted{color:#667085}
.text{white-space:pre-line}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
pre{background:#1d2330;color:#e6ebf5;padding:12px;border-radius:6px;overflow:auto}
table{width:100%;border-collapse:collapse;margin:6px 0 12px}
th,td{text-align:left;vertical-align:top;padding:5px 8px;border-bottom:1px solid #eceff4}
th{font-size:12px;text-transform:uppercase;color:#667085;letter-spacing:.04em}
td.field{white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;margin-right:6px}
.receive{background:#2f7d4f}.send{background:#2f5f9e}
.tag{display:inline-block;padding:0 6px;border-radius:4px;background:#eef1f6;font-size:12px;margin-right:4px}
.req{color:#b42318;font-weight:600}
.op{padding:8px 0;border-top:1px solid #eceff4}
"""


class _Row(NamedTuple):
    depth: int
    name: str
    label: str
    required: bool
    notes: str


def _anchor(kind: str, key: str) -> str:
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_.-]", "-", key)


def _pointer(spec: Mapping[str, Any], ref: str) -> Any:
    """The node a local `#/a/b` reference points at, or None."""
    node: Any = spec
    for part in ref[2:].split("/") if ref.startswith("#/") else ():
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _follow(spec: Mapping[str, Any], node: Any) -> tuple[Any, str | None]:
    """Follow `$ref`s to the object itself; also the last reference taken."""
    last = None
    for _ in range(16):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            break
        last = node["$ref"]
        node = _pointer(spec, last)
    return node, last


def _json(value: Any) -> str:
    return escape(json.dumps(value, ensure_ascii=False))


def _text(value: Any, css: str = "text") -> str:
    return f'<p class="{css}">{escape(str(value))}</p>' if value else ""


class _Schemas:
    """Renders JSON Schemas as tables; `$ref`s to components become links and nested rows."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components

    def _ref_name(self, schema: Any) -> str | None:
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if isinstance(ref, str) and ref.startswith(COMPONENT_PREFIX):
            return ref[len(COMPONENT_PREFIX) :]
        return None

    def label(self, schema: Any) -> str:
        if not isinstance(schema, dict):
            return "any"
        name = self._ref_name(schema)
        if name is not None:
            return f'<a href="#{_anchor("schema", name)}">{escape(name)}</a>'
        for key, joiner in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " &amp; ")):
            if isinstance(schema.get(key), list):
                return joiner.join(self.label(s) for s in schema[key])
        kind = schema.get("type")
        if isinstance(kind, list):
            return " | ".join(escape(str(k)) for k in kind)
        if kind == "array":
            items = schema.get("items")
            return f"array of {self.label(items)}" if isinstance(items, dict) else "array"
        extra = schema.get("additionalProperties")
        if kind == "object" and isinstance(extra, dict) and not schema.get("properties"):
            return f"map of {self.label(extra)}"
        if kind:
            fmt = schema.get("format")
            return escape(str(kind)) + (
                f" <span class='muted'>({escape(str(fmt))})</span>" if fmt else ""
            )
        if "properties" in schema:
            return "object"
        return "enum" if "enum" in schema else "any"

    def notes(self, schema: Any) -> str:
        if not isinstance(schema, dict):
            return ""
        parts = [escape(str(schema["description"]))] if schema.get("description") else []
        if "const" in schema:
            parts.append(f"always <code>{_json(schema['const'])}</code>")
        if schema.get("enum"):
            values = ", ".join(f"<code>{_json(v)}</code>" for v in schema["enum"])
            parts.append(f"one of {values}")
        for key in (
            "default",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "minLength",
            "maxLength",
            "minItems",
            "maxItems",
            "pattern",
        ):
            if key in schema:
                parts.append(f"{key} <code>{_json(schema[key])}</code>")
        return " · ".join(parts)

    def _view(
        self, schema: Any, seen: frozenset[str]
    ) -> tuple[dict[str, Any], set[str], frozenset[str]]:
        """(properties, required, refs on the path) of what a value of `schema` contains."""
        if not isinstance(schema, dict) or len(seen) > MAX_NESTING:
            return {}, set(), seen
        name = self._ref_name(schema)
        if name is not None:
            if name in seen:
                return {}, set(), seen
            return self._view(self.components.get(name), seen | {name})
        if schema.get("type") == "array" or "items" in schema:
            return self._view(schema.get("items"), seen)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not schema.get("properties"):
            return self._view(extra, seen)
        properties = dict(schema.get("properties") or {})
        required = set(schema.get("required") or ())
        variants = [
            v
            for v in schema.get("anyOf", []) + schema.get("oneOf", [])
            if isinstance(v, dict) and v.get("type") != "null"
        ]
        for part in schema.get("allOf", []) + variants:
            props, req, _ = self._view(part, seen)
            properties.update(props)
            if part in schema.get("allOf", []) or len(variants) == 1:
                required |= req
        return properties, required, seen

    def rows(
        self, schema: Any, depth: int = 0, seen: frozenset[str] = frozenset()
    ) -> Iterator[_Row]:
        properties, required, seen = self._view(schema, seen)
        for name, prop in properties.items():
            yield _Row(depth, name, self.label(prop), name in required, self.notes(prop))
            if depth < MAX_NESTING:
                yield from self.rows(prop, depth + 1, seen)

    def table(self, schema: Any, inside: str | None = None) -> str:
        """Rows for `schema`; `inside` names the component being shown, so it is not nested in itself."""
        rows = list(self.rows(schema, 0, frozenset({inside} if inside else ())))
        head = "<tr><th>Field</th><th>Type</th><th>Notes</th></tr>"
        if not rows:
            body = f"<tr><td class='field'><em>value</em></td><td>{self.label(schema)}</td><td>{self.notes(schema)}</td></tr>"
            return f"<table>{head}{body}</table>"
        lines = []
        for row in rows:
            indent = "&nbsp;&nbsp;&nbsp;" * row.depth + ("└ " if row.depth else "")
            star = " <span class='req' title='required'>*</span>" if row.required else ""
            lines.append(
                f"<tr><td class='field'>{indent}<code>{escape(row.name)}</code>{star}</td>"
                f"<td>{row.label}</td><td>{row.notes}</td></tr>"
            )
        top = self.label(schema)
        caption = f"<p class='muted'>{top}</p>" if top not in ("object", "any") else ""
        return f"{caption}<table>{head}{''.join(lines)}</table>"


def render_html(spec: Mapping[str, Any]) -> str:
    """The whole page for `spec`; every string from the document is HTML-escaped."""
    components = spec.get("components") or {}
    schemas = _Schemas(components.get("schemas") or {})
    info = spec.get("info") or {}
    channels: dict[str, Any] = spec.get("channels") or {}
    operations: dict[str, Any] = spec.get("operations") or {}
    messages: dict[str, Any] = components.get("messages") or {}
    servers: dict[str, Any] = spec.get("servers") or {}
    usage = _message_usage(spec, channels, operations)
    title = escape(str(info.get("title", "AsyncAPI")))
    nav = ["<nav>", f"<strong>{title}</strong>"]
    if servers:
        nav.append("<h4>Servers</h4><a href='#servers'>Kafka clusters</a>")
    nav.append("<h4>Channels</h4>")
    nav += [
        f"<a href='#{_anchor('channel', k)}'>{escape(str(c.get('address') or k))}</a>"
        for k, c in channels.items()
    ]
    nav.append("<h4>Messages</h4>")
    names = [str(m.get("name") or k) for k, m in messages.items()]
    for (k, _), name in zip(messages.items(), names, strict=True):
        shown = (
            name if names.count(name) == 1 else k
        )  # same event, different payloads: the key tells them apart
        nav.append(f"<a href='#{_anchor('message', k)}'>{escape(shown)}</a>")
    if schemas.components:
        nav.append("<h4>Schemas</h4>")
        nav += [f"<a href='#{_anchor('schema', k)}'>{escape(k)}</a>" for k in schemas.components]
    nav.append("</nav>")
    body = [_info_html(info, spec)]
    if servers:
        body.append(_servers_html(servers))
    body.append("<h2 id='channels'>Channels and operations</h2>")
    body += [_channel_html(spec, key, channel, operations) for key, channel in channels.items()]
    body.append("<h2 id='messages'>Messages</h2>")
    content_type = str(spec.get("defaultContentType", "application/json"))
    body += [
        _message_html(k, m, schemas, usage.get(k, []), content_type) for k, m in messages.items()
    ]
    if schemas.components:
        body.append("<h2 id='schemas'>Schemas</h2>")
        for key, schema in schemas.components.items():
            body.append(
                f"<div class='card' id='{_anchor('schema', key)}'><h3>{escape(key)}</h3>"
                f"{_text(schema.get('description') if isinstance(schema, dict) else None)}{schemas.table(schema, key)}</div>"
            )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{title} · AsyncAPI</title><style>{CSS}</style></head><body>"
        + "".join(nav)
        + "<main>"
        + "".join(body)
        + "</main></body></html>"
    )


def _message_usage(
    spec: Mapping[str, Any], channels: dict[str, Any], operations: dict[str, Any]
) -> dict[str, list[tuple[str, str]]]:
    """Component message key -> [(action, channel address)] of the operations using it."""
    usage: dict[str, list[tuple[str, str]]] = {}
    for operation in operations.values():
        channel, _ = _follow(spec, operation.get("channel"))
        address = str((channel or {}).get("address") or "?")
        for ref in operation.get("messages") or []:
            _, last = _follow(spec, ref)
            if last and last.startswith("#/components/messages/"):
                key = unquote(last.rsplit("/", 1)[1])
                usage.setdefault(key, []).append((str(operation.get("action")), address))
    return usage


def _info_html(info: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    parts = [
        f"<h1>{escape(str(info.get('title', '')))} <span class='tag'>{escape(str(info.get('version', '')))}</span></h1>",
        f"<p class='muted'>AsyncAPI {escape(str(spec.get('asyncapi', '')))} · default content type "
        f"<code>{escape(str(spec.get('defaultContentType', 'application/json')))}</code></p>",
        _text(info.get("description")),
    ]
    contact = info.get("contact") or {}
    who = " · ".join(escape(str(contact[k])) for k in ("name", "email", "url") if contact.get(k))
    if who:
        parts.append(f"<p>Contact: {who}</p>")
    if (info.get("license") or {}).get("name"):
        parts.append(f"<p>License: {escape(str(info['license']['name']))}</p>")
    return "".join(parts)


def _servers_html(servers: Mapping[str, Any]) -> str:
    rows = []
    for key, server in servers.items():
        security = ", ".join(
            escape(str(s.get("$ref", "")).rsplit("/", 1)[-1]) for s in server.get("security") or []
        )
        rows.append(
            f"<tr><td><code>{escape(key)}</code></td><td><code>{escape(str(server.get('host', '')))}</code></td>"
            f"<td>{escape(str(server.get('protocol', '')))}</td><td>{security}</td>"
            f"<td>{escape(str(server.get('title') or ''))} {escape(str(server.get('description') or ''))}</td></tr>"
        )
    head = (
        "<tr><th>Server</th><th>Bootstrap</th><th>Protocol</th><th>Security</th><th>About</th></tr>"
    )
    return (
        f"<h2 id='servers'>Servers</h2><div class='card'><table>{head}{''.join(rows)}</table></div>"
    )


def _channel_html(
    spec: Mapping[str, Any], key: str, channel: Mapping[str, Any], operations: Mapping[str, Any]
) -> str:
    address = escape(str(channel.get("address") or "(address unknown)"))
    on = ", ".join(
        escape(str(s.get("$ref", "")).rsplit("/", 1)[-1]) for s in channel.get("servers") or []
    )
    ops = []
    for op_key, operation in operations.items():
        if (operation.get("channel") or {}).get("$ref") != f"#/channels/{key}":
            continue
        action = escape(str(operation.get("action", "")))
        links = []
        for ref in operation.get("messages") or []:
            message, last = _follow(spec, ref)
            name = escape(str((message or {}).get("name") or (last or "").rsplit("/", 1)[-1]))
            target = unquote((last or "").rsplit("/", 1)[-1])
            links.append(f"<a href='#{_anchor('message', target)}'><code>{name}</code></a>")
        kafka = (operation.get("bindings") or {}).get("kafka") or {}
        group = ((kafka.get("groupId") or {}).get("enum") or [None])[0]
        extra = (
            f" <span class='muted'>group <code>{escape(str(group))}</code></span>" if group else ""
        )
        ops.append(
            f"<div class='op'><span class='badge {action}'>{action.upper()}</span>{' '.join(links)}{extra}"
            f" <span class='muted'>→ <code>{escape(str(operation.get('x-evkafka-endpoint') or op_key))}</code></span>"
            f"{_text(operation.get('summary'))}</div>"
        )
    return (
        f"<div class='card' id='{_anchor('channel', key)}'><h3>Topic <code>{address}</code></h3>"
        f"{_text(channel.get('description'))}<p class='muted'>servers: {on or 'all'}</p>{''.join(ops)}</div>"
    )


def _message_html(
    key: str,
    message: Mapping[str, Any],
    schemas: _Schemas,
    usage: list[tuple[str, str]],
    content_type: str,
) -> str:
    name = escape(str(message.get("name") or key))
    used = " ".join(
        f"<span class='badge {escape(a)}'>{escape(a.upper())}</span><code>{escape(t)}</code> "
        for a, t in usage
    )
    tags = "".join(
        f"<span class='tag'>{escape(str(t.get('name')))}</span>" for t in message.get("tags") or []
    )
    tags = f"<p>tags: {tags}</p>" if tags else ""
    parts = [
        f"<div class='card' id='{_anchor('message', key)}'><h3>{name}</h3><p>{used}</p>{tags}",
        _text(message.get("summary")),
        _text(message.get("description"), "text muted"),
        f"<p class='muted'>content type <code>{escape(str(message.get('contentType', content_type)))}</code></p>",
    ]
    if "headers" in message:
        parts.append(f"<h4>Headers</h4>{schemas.table(message['headers'])}")
    if "payload" in message:
        parts.append(f"<h4>Payload</h4>{schemas.table(message['payload'])}")
    examples = message.get("examples") or []
    if not examples and "payload" in message:
        examples = [{"payload": example_of(message["payload"], schemas.components)}]
    for example in examples:
        shown = {k: example[k] for k in ("headers", "payload") if k in example}
        parts.append(
            f"<h4>Example</h4><pre>{escape(json.dumps(shown, indent=2, ensure_ascii=False))}</pre>"
        )
    parts.append("</div>")
    return "".join(parts)
