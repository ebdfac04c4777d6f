"""The consumers compared: each handles every `OrderCreated` event into the same Tally.

Each runs until `stop` is set, then shuts down the way its users would (committing).
All get the same aiokafka group options (`kafka`); they differ only in the framework.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from bench.workload import EVENT_TYPE, Order, OrderStruct, Tally

Contender = Callable[[str, dict[str, Any], Tally, asyncio.Event], Awaitable[None]]

_EVENT_TYPE = EVENT_TYPE.encode()


async def raw_aiokafka(
    topic: str, kafka: dict[str, Any], tally: Tally, stop: asyncio.Event
) -> None:
    """The limit: a hand-written loop, header routing, pydantic per message, commit per batch."""
    from aiokafka import AIOKafkaConsumer

    see = tally.see

    async def on_order(order: Order) -> None:
        see(order.id)

    validate = Order.model_validate_json
    consumer = AIOKafkaConsumer(topic, enable_auto_commit=False, **kafka)
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            if not batches:
                continue
            for records in batches.values():
                for r in records:
                    for name, value in r.headers:
                        if name == "Event-Type":
                            if value == _EVENT_TYPE:
                                await on_order(validate(r.value))
                            break
            await consumer.commit()
    finally:
        await consumer.stop()


async def _evkafka(
    payload_type: type,
    topic: str,
    kafka: dict[str, Any],
    tally: Tally,
    stop: asyncio.Event,
    middleware: list[Any] | None = None,
) -> None:
    from evkafka import EVKafkaApp, Handler

    see = tally.see
    handler = Handler()
    if payload_type is Order:

        @handler.event(EVENT_TYPE)
        async def on_order(order: Order) -> None:
            see(order.id)

    else:

        @handler.event(EVENT_TYPE)
        async def on_order_struct(order: OrderStruct) -> None:
            see(order.id)

    app = EVKafkaApp(middleware=middleware)
    app.add_consumer({"topics": [topic], **kafka}, handler, name="bench")  # type: ignore[typeddict-item]
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


async def evkafka_pydantic(
    topic: str, kafka: dict[str, Any], tally: Tally, stop: asyncio.Event
) -> None:
    """evkafka's default stack (post-commit), a pydantic endpoint."""
    await _evkafka(Order, topic, kafka, tally, stop)


async def evkafka_msgspec(
    topic: str, kafka: dict[str, Any], tally: Tally, stop: asyncio.Event
) -> None:
    """evkafka's default stack (post-commit), a msgspec Struct endpoint."""
    await _evkafka(OrderStruct, topic, kafka, tally, stop)


async def _observed(
    tracing: str | None, topic: str, kafka: dict[str, Any], tally: Tally, stop: asyncio.Event
) -> None:
    """The default stack with the metrics layer, and the tracing layer unless `tracing` is
    None: "api" (no SDK installed, no spans), "sdk" (the SDK's default ParentBased sampler
    following the upstream decision, spans exported in batches and dropped) or "sdk-off"
    (the SDK installed, recording nothing)."""
    from evkafka.middleware import Middleware
    from evkafka.middleware.metrics import Metrics

    middleware = [Metrics().middleware()]
    provider = None
    if tracing is not None:
        from evkafka.middleware.tracing import TracingMiddleware

        if tracing in ("sdk", "sdk-off"):
            from bench.spans import sdk_provider

            provider = sdk_provider(record_none=tracing == "sdk-off")
        middleware.append(Middleware(TracingMiddleware, tracer_provider=provider))
    try:
        await _evkafka(Order, topic, kafka, tally, stop, middleware)
    finally:
        if provider is not None:
            provider.shutdown()


async def _faststream(
    ack_after: bool, topic: str, kafka: dict[str, Any], tally: Tally, stop: asyncio.Event
) -> None:
    from faststream import AckPolicy
    from faststream.kafka import KafkaBroker

    see = tally.see
    options = dict(kafka)
    bootstrap = options.pop("bootstrap_servers")
    # Its per-message INFO lines are filtered out (the root logger is at WARNING):
    # we compare processing, not log output.
    broker = KafkaBroker(bootstrap, log_level=logging.DEBUG)
    policy = AckPolicy.ACK if ack_after else AckPolicy.ACK_FIRST

    @broker.subscriber(topic, ack_policy=policy, **options)
    async def on_order(order: Order) -> None:
        see(order.id)

    await broker.start()
    try:
        await stop.wait()
    finally:
        await broker.stop()


async def faststream_default(
    topic: str, kafka: dict[str, Any], tally: Tally, stop: asyncio.Event
) -> None:
    """FastStream's default: aiokafka auto-commit (at-most-once on a crash)."""
    await _faststream(False, topic, kafka, tally, stop)


async def faststream_ack(
    topic: str, kafka: dict[str, Any], tally: Tally, stop: asyncio.Event
) -> None:
    """FastStream committing after processing each message (AckPolicy.ACK)."""
    await _faststream(True, topic, kafka, tally, stop)


#: name -> (runner, needs FastStream, slow: gets the smaller topic).
CONTENDERS: dict[str, tuple[Contender, bool, bool]] = {
    "raw-aiokafka": (raw_aiokafka, False, False),
    "evkafka-pydantic": (evkafka_pydantic, False, False),
    "evkafka-msgspec": (evkafka_msgspec, False, False),
    "faststream": (faststream_default, True, True),
    "faststream-ack": (faststream_ack, True, True),
}

#: The observability section's contenders: evkafka-pydantic plus its middleware, by the
#: `tracing` modes of `_observed`.
OBSERVED: dict[str, Contender] = {
    "evkafka-metrics": partial(_observed, None),
    "evkafka-observed": partial(_observed, "api"),
    "evkafka-observed-sdk-off": partial(_observed, "sdk-off"),
    "evkafka-observed-sdk": partial(_observed, "sdk"),
}


def runner(name: str) -> Contender:
    """The contender called `name`, of either table."""
    return OBSERVED[name] if name in OBSERVED else CONTENDERS[name][0]
