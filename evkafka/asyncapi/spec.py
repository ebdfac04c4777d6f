"""An AsyncAPI 3.0 document of what an app consumes and produces, read from its registrations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evkafka.asyncapi.examples import example_of
from evkafka.asyncapi.schemas import SchemaComponents, SchemaMode, component_key, unique_key
from evkafka.codec import JSON
from evkafka.conventions import (
    CE_STRUCTURED,
    BodyFieldConvention,
    CloudEventsBinary,
    CloudEventsStructured,
    EventTypeConvention,
    HeaderConvention,
)
from evkafka.message import Message
from evkafka.stack import find_convention, processing_stack
from evkafka.types import MessageApp

if TYPE_CHECKING:
    from evkafka.app import ConsumerSpec, EVKafkaApp, ProducerSpec

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
DEFAULT_CONTENT_TYPE = JSON.content_type

_SASL_SCHEME_TYPES = {
    "PLAIN": "plain",
    "SCRAM-SHA-256": "scramSha256",
    "SCRAM-SHA-512": "scramSha512",
    "GSSAPI": "gssapi",
    "OAUTHBEARER": "oauth2",
}
_RAW_CONTENT_TYPES: dict[Any, str] = {bytes: "application/octet-stream", str: "text/plain"}


async def _no_op(message: Message) -> None:
    return None


def _processing_layers(middleware: Any) -> MessageApp:
    """A consumer's message-processing layers, built (as at startup) only to be inspected."""
    layer: MessageApp = _no_op
    for m in reversed(processing_stack(middleware)):
        layer = m.cls(layer, *m.args, **m.kwargs)
    return layer


