"""The original evkafka's combined layer, kept for code written against it."""

from __future__ import annotations

from collections.abc import Awaitable

from evkafka.codec import JSON
from evkafka.message import Message
from evkafka.middleware.event_type import EventTypeMiddleware
from evkafka.types import MessageApp


class JsonTypedDecoderMiddleware(EventTypeMiddleware):
    """Event type from `type_header_name` plus the JSON codec, in one layer."""

    def __init__(self, app: MessageApp, type_header_name: str = "Event-Type") -> None:
        super().__init__(app, header_name=type_header_name)

    def __call__(self, message: Message) -> Awaitable[None]:
        message.event_type = self.read(message)
        message.codec = JSON
        return self.app(message)
