"""Re-drive: put dead-lettered records back on their original topics after a fix.

Each record goes back with its original key, value and headers (the `evkafka-dlt-*` error
headers dropped), partitioned by key. Progress is committed under a consumer group after
delivery is confirmed, so a re-drive that stops part-way resumes where it left off; a
record may be published twice if the process dies between delivery and commit. Records
dead-lettered while a re-drive runs wait for the next one, so a still-failing record
cannot loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from evkafka.config import CONSUMER_KEYS, ProducerConfig, check_keys
from evkafka.deadletter import CONNECTION_KEYS, ORIGINAL_TOPIC, original_headers, producer_kwargs
from evkafka.errors import ConfigError, EVKafkaError

logger = logging.getLogger("evkafka.redrive")

DEFAULT_GROUP = "evkafka-redrive"


class RedriveError(EVKafkaError):
    """A re-drive could not go on; what was delivered before it is committed."""


def _check(dead_letter_topic: Any, limit: Any, max_wait_s: Any) -> None:
    if not isinstance(dead_letter_topic, str) or not dead_letter_topic:
        raise ConfigError(f"dead_letter_topic must be a topic name, not {dead_letter_topic!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be a non-negative integer or None, not {limit!r}")
    if not isinstance(max_wait_s, (int, float)) or max_wait_s <= 0:
        raise ConfigError(f"max_wait_s must be a positive number of seconds, not {max_wait_s!r}")


async def redrive(
    config: Mapping[str, Any],
    dead_letter_topic: str,
    *,
    group_id: str = DEFAULT_GROUP,
    limit: int | None = None,
    to_topic: str | None = None,
    producer: ProducerConfig | None = None,
    max_wait_s: float = 30.0,
) -> int:
    """Re-publish the records of `dead_letter_topic` to their original topics; the count.

    `config` gives the connection (a BrokerConfig or a whole ConsumerConfig; only its
    connection keys are used). `limit` caps how many records go back; `to_topic` sends
    them all to one topic instead of each one's original; `producer` overrides producer
    options as for dead-lettering. `max_wait_s` bounds each wait for the broker, in seconds.
    """
    _check(dead_letter_topic, limit, max_wait_s)
    check_keys(dict(config), CONSUMER_KEYS, "redrive")
    connection = {k: v for k, v in config.items() if k in CONNECTION_KEYS}
    if limit == 0:
        return 0
    consumer = AIOKafkaConsumer(
        **connection,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    kafka_producer = AIOKafkaProducer(**producer_kwargs(connection, producer))
    try:
        async with asyncio.timeout(max_wait_s):
            await consumer.start()
            await kafka_producer.start()
            if dead_letter_topic not in await consumer.topics():
                raise RedriveError(f"dead-letter topic {dead_letter_topic!r} does not exist")
            partitions = consumer.partitions_for_topic(dead_letter_topic) or set()
            consumer.assign([TopicPartition(dead_letter_topic, p) for p in sorted(partitions)])
        count = await _copy(consumer, kafka_producer, limit, to_topic, max_wait_s)
    finally:
        await kafka_producer.stop()
        await consumer.stop()
    logger.info("re-drove %d record(s) from %r", count, dead_letter_topic)
    return count


async def _copy(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    limit: int | None,
    to_topic: str | None,
    max_wait_s: float,
) -> int:
    # Each partition's end is its high watermark in the first fetch response, so records
    # dead-lettered meanwhile wait for the next re-drive (ListOffsets is not used: some
    # Kafka-compatible brokers under-report it).
    count = 0
    remaining: list[TopicPartition] = list(consumer.assignment())
    ends: dict[TopicPartition, int] = {}
    last_progress = time.monotonic()
    while remaining and (limit is None or count < limit):
        batch = await consumer.getmany(*remaining, timeout_ms=200)
        for tp in remaining:
            highwater = consumer.highwater(tp)
            if tp not in ends and highwater is not None:
                ends[tp] = highwater
        if not batch:
            if time.monotonic() - last_progress > max_wait_s:
                raise RedriveError(
                    f"no records from {sorted(str(tp) for tp in remaining)} for {max_wait_s:g}s; "
                    f"{count} re-driven so far"
                )
        else:
            last_progress = time.monotonic()
        deliveries: list[asyncio.Future[Any]] = []
        done: dict[TopicPartition, int] = {}
        problem: str | None = None
        for tp, records in batch.items():
            for r in records:
                if r.offset >= ends[tp] or (limit is not None and count >= limit):
                    break
                target = to_topic
                if target is None:
                    raw = dict(r.headers).get(ORIGINAL_TOPIC)
                    if not raw:
                        problem = (
                            f"{tp.topic}[{tp.partition}]@{r.offset} has no {ORIGINAL_TOPIC!r} "
                            f"header; pass to_topic (--to-topic) to say where it goes"
                        )
                        break
                    target = raw.decode()
                deliveries.append(
                    await producer.send(
                        target, r.value, key=r.key, headers=original_headers(r.headers)
                    )
                )
                done[tp] = r.offset + 1
                count += 1
            if problem:
                break
        async with asyncio.timeout(max_wait_s):
            await asyncio.gather(*deliveries)
            if done:
                await consumer.commit(done)
        if problem:
            raise RedriveError(f"{problem} ({count} re-driven before it)")
        remaining = [
            tp for tp in remaining if tp not in ends or await consumer.position(tp) < ends[tp]
        ]
    return count
