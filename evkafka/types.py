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


class TimedLayer(Protocol):
    """A processing layer that only counts and times the layers inside it (`app`).

    When it is the outermost processing layer of a consumer's default chain, the partition
    worker runs `app` itself and reports each attempt here: no coroutine of the layer's own
    per record. A layer opts in with a class attribute `times_inner_layers = True`.
    """

    app: MessageApp
    #: The consumer whose records it sees (its worker sets it before the first one).
    consumer: str | None
    #: Records inside the layer now: the runner adds one, `finished`/`failed` take it away.
    in_flight: int

    def finished(self, message: Message, seconds: float) -> None:
        """The layers inside returned after `seconds`."""
        ...

    def failed(self, message: Message, error: Exception, seconds: float) -> None:
        """The layers inside raised `error` after `seconds`."""
        ...
