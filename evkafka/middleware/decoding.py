"""Installs the codec endpoints decode with; decoding itself stays lazy."""

from __future__ import annotations

from evkafka.codec import JSON, Codec
from evkafka.message import Message
from evkafka.types import MessageApp


class DecoderMiddleware:
    """Sets `message.codec`; the endpoint decodes once, straight into its payload type."""

    def __init__(self, app: MessageApp, codec: Codec = JSON) -> None:
        self.app = app
        self.codec = codec

    async def __call__(self, message: Message) -> None:
        message.codec = self.codec
        await self.app(message)
