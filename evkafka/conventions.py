"""Where a record carries its event type: read by inbound layers, written by producers.

One object serves both directions, so a swapped convention round-trips.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, Protocol

import msgspec

from evkafka.errors import InvalidEventTypeError, MissingEventTypeError
from evkafka.message import Message

OutHeaders = list[tuple[str, bytes]]


class EventTypeConvention(Protocol):
    """Reads the event type of a consumed record; writes it into a produced one."""

    def read(self, message: Message) -> str:
        """The event type; may also rewrite `message.value` / `message.extensions`."""
        ...

    def write(self, event_type: str, value: bytes | None, headers: OutHeaders) -> bytes | None:
        """Add the event type to `headers` in place and return the value to send."""
        ...

    def header_names(self) -> list[str]:
        """Headers this convention reads or writes (for API documentation)."""
        ...


def _decode_type(raw: bytes, where: str, message: Message) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEventTypeError(f"{where} is not valid UTF-8: {raw[:40]!r}", message) from None


#: Decoded event types a header convention remembers (bounded against endless new values).
MAX_KNOWN_TYPES = 1024


class HeaderConvention:
    """The event type in one header, `Event-Type` unless renamed."""

    def __init__(self, header_name: str = "Event-Type") -> None:
        self.header_name = header_name
        #: Header value -> event type: a topic carries few types, so each is decoded once.
        self._known: dict[bytes, str] = {}

    def read(self, message: Message) -> str:
        """The value of the event-type header; MissingEventTypeError without one."""
        name = self.header_name
        for k, v in message.headers:
            if k == name:
                try:
                    return self._known[v]
                except (KeyError, TypeError):  # not seen yet, or not bytes
                    return self._learn(v, message)
        raise MissingEventTypeError(f"no {name!r} header", message)

    def _learn(self, raw: bytes, message: Message) -> str:
        event_type = _decode_type(raw, f"header {self.header_name!r}", message)
        if type(raw) is bytes and len(self._known) < MAX_KNOWN_TYPES:
            self._known[raw] = event_type
        return event_type

    def write(self, event_type: str, value: bytes | None, headers: OutHeaders) -> bytes | None:
        """Append the event-type header; the value is sent as it is."""
        headers.append((self.header_name, event_type.encode()))
        return value

    def header_names(self) -> list[str]:
        """The one header this convention uses."""
        return [self.header_name]


CE_PREFIX = "ce_"
CE_STRUCTURED = "application/cloudevents+json"


class CloudEventsBinary:
    """CloudEvents Kafka binary mode: attributes in `ce_*` headers, data as the value."""

    def __init__(self, source: str = "evkafka") -> None:
        self.source = source

    def read(self, message: Message) -> str:
        """The `ce_type` header; every `ce_*` attribute goes to `extensions['cloudevents']`."""
        attributes: dict[str, str] = {}
        for k, v in message.headers:
            if k.startswith(CE_PREFIX):
                attributes[k[3:]] = _decode_type(v, f"header {k!r}", message)
        if "type" not in attributes:
            raise MissingEventTypeError("no 'ce_type' header (CloudEvents binary mode)", message)
        message.extensions["cloudevents"] = attributes
        return attributes["type"]

    def write(self, event_type: str, value: bytes | None, headers: OutHeaders) -> bytes | None:
        """Add `ce_type` and, unless given, `ce_specversion`, `ce_id`, `ce_source`, `content-type`."""
        present = {k for k, _ in headers}
        defaults = (
            ("ce_specversion", b"1.0"),
            ("ce_id", str(uuid.uuid4()).encode()),
            ("ce_source", self.source.encode()),
            ("content-type", b"application/json"),
        )
        headers.extend(h for h in defaults if h[0] not in present)
        headers.append(("ce_type", event_type.encode()))
        return value

    def header_names(self) -> list[str]:
        """The CloudEvents attribute headers this convention uses."""
        return ["ce_type", "ce_specversion", "ce_id", "ce_source"]


class _Envelope(msgspec.Struct, omit_defaults=True):
    type: str | None = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    data_base64: str | None = None


class CloudEventsStructured:
    """CloudEvents structured mode: one JSON envelope holds attributes and data.

    Records without the structured content type are read in binary mode, as the
    CloudEvents Kafka binding asks of receivers.
    """

    def __init__(self, source: str = "evkafka") -> None:
        self.source = source
        self._binary = CloudEventsBinary(source)
        self._decoder = msgspec.json.Decoder(_Envelope)
        self._attrs = msgspec.json.Decoder(dict[str, Any])

    def read(self, message: Message) -> str:
        """The envelope's `type`; `message.value` becomes its data (binary mode without the content type)."""
        content_type = message.header("content-type")
        if content_type is None or not content_type.startswith(CE_STRUCTURED.encode()):
            return self._binary.read(message)
        raw = message.value
        if raw is None:
            raise MissingEventTypeError("structured CloudEvent with a null value", message)
        try:
            envelope = self._decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise MissingEventTypeError(
                f"structured CloudEvent is not valid JSON: {exc}", message
            ) from None
        except msgspec.ValidationError as exc:
            raise MissingEventTypeError(
                f"structured CloudEvent is malformed: {exc}", message
            ) from None
        if envelope.type is None:
            raise MissingEventTypeError("structured CloudEvent without 'type'", message)
        attributes = self._attrs.decode(raw)
        attributes.pop("data", None)
        attributes.pop("data_base64", None)
        message.extensions["cloudevents"] = attributes
        if envelope.data_base64 is not None:
            message.value = base64.b64decode(envelope.data_base64)
        elif envelope.data and bytes(envelope.data) != b"null":
            message.value = bytes(envelope.data)
        else:
            message.value = None
        return envelope.type

    def write(self, event_type: str, value: bytes | None, headers: OutHeaders) -> bytes | None:
        """Wrap the value in a JSON envelope (base64 data for non-JSON values)."""
        envelope: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self.source,
            "type": event_type,
            "datacontenttype": "application/json",
        }
        if value is not None:
            try:
                msgspec.json.decode(value)
                envelope["data"] = msgspec.Raw(value)
            except msgspec.DecodeError:
                envelope["datacontenttype"] = "application/octet-stream"
                envelope["data_base64"] = base64.b64encode(value).decode()
        headers.append(("content-type", CE_STRUCTURED.encode()))
        return msgspec.json.encode(envelope)

    def header_names(self) -> list[str]:
        """Only `content-type`: the attributes travel in the value."""
        return ["content-type"]


