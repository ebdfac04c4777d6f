"""Topics the benchmark consumes: created explicitly, filled once, checked after each run."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.workload import HEADERS, order_bytes
from evkafka import devbroker


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create_topic(bootstrap: str, partitions: int, prefix: str = "bench") -> str:
    name = unique(prefix)
    await devbroker.create_topic(bootstrap, name, partitions)
    return name


def traceparent(i: int, sampled_every: int) -> bytes:
    """A W3C traceparent: a trace per event, one in `sampled_every` sampled (flags 01)."""
    return b"00-%032x-%016x-%s" % (i + 1, i + 1, b"01" if i % sampled_every == 0 else b"00")


async def fill(
    bootstrap: str, topic: str, n: int, partitions: int, traced_every: int | None = None
) -> None:
    """Events 0..n-1, round-robin over the partitions (`partitions` 1: all on partition 0),
    each with the `Event-Type` header, and a `traceparent` if `traced_every` is given."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        pending = []
        for i in range(n):
            headers = HEADERS
            if traced_every is not None:
                headers = [*HEADERS, ("traceparent", traceparent(i, traced_every))]
            pending.append(
                await producer.send(
                    topic, order_bytes(i), partition=i % partitions, headers=headers
                )
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def orders_topic(
    bootstrap: str,
    n: int,
    partitions: int,
    filled: int | None = None,
    traced_every: int | None = None,
) -> str:
    """A topic of `partitions` partitions; the events go to the first `filled` of them (all)."""
    topic = await create_topic(bootstrap, partitions)
    await fill(bootstrap, topic, n, filled or partitions, traced_every)
    return topic


async def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """The sum of the group's committed offsets over `topic` (= records committed from 0)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        total = 0
        for p in range(partitions):
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()
