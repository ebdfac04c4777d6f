"""The consumer engine against the real broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from evkafka import EVKafkaApp, Handler, Request
from tests.brokerkit import committed, consumer_config, create_topic, event, produce


async def run_until(app: EVKafkaApp, done: asyncio.Event, timeout: float = 30.0) -> None:
    await app.start()
    try:
        async with asyncio.timeout(timeout):
            await done.wait()
    finally:
        await app.stop()


async def test_every_message_handled_once_in_partition_order(bootstrap: str) -> None:
    topic = await create_topic(bootstrap, partitions=4)
    n = 400
    await produce(
        bootstrap,
        topic,
        [event(b'{"i": %d}' % i, partition=i % 4, key=b"k") for i in range(n)],
    )
    seen: dict[int, list[int]] = defaultdict(list)
    done = asyncio.Event()
    handler = Handler()

    @handler.event("E")
    async def on_e(payload: dict, request: Request) -> None:
        seen[request.partition].append(payload["i"])
        if sum(map(len, seen.values())) == n:
            done.set()

    config = consumer_config(bootstrap, topic)
    app = EVKafkaApp()
    app.add_consumer(config, handler)
    await run_until(app, done)
    assert sorted(i for part in seen.values() for i in part) == list(range(n))
    for p, items in seen.items():
        assert items == sorted(items), f"partition {p} out of order"
    assert await committed(bootstrap, config["group_id"], topic, 4) == {p: n // 4 for p in range(4)}
