"""The callable shapes evkafka is built from, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

from evkafka.message import Message

#: A layer of the inbound chain: the router, or a middleware wrapping the next layer.
MessageApp = Callable[[Message], Awaitable[None]]

#: `lifespan()` or `lifespan(app)`: an async context manager, optionally yielding state.
Lifespan = Callable[..., AbstractAsyncContextManager[dict[str, Any] | None]]
LifespanGenerator = Callable[..., AsyncIterator[dict[str, Any] | None]]

CommitMode = Literal["post-commit", "pre-commit"]


class DeadLetterSink(Protocol):
    """Where the error policy writes dead letters: the consumer's publisher or TestClient's list."""

    def require(self, producer: Any = None) -> None:
        """Declare at chain-build time that a policy will dead-letter through `producer`."""
        ...

    async def publish(
        self,
        message: Message,
        value: bytes | None,
        error: BaseException,
        topic: str,
        producer: Any = None,
    ) -> None:
        """Write the record (with its original `value`) to `topic`; return once delivered."""
        ...


class Committer(Protocol):
    """What the commit layer talks to: the consumer engine or the TestClient."""

    def mark_done(self, message: Message) -> None:
        """The message was handled, skipped or dead-lettered; its offset may be committed."""
        ...
