"""Installs the codec endpoints decode with; decoding itself stays lazy."""

from __future__ import annotations

from collections.abc import Awaitable

from evkafka.codec import JSON, Codec
from evkafka.message import Message
from evkafka.types import MessageApp


class DecoderMiddleware:
    """Sets `message.codec`; the endpoint decodes once, straight into its payload type."""

    def __init__(self, app: MessageApp, codec: Codec = JSON) -> None:
        self.app = app
        self.codec = codec

    def __call__(self, message: Message) -> Awaitable[None]:
        # Hands back the inner awaitable rather than awaiting it (one frame less per message).
        message.codec = self.codec
        return self.app(message)
