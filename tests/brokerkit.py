"""Shared tools for tests that talk to the real broker."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from evkafka import devbroker

_seq = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_seq)}-{uuid.uuid4().hex[:6]}"


async def create_topic(bootstrap: str, partitions: int = 1, prefix: str = "t") -> str:
    name = unique(prefix)
    await devbroker.create_topic(bootstrap, name, partitions)
    return name


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int | None]


async def produce(bootstrap: str, topic: str, records: Iterable[Record]) -> None:
    """Send (value, key, headers, partition) records and wait for every delivery."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=headers, partition=partition)
            for value, key, headers, partition in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def event(
    value: bytes | None,
    event_type: str = "E",
    partition: int | None = 0,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> Record:
    return (value, key, [("Event-Type", event_type.encode()), *(headers or [])], partition)


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    """The group's committed offsets for each partition of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
    """Read `count` records from the start of `topic` without a group."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < count:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    out.extend(records)
    finally:
        await consumer.stop()
    return out


def consumer_config(bootstrap: str, topic: str | list[str], group: str | None = None, **extra: Any) -> dict[str, Any]:
    """A consumer config tuned for the test broker: fast joins, start from the beginning."""
    return {
        "topics": [topic] if isinstance(topic, str) else topic,
        "bootstrap_servers": bootstrap,
        "group_id": group or unique("g"),
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 400,
        "auto_commit_interval_ms": 200,
        **extra,
    }
