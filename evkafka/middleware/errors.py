"""Applies the consumer's error policy to whatever the inner layers raise."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from evkafka.errors import ConfigError
from evkafka.message import Message
from evkafka.types import MessageApp

logger = logging.getLogger("evkafka.errors")

OnFailure = Literal["stop", "skip"]


@dataclass(frozen=True)
class ErrorPolicy:
    """What happens to a message whose processing raised.

    `stop` (default) re-raises: the offset is not committed and the consumer stops,
    so nothing is lost. `skip` logs the failure and lets the offset be committed.
    """

    on_failure: OnFailure = "stop"

    def __post_init__(self) -> None:
        if self.on_failure not in ("stop", "skip"):
            raise ConfigError(f"on_failure must be 'stop' or 'skip', not {self.on_failure!r}")


class ErrorPolicyMiddleware:
    """Sits inside the commit layer: a message it lets through is marked done."""

    def __init__(self, app: MessageApp, policy: ErrorPolicy | None = None) -> None:
        self.app = app
        self.policy = policy or ErrorPolicy()

    async def __call__(self, message: Message) -> None:
        try:
            await self.app(message)
        except Exception as exc:
            if self.policy.on_failure == "stop":
                raise
            logger.warning(
                "skipped %s[%s]@%s (event type %r) after %s: %s",
                message.topic,
                message.partition,
                message.offset,
                message.event_type,
                type(exc).__name__,
                exc,
            )
