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


async def fill(bootstrap: str, topic: str, n: int, partitions: int) -> None:
    """Events 0..n-1, round-robin over the partitions (`partitions` 1: all on partition 0),
    each with the `Event-Type` header."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        pending = []
        for i in range(n):
            pending.append(
                await producer.send(
                    topic, order_bytes(i), partition=i % partitions, headers=HEADERS
                )
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def orders_topic(bootstrap: str, n: int, partitions: int, filled: int | None = None) -> str:
    """A topic of `partitions` partitions; the events go to the first `filled` of them (all)."""
    topic = await create_topic(bootstrap, partitions)
    await fill(bootstrap, topic, n, filled or partitions)
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