class BodyFieldConvention:
    """The event type in a field of the JSON body (`{"type": "Created", ...}`)."""

    def __init__(self, field: str = "type") -> None:
        self.field = field
        envelope = msgspec.defstruct("BodyEnvelope", [(field, str | None, None)])
        self._decoder = msgspec.json.Decoder(envelope)

    def read(self, message: Message) -> str:
        """The body's type field, read without decoding the rest of the value."""
        raw = message.value
        if raw is None:
            raise MissingEventTypeError(f"null value has no {self.field!r} field", message)
        try:
            event_type = getattr(self._decoder.decode(raw), self.field)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MissingEventTypeError(
                f"cannot read the {self.field!r} field of the body: {exc}", message
            ) from None
        if event_type is None:
            raise MissingEventTypeError(f"body has no {self.field!r} field", message)
        return event_type  # type: ignore[no-any-return]

    def write(self, event_type: str, value: bytes | None, headers: OutHeaders) -> bytes | None:
        """Set the type field in the JSON object payload."""
        body = msgspec.json.decode(value) if value is not None else {}
        if not isinstance(body, dict):
            raise ValueError(
                f"the {self.field!r} event-type convention needs a JSON object payload"
            )
        body[self.field] = event_type
        return msgspec.json.encode(body)

    def header_names(self) -> list[str]:
        """None: the event type travels in the value."""
        return []
