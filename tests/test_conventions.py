"""The header convention remembers decoded event types; errors stay per record."""

from __future__ import annotations

import pytest

from evkafka.conventions import MAX_KNOWN_TYPES, HeaderConvention
from evkafka.errors import InvalidEventTypeError, MissingEventTypeError
from evkafka.message import Message


def msg(headers: list[tuple[str, object]]) -> Message:
    return Message("t", 0, 0, None, b"{}", headers, 0)  # type: ignore[arg-type]


def test_event_type_read_once_and_reused() -> None:
    convention = HeaderConvention()
    assert convention.read(msg([("Event-Type", b"Created")])) == "Created"
    assert convention.read(msg([("Event-Type", b"Created")])) == "Created"
    assert convention._known == {b"Created": "Created"}


def test_invalid_utf8_raises_every_time_and_is_not_remembered() -> None:
    convention = HeaderConvention()
    for _ in range(2):
        with pytest.raises(InvalidEventTypeError, match="not valid UTF-8"):
            convention.read(msg([("Event-Type", b"\xff\xfe")]))
    assert convention._known == {}


def test_missing_header_and_non_bytes_values() -> None:
    convention = HeaderConvention("Type")
    with pytest.raises(MissingEventTypeError, match="no 'Type' header"):
        convention.read(msg([("Event-Type", b"Created")]))
    assert convention.read(msg([("Type", bytearray(b"Created"))])) == "Created"
    assert convention._known == {}


def test_remembered_types_are_bounded() -> None:
    convention = HeaderConvention()
    for i in range(MAX_KNOWN_TYPES + 5):
        assert convention.read(msg([("Event-Type", b"T%d" % i)])) == f"T{i}"
    assert len(convention._known) == MAX_KNOWN_TYPES
