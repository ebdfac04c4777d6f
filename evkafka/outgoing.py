"""The per-event object every publish middleware layer sees: the outbound mirror of Message."""

from __future__ import annotations

import asyncio
from typing import Any

OutHeaders = list[tuple[str, bytes]]


class Outgoing:
    """One event on its way out; `value` is filled in by the innermost (encoding) layer.

    Before the inner call a publish middleware sees `payload` and may add `headers`;
    after it, `value` holds the bytes on the wire and `delivery` the broker's future.
    """

    __slots__ = (
        "delivery",
        "event_type",
        "extensions",
        "headers",
        "key",
        "partition",
        "payload",
        "timestamp_ms",
        "topic",
        "value",
    )

    def __init__(
        self,
        topic: str,
        event_type: str,
        payload: Any,
        key: bytes | None = None,
        headers: OutHeaders | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        self.topic = topic
        self.event_type = event_type
        self.payload = payload
        #: Set by a middleware to bypass the codec; otherwise set by the encoding layer.
        self.value: bytes | None = None
        self.key = key
        self.headers: OutHeaders = headers if headers is not None else []
        self.partition = partition
        self.timestamp_ms = timestamp_ms
        #: Free-form data that publish middleware passes inward.
        self.extensions: dict[str, Any] = {}
        #: Resolves to aiokafka's RecordMetadata once the broker acknowledged the record.
        self.delivery: asyncio.Future[Any] | None = None

    def header(self, name: str) -> bytes | None:
        """The first value of header `name`, or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def __repr__(self) -> str:
        return f"<Outgoing {self.event_type!r} -> {self.topic}[{self.partition}]>"
