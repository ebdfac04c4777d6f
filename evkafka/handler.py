"""Inbound router: event type -> Endpoint, one dict lookup per message."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from evkafka.endpoint import Endpoint
from evkafka.errors import RegistrationError
from evkafka.message import Message

if TYPE_CHECKING:
    from evkafka.middleware.errors import ErrorPolicy

logger = logging.getLogger("evkafka.handler")

F = TypeVar("F", bound=Callable[..., Any])


class Handler:
    """Collects inbound endpoints and routes each message to one of them."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}

    def event(
        self,
        event_type: str,
        summary: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        error_policy: ErrorPolicy | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function for `event_type`; returns it unchanged.

        `error_policy` replaces the consumer's policy for this endpoint's messages.
        """

        def register(func: F) -> F:
            self.add_endpoint(
                Endpoint(event_type, func, summary, description, tags, error_policy)
            )
            return func

        return register

    def add_endpoint(self, endpoint: Endpoint) -> None:
        existing = self.endpoints.get(endpoint.event_type)
        if existing is not None:
            raise RegistrationError(
                f"event {endpoint.event_type!r} already has an endpoint ({existing.name}); "
                f"cannot register {endpoint.name} for it too"
            )
        self.endpoints[endpoint.event_type] = endpoint

    def include_handler(self, other: Handler) -> None:
        """Copy every endpoint of `other` (with its metadata) into this handler."""
        for endpoint in other.endpoints.values():
            self.add_endpoint(endpoint)

    def __call__(self, message: Message) -> Awaitable[None]:
        endpoint = self.endpoints.get(message.event_type)  # type: ignore[arg-type]
        if endpoint is not None:
            message.endpoint = endpoint
            # The endpoint's awaitable, not awaited here: one coroutine frame less per message.
            return endpoint(message)
        return self._skip(message)

    async def _skip(self, message: Message) -> None:
        """No endpoint for this event type: nothing to do (the message is committed)."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "skipped %s[%s]@%s: no endpoint for event type %r",
                message.topic,
                message.partition,
                message.offset,
                message.event_type,
                extra=message.log_fields(),
            )
