"""Publish middleware: the outbound chain, built once per producer.

Layers are declared like inbound ones, `Middleware(cls, **options)`, built as
`cls(next_layer, **options)` and called as `await layer(outgoing)`; the first
declared is the outermost. Encoding happens in the innermost layer, so a layer
sees the Python `payload` and can add `headers` before calling inward, and sees
the wire `value` and the broker's `delivery` future after the call returns.
A layer that sets `outgoing.value` itself bypasses the codec; one that does not
call inward drops the event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from evkafka.codec import Codec
from evkafka.conventions import EventTypeConvention
from evkafka.outgoing import Outgoing, OutHeaders

if TYPE_CHECKING:
    from evkafka.middleware import Middleware

#: A layer of the outbound chain: the send layer, or a middleware wrapping the next layer.
PublishApp = Callable[[Outgoing], Awaitable[None]]

#: Hands an encoded event to the transport (aiokafka, or the TestClient's recorder).
Transmit = Callable[[Outgoing], Awaitable["asyncio.Future[Any]"]]


class PublishMiddleware(Protocol):
    """What a publish layer looks like: `app` is the next layer inward."""

    app: PublishApp

    async def __call__(self, outgoing: Outgoing) -> None:
        """Do something before and/or after `await self.app(outgoing)`."""
        ...


class SendLayer:
    """The innermost layer: payload -> bytes by the codec, event type by the convention, send."""

    def __init__(self, transmit: Transmit, codec: Codec, convention: EventTypeConvention) -> None:
        self.transmit = transmit
        self.encode = codec.encode
        self.write = convention.write

    def wire(
        self, event_type: str, payload: Any, value: bytes | None, headers: OutHeaders
    ) -> bytes | None:
        """The value to send: `value` if a layer set one, else the encoded payload, with
        the event type written by the convention (into `headers`, or into the value)."""
        if value is None and payload is not None:
            try:
                value = self.encode(payload)
            except (TypeError, ValueError, NotImplementedError) as exc:
                raise TypeError(
                    f"cannot encode the payload of event {event_type!r} "
                    f"({type(payload).__name__}): {exc}"
                ) from exc
        return self.write(event_type, value, headers)

    def prepare(self, outgoing: Outgoing) -> None:
        """Encode the payload (unless a layer set `value`) and write the event type."""
        outgoing.value = self.wire(
            outgoing.event_type, outgoing.payload, outgoing.value, outgoing.headers
        )

    async def __call__(self, outgoing: Outgoing) -> None:
        self.prepare(outgoing)
        outgoing.delivery = await self.transmit(outgoing)


def build_publish_chain(
    middleware: Sequence[Middleware] | None, innermost: PublishApp
) -> PublishApp:
    """Wrap `innermost` in the declared layers, the first declared outermost."""
    app = innermost
    for m in reversed(list(middleware or ())):
        app = m.cls(app, *m.args, **m.kwargs)
    return app
