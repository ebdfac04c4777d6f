"""Per-message metadata handed to endpoints that ask for it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from evkafka.codec import JSON
from evkafka.message import Message
from evkafka.state import State


class Request:
    """A read-only view of the Message being handled."""

    __slots__ = ("_headers", "_state", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self._headers: dict[str, bytes] | None = None
        self._state: State | None = None

    @property
    def headers(self) -> dict[str, bytes]:
        """The record's headers as a dict (for a repeated name, the last value)."""
        if self._headers is None:
            self._headers = dict(self.message.headers)
        return self._headers

    @property
    def key(self) -> bytes | None:
        """The record's raw key, or None."""
        return self.message.key

    @property
    def value(self) -> bytes | None:
        """The record's raw value (None for a tombstone)."""
        return self.message.value

    @property
    def topic(self) -> str:
        """The topic the record came from."""
        return self.message.topic

    @property
    def partition(self) -> int:
        """The partition the record came from."""
        return self.message.partition

    @property
    def offset(self) -> int:
        """The record's offset in its partition."""
        return self.message.offset

    @property
    def timestamp(self) -> int:
        """The record's timestamp, in milliseconds since the epoch."""
        return self.message.timestamp

    @property
    def event_type(self) -> str | None:
        """The event type the stack read from the record."""
        return self.message.event_type

    @property
    def state(self) -> State:
        """What the lifespan yielded, by attribute: `request.state.db`."""
        if self._state is None:
            self._state = State(self.message.state)
        return self._state

    async def json(self) -> Any:
        """The value decoded by the stack's codec, without a target type."""
        value = self.message.value
        if value is None:
            return None
        return (self.message.codec or JSON).decode_any(value)

    @property
    def context(self) -> SimpleNamespace:
        """The original evkafka's `request.context` shape, for old code."""
        m = self.message
        return SimpleNamespace(
            message=SimpleNamespace(
                key=m.key, value=m.value, headers=tuple(m.headers), event_type=m.event_type
            ),
            consumer=SimpleNamespace(
                group_id=m.group_id,
                client_id=m.client_id,
                topic=m.topic,
                partition=m.partition,
                offset=m.offset,
                timestamp=m.timestamp,
            ),
            state=m.state,
        )
