"""Event-type layers: each convention reads what its `write` produces, and fails clearly."""

from __future__ import annotations

import json

import pytest

from evkafka.conventions import (
    BodyFieldConvention,
    CloudEventsBinary,
    CloudEventsStructured,
    HeaderConvention,
)
from evkafka.errors import InvalidEventTypeError, MissingEventTypeError
from evkafka.message import Message
from evkafka.middleware import (
    BodyFieldEventTypeMiddleware,
    CloudEventsBinaryMiddleware,
    CloudEventsStructuredMiddleware,
    EventTypeMiddleware,
    JsonTypedDecoderMiddleware,
)


def msg(value: bytes | None, headers: list[tuple[str, bytes]]) -> Message:
    return Message("orders", 1, 42, None, value, headers, 0)


class Inner:
    def __init__(self) -> None:
        self.seen: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.seen.append(message)


async def test_default_header_is_event_type() -> None:
    inner = Inner()
    m = msg(b"{}", [("Other", b"x"), ("Event-Type", b"Created")])
    await EventTypeMiddleware(inner)(m)
    assert inner.seen[0].event_type == "Created"


async def test_header_name_is_overridable() -> None:
    inner = Inner()
    m = msg(b"{}", [("Event-Type", b"Wrong"), ("X-Type", b"Right")])
    await EventTypeMiddleware(inner, header_name="X-Type")(m)
    assert m.event_type == "Right"


async def test_compat_layer_reads_type_header_name_and_installs_json() -> None:
    inner = Inner()
    m = msg(b"{}", [("Custom-Type-Header", b"T")])
    await JsonTypedDecoderMiddleware(inner, type_header_name="Custom-Type-Header")(m)
    assert m.event_type == "T" and m.codec is not None


async def test_missing_header_is_a_typed_error_with_coordinates() -> None:
    with pytest.raises(MissingEventTypeError, match=r"no 'Event-Type' header \(orders\[1\]@42\)"):
        await EventTypeMiddleware(Inner())(msg(b"{}", []))


async def test_non_utf8_header_is_a_typed_error() -> None:
    with pytest.raises(InvalidEventTypeError, match="not valid UTF-8"):
        await EventTypeMiddleware(Inner())(msg(b"{}", [("Event-Type", b"\xff\xfe")]))


@pytest.mark.parametrize(
    "convention",
    [
        HeaderConvention(),
        HeaderConvention("Custom"),
        CloudEventsBinary(),
        CloudEventsStructured(),
        BodyFieldConvention("kind"),
    ],
)
def test_each_convention_reads_what_it_writes(convention: object) -> None:
    headers: list[tuple[str, bytes]] = []
    value = convention.write("Shipped", b'{"id": 5}', headers)  # type: ignore[attr-defined]
    m = msg(value, headers)
    assert convention.read(m) == "Shipped"  # type: ignore[attr-defined]
    assert json.loads(m.value or b"")["id"] == 5


async def test_cloudevents_binary_exposes_attributes() -> None:
    inner = Inner()
    headers = [("ce_type", b"Paid"), ("ce_source", b"/billing"), ("ce_id", b"1"), ("ce_specversion", b"1.0")]
    await CloudEventsBinaryMiddleware(inner)(msg(b"{}", headers))
    m = inner.seen[0]
    assert m.event_type == "Paid"
    assert m.extensions["cloudevents"] == {"type": "Paid", "source": "/billing", "id": "1", "specversion": "1.0"}


async def test_cloudevents_binary_without_ce_type_is_missing() -> None:
    with pytest.raises(MissingEventTypeError, match="ce_type"):
        await CloudEventsBinaryMiddleware(Inner())(msg(b"{}", [("ce_source", b"x")]))


async def test_cloudevents_structured_unwraps_data() -> None:
    inner = Inner()
    body = json.dumps(
        {"specversion": "1.0", "type": "Paid", "source": "s", "id": "9", "data": {"amount": 3}}
    ).encode()
    m = msg(body, [("content-type", b"application/cloudevents+json; charset=utf-8")])
    await CloudEventsStructuredMiddleware(inner)(m)
    assert m.event_type == "Paid"
    assert json.loads(m.value or b"") == {"amount": 3}
    assert m.extensions["cloudevents"]["source"] == "s"


async def test_cloudevents_structured_falls_back_to_binary_mode() -> None:
    m = msg(b"{}", [("ce_type", b"Bin")])
    await CloudEventsStructuredMiddleware(Inner())(m)
    assert m.event_type == "Bin"


async def test_cloudevents_structured_invalid_json_is_missing_type() -> None:
    m = msg(b"{oops", [("content-type", b"application/cloudevents+json")])
    with pytest.raises(MissingEventTypeError, match="not valid JSON"):
        await CloudEventsStructuredMiddleware(Inner())(m)


async def test_body_field_reads_configured_field() -> None:
    m = msg(b'{"kind": "Moved", "x": 1}', [])
    await BodyFieldEventTypeMiddleware(Inner(), field="kind")(m)
    assert m.event_type == "Moved"


@pytest.mark.parametrize("value", [b'{"x": 1}', b"[1]", b"{bad", None])
async def test_body_field_missing_or_unreadable_is_typed(value: bytes | None) -> None:
    with pytest.raises(MissingEventTypeError):
        await BodyFieldEventTypeMiddleware(Inner())(msg(value, []))
