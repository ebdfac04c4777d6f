"""The chain: commit -> error policy -> user layers -> event type -> decoding -> router."""

from __future__ import annotations

from typing import Any

import pytest

from evkafka import ErrorPolicy, Handler, Middleware
from evkafka.codec import JSON
from evkafka.conventions import HeaderConvention
from evkafka.errors import MissingEventTypeError
from evkafka.message import Message
from evkafka.middleware import (
    CommitMiddleware,
    DecoderMiddleware,
    ErrorPolicyMiddleware,
    EventTypeMiddleware,
    JsonTypedDecoderMiddleware,
)
from evkafka.stack import build_chain, find_convention, processing_stack
from evkafka.testclient import InMemoryCommitter
from evkafka.types import MessageApp


def msg(offset: int = 0, event_type: bytes = b"E", value: bytes = b"{}") -> Message:
    return Message("t", 0, offset, None, value, [("Event-Type", event_type)], 0)


def layers(chain: Any) -> list[type]:
    out = []
    while chain is not None and not isinstance(chain, Handler):
        out.append(type(chain))
        chain = getattr(chain, "app", None)
    return out


class Recorder:
    order: list[str] = []

    def __init__(self, app: MessageApp, label: str) -> None:
        self.app = app
        self.label = label

    async def __call__(self, message: Message) -> None:
        Recorder.order.append(self.label)
        await self.app(message)


def test_default_order_outermost_first() -> None:
    chain = build_chain(Handler(), None, InMemoryCommitter())
    assert layers(chain) == [
        CommitMiddleware,
        ErrorPolicyMiddleware,
        EventTypeMiddleware,
        DecoderMiddleware,
    ]


def test_user_layers_keep_list_order_and_get_default_routing() -> None:
    stack = processing_stack([Middleware(Recorder, label="a"), Middleware(Recorder, label="b")])
    assert [m.cls for m in stack] == [Recorder, Recorder, EventTypeMiddleware, DecoderMiddleware]


def test_user_event_type_layer_replaces_the_default() -> None:
    chain = build_chain(
        Handler(),
        [Middleware(JsonTypedDecoderMiddleware, type_header_name="X")],
        InMemoryCommitter(),
    )
    assert layers(chain) == [CommitMiddleware, ErrorPolicyMiddleware, JsonTypedDecoderMiddleware]
    convention = find_convention(chain)
    assert isinstance(convention, HeaderConvention) and convention.header_name == "X"


def test_empty_user_list_still_routes_and_commits() -> None:
    chain = build_chain(Handler(), [], InMemoryCommitter())
    assert layers(chain)[:2] == [CommitMiddleware, ErrorPolicyMiddleware]
    assert EventTypeMiddleware in layers(chain)


async def test_user_layers_run_in_declared_order_before_routing() -> None:
    Recorder.order = []
    handler = Handler()

    @handler.event("E")
    async def on_e(event: dict) -> None:
        Recorder.order.append("endpoint")

    chain = build_chain(
        handler,
        [Middleware(Recorder, label="outer"), Middleware(Recorder, label="inner")],
        InMemoryCommitter(),
    )
    await chain(msg())
    assert Recorder.order == ["outer", "inner", "endpoint"]


async def test_post_commit_marks_only_after_success() -> None:
    handler = Handler()
    fail = {1}

    @handler.event("E")
    async def on_e(event: dict) -> None:
        if fail:
            fail.pop()
            raise RuntimeError("boom")

    committer = InMemoryCommitter()
    chain = build_chain(handler, None, committer, "post-commit", ErrorPolicy(retries=0))
    with pytest.raises(RuntimeError):
        await chain(msg(0))
    assert committer.committed == {}
    await chain(msg(0))
    assert committer.committed == {("t", 0): 1}


async def test_pre_commit_marks_before_the_endpoint_runs() -> None:
    handler = Handler()
    committer = InMemoryCommitter()

    @handler.event("E")
    async def on_e(event: dict) -> None:
        assert committer.committed == {("t", 0): 4}
        raise RuntimeError("after the mark")

    chain = build_chain(handler, None, committer, "pre-commit")
    with pytest.raises(RuntimeError):
        await chain(msg(3))
    assert committer.committed == {("t", 0): 4}


async def test_unmatched_event_is_committed() -> None:
    committer = InMemoryCommitter()
    chain = build_chain(Handler(), None, committer)
    await chain(msg(0, event_type=b"Nobody"))
    assert committer.committed == {("t", 0): 1}


async def test_missing_event_type_reaches_the_error_policy_uncommitted() -> None:
    committer = InMemoryCommitter()
    chain = build_chain(Handler(), None, committer)
    m = Message("t", 0, 0, None, b"{}", [], 0)
    with pytest.raises(MissingEventTypeError):
        await chain(m)
    assert committer.committed == {}


async def test_decoder_layer_installs_its_codec() -> None:
    class Codec:
        content_type = "text/upper"

        def decoder(self, tp: Any) -> Any:
            return lambda raw: raw.decode().upper()

        def decode_any(self, raw: bytes) -> Any:
            return raw

        def encode(self, obj: Any) -> bytes:
            return JSON.encode(obj)

    handler = Handler()
    got: list[Any] = []

    @handler.event("E")
    async def on_e(event: dict) -> None:
        got.append(event)

    chain = build_chain(
        handler,
        [Middleware(EventTypeMiddleware), Middleware(DecoderMiddleware, codec=Codec())],
        InMemoryCommitter(),
    )
    await chain(msg(value=b"abc"))
    assert got == ["ABC"]
