"""Writes failed records to dead-letter topics; delivery is confirmed before the commit.

A dead letter keeps the original key, value and headers and adds `evkafka-dlt-*` headers
saying what failed and where the record came from, so `evkafka.redrive` can put it back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer

from evkafka.config import BrokerConfig, ProducerConfig, aiokafka_producer_kwargs
from evkafka.errors import EVKafkaError
from evkafka.message import Message

logger = logging.getLogger("evkafka.errors")

PREFIX = "evkafka-dlt-"
ERROR_TYPE = PREFIX + "error-type"
ERROR_MESSAGE = PREFIX + "error-message"
ORIGINAL_TOPIC = PREFIX + "original-topic"
ORIGINAL_PARTITION = PREFIX + "original-partition"
ORIGINAL_OFFSET = PREFIX + "original-offset"
ORIGINAL_TIMESTAMP = PREFIX + "original-timestamp"
CONSUMER_GROUP = PREFIX + "consumer-group"
CONSUMER_NAME = PREFIX + "consumer"
ATTEMPTS = PREFIX + "attempts"
FAILED_AT = PREFIX + "time"

#: Longest error message kept in a header, in characters.
MAX_ERROR_MESSAGE = 2000

#: Consumer settings a dead-letter producer reuses to reach the same cluster.
CONNECTION_KEYS = frozenset(BrokerConfig.__annotations__) - {"cluster_name", "cluster_description"}


class DeadLetterError(EVKafkaError):
    """A record could not be dead-lettered; the policy stops rather than lose it."""


def original_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers without any `evkafka-dlt-*` ones (what the source record carried)."""
    return [(k, v) for k, v in headers if not k.startswith(PREFIX)]


def dead_letter_headers(
    message: Message, error: BaseException, now_ms: int | None = None
) -> list[tuple[str, bytes]]:
    """The original headers plus the `evkafka-dlt-*` headers describing the failure."""
    kind = type(error)
    text = str(error)[:MAX_ERROR_MESSAGE]
    headers = original_headers(message.headers)
    headers += [
        (ERROR_TYPE, f"{kind.__module__}.{kind.__qualname__}".encode()),
        (ERROR_MESSAGE, text.encode("utf-8", "replace")),
        (ORIGINAL_TOPIC, message.topic.encode()),
        (ORIGINAL_PARTITION, str(message.partition).encode()),
        (ORIGINAL_OFFSET, str(message.offset).encode()),
        (ORIGINAL_TIMESTAMP, str(message.timestamp).encode()),
        (CONSUMER_GROUP, (message.group_id or "").encode()),
        (CONSUMER_NAME, (message.consumer_name or "").encode()),
        (ATTEMPTS, str(message.attempt).encode()),
        (FAILED_AT, str(now_ms if now_ms is not None else int(time.time() * 1000)).encode()),
    ]
    return headers


def producer_kwargs(
    connection: Mapping[str, Any], producer: ProducerConfig | None
) -> dict[str, Any]:
    """aiokafka producer options: `producer` over the consumer's connection, or on its own
    when it names its own `bootstrap_servers` (another cluster). Waits for all replicas."""
    base: dict[str, Any] = {"acks": "all"}
    if producer is None or "bootstrap_servers" not in producer:
        base.update(connection)
    base.update(producer or {})
    return aiokafka_producer_kwargs(base)


class DeadLetterPublisher:
    """One consumer's dead-letter producers: started with the consumer, stopped after it.

    Nothing connects unless an error policy `require`s a producer at chain-build time.
    """

    def __init__(self, settings: Mapping[str, Any], timeout: float = 60.0) -> None:
        self.connection = {k: v for k, v in settings.items() if k in CONNECTION_KEYS}
        self.timeout = timeout
        self._configs: dict[int, ProducerConfig | None] = {}
        self._producers: dict[int, AIOKafkaProducer] = {}

    @property
    def needed(self) -> bool:
        return bool(self._configs)

    def require(self, producer: ProducerConfig | None = None) -> None:
        """Declare, before `start`, that a policy dead-letters through `producer`."""
        self._configs[id(producer)] = producer

    async def start(self) -> None:
        """Connect every required producer; a failure stops those already started."""
        try:
            for key, config in self._configs.items():
                kwargs = producer_kwargs(self.connection, config)
                producer = AIOKafkaProducer(**kwargs)
                try:
                    await producer.start()
                except Exception as exc:
                    await producer.stop()
                    raise DeadLetterError(
                        f"dead-letter producer could not connect to "
                        f"{kwargs.get('bootstrap_servers')!r}: {type(exc).__name__}: {exc}"
                    ) from exc
                self._producers[key] = producer
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            try:
                await producer.stop()
            except Exception:
                logger.exception("dead-letter producer did not stop cleanly")

    async def publish(
        self,
        message: Message,
        value: bytes | None,
        error: BaseException,
        topic: str,
        producer: ProducerConfig | None = None,
    ) -> None:
        """Write `message` (with its original `value`) to `topic`; return once delivered."""
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        kafka = self._producers.get(id(producer))
        if kafka is None:
            raise DeadLetterError(
                f"{where}: no started dead-letter producer (the consumer is not running)"
            )
        try:
            async with asyncio.timeout(self.timeout):
                await kafka.send_and_wait(
                    topic, value, key=message.key, headers=dead_letter_headers(message, error)
                )
        except Exception as exc:
            raise DeadLetterError(
                f"{where}: could not write to dead-letter topic {topic!r} "
                f"({type(exc).__name__}: {exc}); it failed with {type(error).__name__}: {error}"
            ) from exc
