"""Endpoint: signature read once at registration; one-pass decoding per message."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Optional

import msgspec
import pydantic
import pytest

from evkafka import Request
from evkafka.codec import JSON
from evkafka.endpoint import Endpoint
from evkafka.errors import PayloadDecodeError, RegistrationError, TombstoneError
from evkafka.message import Message


class Model(pydantic.BaseModel):
    a: int
    nested: dict[str, int] = {}


class Struct(msgspec.Struct):
    a: int


@dataclasses.dataclass
class Data:
    a: int


def msg(value: bytes | None) -> Message:
    m = Message("t", 2, 7, b"k", value, [("Event-Type", b"E")], 123)
    m.codec = JSON
    return m


async def call(func: Any, value: bytes | None) -> Any:
    seen: list[Any] = []

    async def wrapper(*args: Any) -> None:
        seen.append(args)

    ep = Endpoint("E", func)
    ep.func = wrapper
    ep.is_async = True
    await ep(msg(value))
    return seen[0]


@pytest.mark.parametrize(
    ("annotation", "raw", "expected"),
    [
        (dict, b'{"a": 1}', {"a": 1}),
        (str, "h\u00e9".encode(), "h\u00e9"),
        (bytes, b"\x00\xff", b"\x00\xff"),
        (Model, b'{"a": 1}', Model(a=1)),
        (Struct, b'{"a": 1}', Struct(a=1)),
        (Data, b'{"a": 1}', Data(a=1)),
        (list, b"[1, 2]", [1, 2]),
        (list[Model], b'[{"a": 1}]', [Model(a=1)]),
        (Any, b"3", 3),
    ],
)
async def test_payload_annotation_picks_the_decoding(annotation: Any, raw: bytes, expected: Any) -> None:
    def endpoint(event: annotation) -> None: ...  # type: ignore[valid-type]

    endpoint.__annotations__["event"] = annotation
    assert await call(endpoint, raw) == (expected,)


async def test_optional_payload_gets_none_for_a_tombstone() -> None:
    def endpoint(event: Optional[Model]) -> None: ...  # noqa: UP045

    assert await call(endpoint, None) == (None,)
    assert await call(endpoint, b'{"a": 2}') == (Model(a=2),)


async def test_union_with_none_payload_gets_none_for_a_tombstone() -> None:
    def endpoint(event: dict | None) -> None: ...

    assert await call(endpoint, None) == (None,)


async def test_tombstone_to_a_non_optional_endpoint_is_a_typed_error() -> None:
    def endpoint(event: dict) -> None: ...

    with pytest.raises(TombstoneError) as info:
        await call(endpoint, None)
    assert "t[2]@7" in str(info.value) and "endpoint" in str(info.value)


@pytest.mark.parametrize(
    ("annotation", "raw"),
    [(dict, b"{not json"), (Model, b'{"a": "x"}'), (Struct, b"[]"), (str, b"\xff\xfe")],
)
async def test_undecodable_value_names_record_and_endpoint(annotation: Any, raw: bytes) -> None:
    def handle_it(event: dict) -> None: ...

    handle_it.__annotations__["event"] = annotation
    with pytest.raises(PayloadDecodeError) as info:
        await call(handle_it, raw)
    err = info.value
    assert (err.topic, err.partition, err.offset) == ("t", 2, 7)
    assert err.endpoint is not None and "handle_it" in err.endpoint
    assert "t[2]@7" in str(err)


async def test_request_may_come_first_or_second() -> None:
    def first(request: Request, event: dict) -> None: ...

    def second(event: dict, request: Request) -> None: ...

    r1, p1 = await call(first, b"{}")
    p2, r2 = await call(second, b"{}")
    assert isinstance(r1, Request) and isinstance(r2, Request)
    assert p1 == p2 == {}


async def test_endpoint_without_payload_is_called_without_decoding() -> None:
    def only_request(request: Request) -> None: ...

    def nothing() -> None: ...

    (req,) = await call(only_request, b"not json")
    assert req.offset == 7
    assert await call(nothing, b"not json") == ()


def test_unannotated_parameter_is_rejected_at_registration() -> None:
    def endpoint(event) -> None: ...  # type: ignore[no-untyped-def]

    with pytest.raises(RegistrationError, match="'event' has no type annotation"):
        Endpoint("E", endpoint)


def test_two_payload_parameters_are_rejected() -> None:
    def endpoint(a: dict, b: dict) -> None: ...

    with pytest.raises(RegistrationError, match="more than one payload parameter"):
        Endpoint("E", endpoint)


class Opaque:
    pass


def test_unsupported_type_is_rejected() -> None:
    def endpoint(event: Opaque) -> None: ...

    with pytest.raises(RegistrationError, match="unsupported payload type"):
        Endpoint("E", endpoint)


async def test_plain_def_runs_in_a_worker_thread() -> None:
    threads: list[int] = []

    def endpoint(event: dict) -> None:
        threads.append(threading.get_ident())

    ep = Endpoint("E", endpoint)
    assert not ep.is_async
    await ep(msg(b"{}"))
    assert threads and threads[0] != threading.get_ident()


async def test_callable_object_with_async_call_is_awaited() -> None:
    class Counter:
        def __init__(self) -> None:
            self.seen: list[dict] = []

        async def __call__(self, event: dict) -> None:
            self.seen.append(event)

    counter = Counter()
    ep = Endpoint("E", counter)
    assert ep.is_async
    await ep(msg(b'{"x": 1}'))
    assert counter.seen == [{"x": 1}]


async def test_decoder_is_built_once_per_codec() -> None:
    def endpoint(event: Model) -> None: ...

    ep = Endpoint("E", endpoint)
    m = msg(b'{"a": 1}')
    ep.decode(m)
    first = ep._decoder
    ep.decode(m)
    assert ep._decoder is first


async def test_plain_def_sees_context_variables_set_by_outer_layers() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    def endpoint(event: dict) -> None:
        seen.append(var.get())

    ep = Endpoint("E", endpoint)
    var.set("from middleware")
    await ep(msg(b"{}"))
    assert seen == ["from middleware"]