def build_spec(app: EVKafkaApp) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of `app`: consumed events as receive, produced as send."""
    document = _Document()
    for consumer in app.consumers.values():
        document.add_consumer(consumer)
    for producer in app.producers.values():
        document.add_producer(producer)
    return document.finish(_info(app))


def _info(app: EVKafkaApp) -> dict[str, Any]:
    info: dict[str, Any] = {"title": str(app.title), "version": str(app.version)}
    if getattr(app, "description", None):
        info["description"] = app.description
    contact = getattr(app, "contact", None)
    if contact:
        info["contact"] = dict(contact)
    license_ = getattr(app, "license", None)
    if license_:
        info["license"] = {"name": license_} if isinstance(license_, str) else dict(license_)
    return info


def _find_layer_attribute(chain: Any, name: str) -> Any:
    layer = chain
    while layer is not None:
        value = getattr(layer, name, None)
        if value is not None:
            return value
        layer = getattr(layer, "app", None)
    return None


def _string(description: str, const: str | None = None, example: str | None = None) -> Any:
    schema: dict[str, Any] = {"type": "string", "description": description}
    if const is not None:
        schema["const"] = const
    if example is not None:
        schema["examples"] = [example]
    return schema


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _convention_parts(
    convention: EventTypeConvention | None, event_type: str, payload: Any, content_type: str
) -> tuple[dict[str, Any] | None, Any, str]:
    """(headers schema, payload schema, content type) as the convention puts them on the wire."""
    if convention is None:
        return None, payload, content_type
    if isinstance(convention, HeaderConvention):
        header = _string("The event type; routes the record to its endpoint.", event_type)
        return (
            _object({convention.header_name: header}, [convention.header_name]),
            payload,
            content_type,
        )
    if isinstance(convention, CloudEventsStructured):
        envelope = _object(
            {
                "specversion": _string("CloudEvents version.", "1.0"),
                "id": _string("Unique event id.", example="3fa85f64-5717-4562-b3fc-2c963f66afa6"),
                "source": _string("Where the event happened.", example=convention.source),
                "type": _string("The event type.", event_type),
                "datacontenttype": _string("Content type of `data`.", example=content_type),
                "data": payload if payload is not None else {},
            },
            ["specversion", "id", "source", "type"],
        )
        headers = _object(
            {"content-type": _string("Structured mode.", CE_STRUCTURED)}, ["content-type"]
        )
        return headers, envelope, CE_STRUCTURED
    if isinstance(convention, CloudEventsBinary):
        headers = _object(
            {
                "ce_type": _string("The event type.", event_type),
                "ce_specversion": _string("CloudEvents version.", "1.0"),
                "ce_id": _string(
                    "Unique event id.", example="3fa85f64-5717-4562-b3fc-2c963f66afa6"
                ),
                "ce_source": _string("Where the event happened.", example=convention.source),
                "content-type": _string("Content type of the value.", example=content_type),
            },
            ["ce_type", "ce_specversion", "ce_id", "ce_source"],
        )
        return headers, payload, content_type
    if isinstance(convention, BodyFieldConvention):
        marker = _object(
            {convention.field: _string("The event type.", event_type)}, [convention.field]
        )
        return None, ({"allOf": [payload, marker]} if payload else marker), content_type
    names = convention.header_names()
    if not names:
        return None, payload, content_type
    headers = _object({n: _string("Read by the event-type convention.") for n in names}, [])
    return headers, payload, content_type


class _Document:
    """Collects servers, channels, messages and operations; equal parts are shared."""

    def __init__(self) -> None:
        self.schemas = SchemaComponents()
        self.servers: dict[str, Any] = {}
        self.security: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.channel_keys: dict[tuple[str | None, str], str] = {}
        self.messages: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    def add_consumer(self, spec: ConsumerSpec) -> None:
        settings: dict[str, Any] = spec.settings
        chain = _processing_layers(spec.middleware)
        convention = find_convention(chain)
        codec = _find_layer_attribute(chain, "codec") or JSON
        server = self._server(settings)
        channels = []
        for topic in settings["topics"]:
            name, description = (
                (topic, None)
                if isinstance(topic, str)
                else (topic["name"], topic.get("description"))
            )
            channels.append(self._channel(name, description, server))
        binding: dict[str, Any] = {"bindingVersion": KAFKA_BINDING_VERSION}
        for key, option in (("groupId", "group_id"), ("clientId", "client_id")):
            if settings.get(option):
                binding[key] = {"type": "string", "enum": [settings[option]]}
        for event_type, endpoint in spec.handler.endpoints.items():
            message = self._message(
                event_type, endpoint, convention, codec, "validation", spec.name
            )
            for channel in channels:
                suffix = self.channels[channel]["address"] if len(channels) > 1 else None
                self._operation(
                    "receive", spec.name, event_type, channel, message, endpoint, suffix, binding
                )

    def add_producer(self, spec: ProducerSpec) -> None:
        producer = spec.producer
        settings = producer.settings
        server = self._server(settings)
        binding: dict[str, Any] = {"bindingVersion": KAFKA_BINDING_VERSION}
        if settings.get("client_id"):
            binding["clientId"] = {"type": "string", "enum": [settings["client_id"]]}
        for event_type, endpoint in spec.sender.endpoints.items():
            channel = self._channel(endpoint.topic or producer.topic, None, server)
            message = self._message(
                event_type, endpoint, spec.convention, producer.codec, "serialization", spec.name
            )
            self._operation(
                "send", spec.name, event_type, channel, message, endpoint, None, binding
            )

    def _server(self, settings: dict[str, Any]) -> str:
        hosts = settings.get("bootstrap_servers") or "localhost"
        if isinstance(hosts, str):
            hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        protocol = settings.get("security_protocol") or "PLAINTEXT"
        server: dict[str, Any] = {
            "host": ",".join(hosts),
            "protocol": "kafka" if protocol == "PLAINTEXT" else "kafka-secure",
        }
        cluster = settings.get("cluster_name")
        if cluster:
            server["title"] = cluster
        if settings.get("cluster_description"):
            server["description"] = settings["cluster_description"]
        if protocol.startswith("SASL"):
            server["security"] = [
                {"$ref": f"#/components/securitySchemes/{self._sasl(settings, protocol)}"}
            ]
        for key, existing in self.servers.items():
            if existing == server:
                return key
        key = unique_key(self.servers, cluster or "kafka")
        self.servers[key] = server
        return key

    def _sasl(self, settings: dict[str, Any], protocol: str) -> str:
        mechanism = settings.get("sasl_mechanism") or "PLAIN"
        over = "TLS" if protocol == "SASL_SSL" else "plaintext"
        scheme: dict[str, Any] = {
            "type": _SASL_SCHEME_TYPES.get(mechanism, "userPassword"),
            "description": f"SASL {mechanism} over {over}.",
        }
        if scheme["type"] == "oauth2":
            scheme["flows"] = {}
        key = component_key(f"sasl_{mechanism}_{over}")
        self.security[key] = scheme
        return key

    def _channel(self, topic: str | None, description: str | None, server: str) -> str:
        key = self.channel_keys.get((topic, server))
        if key is None:
            key = unique_key(self.channels, topic or "unknown-topic", server)
            self.channel_keys[(topic, server)] = key
            self.channels[key] = {
                "address": topic,
                "servers": [{"$ref": f"#/servers/{server}"}],
                "messages": {},
                "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION}},
            }
            if topic is not None:
                self.channels[key]["bindings"]["kafka"]["topic"] = topic
        if description and "description" not in self.channels[key]:
            self.channels[key]["description"] = description
        return key

    def _message(
        self,
        event_type: str,
        endpoint: Any,
        convention: EventTypeConvention | None,
        codec: Any,
        mode: SchemaMode,
        owner: str,
    ) -> str:
        tp = getattr(endpoint, "payload_type", None)
        has_payload = getattr(endpoint, "has_payload", tp is not None)
        payload = self.schemas.payload(tp, mode) if has_payload else None
        if payload is not None and getattr(endpoint, "nullable", False) and payload != {}:
            payload = {"anyOf": [payload, {"type": "null"}], "description": "null is a tombstone."}
        content_type = str(
            _RAW_CONTENT_TYPES.get(tp) or getattr(codec, "content_type", DEFAULT_CONTENT_TYPE)
        )
        headers, payload, content_type = _convention_parts(
            convention, event_type, payload, content_type
        )
        message: dict[str, Any] = {"name": event_type, "title": event_type}
        for field in ("summary", "description"):
            if getattr(endpoint, field, None):
                message[field] = getattr(endpoint, field)
        if getattr(endpoint, "tags", None):
            message["tags"] = [{"name": tag} for tag in endpoint.tags]
        if content_type != DEFAULT_CONTENT_TYPE:
            message["contentType"] = content_type
        example: dict[str, Any] = {"name": "example"}
        if headers is not None:
            message["headers"] = headers
            example["headers"] = example_of(headers, self.schemas.schemas)
        if payload is not None:
            message["payload"] = payload
            example["payload"] = example_of(payload, self.schemas.schemas)
        if len(example) > 1:
            message["examples"] = [example]
        for key, existing in self.messages.items():
            if existing == message:
                return key
        key = unique_key(self.messages, event_type, owner)
        self.messages[key] = message
        return key

    def _operation(
        self,
        action: str,
        owner: str,
        event_type: str,
        channel: str,
        message: str,
        endpoint: Any,
        suffix: str | None,
        binding: dict[str, Any],
    ) -> None:
        self.channels[channel]["messages"][message] = {"$ref": f"#/components/messages/{message}"}
        operation: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
            "title": f"{action} {event_type}",
        }
        if getattr(endpoint, "summary", None):
            operation["summary"] = endpoint.summary
        if len(binding) > 1:
            operation["bindings"] = {"kafka": dict(binding)}
        operation["x-evkafka-consumer" if action == "receive" else "x-evkafka-producer"] = owner
        if getattr(endpoint, "name", None):
            operation["x-evkafka-endpoint"] = endpoint.name
        base = ".".join(p for p in (action, owner, event_type, suffix) if p)
        self.operations[unique_key(self.operations, base)] = operation

    def finish(self, info: dict[str, Any]) -> dict[str, Any]:
        document: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": info,
            "defaultContentType": DEFAULT_CONTENT_TYPE,
        }
        if self.servers:
            document["servers"] = self.servers
        document["channels"] = self.channels
        document["operations"] = self.operations
        components: dict[str, Any] = {}
        for name, part in (
            ("messages", self.messages),
            ("schemas", self.schemas.schemas),
            ("securitySchemes", self.security),
        ):
            if part:
                components[name] = part
        if components:
            document["components"] = components
        return document
