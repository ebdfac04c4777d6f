"""Reads the event type into `message.event_type`, by a swappable convention."""

from __future__ import annotations

from collections.abc import Awaitable

from evkafka.conventions import (
    BodyFieldConvention,
    CloudEventsBinary,
    CloudEventsStructured,
    EventTypeConvention,
    HeaderConvention,
)
from evkafka.message import Message
from evkafka.types import MessageApp


class EventTypeMiddleware:
    """Event type from a header (`Event-Type` by default) or from any convention."""

    #: Tells the stack builder this layer sets `message.event_type`.
    sets_event_type = True

    def __init__(
        self,
        app: MessageApp,
        header_name: str = "Event-Type",
        convention: EventTypeConvention | None = None,
    ) -> None:
        self.app = app
        self.convention = convention or HeaderConvention(header_name)
        self.read = self.convention.read

    def __call__(self, message: Message) -> Awaitable[None]:
        # Returns the inner layer's awaitable instead of awaiting it: one coroutine
        # frame less per message. Errors still raise inside the caller's `await`.
        message.event_type = self.read(message)
        return self.app(message)


class CloudEventsBinaryMiddleware(EventTypeMiddleware):
    """Event type from the `ce_type` header; `ce_*` attributes in `message.extensions`."""

    def __init__(self, app: MessageApp, source: str = "evkafka") -> None:
        super().__init__(app, convention=CloudEventsBinary(source))


class CloudEventsStructuredMiddleware(EventTypeMiddleware):
    """Event type and data from a structured CloudEvents JSON envelope."""

    def __init__(self, app: MessageApp, source: str = "evkafka") -> None:
        super().__init__(app, convention=CloudEventsStructured(source))


class BodyFieldEventTypeMiddleware(EventTypeMiddleware):
    """Event type from a field of the JSON body (`field`, default `type`)."""

    def __init__(self, app: MessageApp, field: str = "type") -> None:
        super().__init__(app, convention=BodyFieldConvention(field))
