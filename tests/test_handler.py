"""Handler: registration rules and routing by event type."""

from __future__ import annotations

import pytest

from evkafka import Handler
from evkafka.codec import JSON
from evkafka.errors import RegistrationError
from evkafka.message import Message


def message(event_type: str | None, value: bytes = b"{}") -> Message:
    m = Message("t", 0, 0, None, value, [], 0)
    m.event_type = event_type
    m.codec = JSON
    return m


def test_decorator_returns_the_function_unchanged() -> None:
    handler = Handler()

    async def on_e(event: dict) -> None: ...

    assert handler.event("E")(on_e) is on_e


def test_duplicate_event_name_is_rejected_naming_the_event() -> None:
    handler = Handler()

    @handler.event("Dup")
    async def first(event: dict) -> None: ...

    with pytest.raises(RegistrationError, match="'Dup'"):

        @handler.event("Dup")
        async def second(event: dict) -> None: ...


def test_include_handler_copies_endpoints_with_metadata() -> None:
    inner, outer = Handler(), Handler()

    @inner.event("A", summary="sum", description="desc", tags=["x"])
    async def on_a(event: dict) -> None: ...

    outer.include_handler(inner)
    ep = outer.endpoints["A"]
    assert (ep.func, ep.summary, ep.description, ep.tags) == (on_a, "sum", "desc", ["x"])


def test_include_handler_rejects_a_clash() -> None:
    a, b = Handler(), Handler()

    @a.event("Same")
    async def one(event: dict) -> None: ...

    @b.event("Same")
    async def two(event: dict) -> None: ...

    with pytest.raises(RegistrationError, match="'Same'"):
        a.include_handler(b)


def test_docstring_is_the_default_description() -> None:
    handler = Handler()

    @handler.event("D")
    async def on_d(event: dict) -> None:
        """Stores the thing."""

    assert handler.endpoints["D"].description == "Stores the thing."


async def test_routes_by_event_type_and_records_the_endpoint() -> None:
    handler = Handler()
    got: list[str] = []

    @handler.event("A")
    async def on_a(event: dict) -> None:
        got.append("A")

    @handler.event("B")
    async def on_b(event: dict) -> None:
        got.append("B")

    m = message("B")
    await handler(m)
    assert got == ["B"]
    assert m.endpoint is handler.endpoints["B"]


async def test_unmatched_event_is_skipped_without_decoding() -> None:
    handler = Handler()

    @handler.event("A")
    async def on_a(event: dict) -> None:
        raise AssertionError("not this one")

    m = message("Other", value=b"not json at all")
    await handler(m)
    assert m.endpoint is None
