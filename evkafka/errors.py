"""Exceptions evkafka raises; per-record errors name the record's coordinates."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evkafka.message import Message


class EVKafkaError(Exception):
    """Base of every evkafka exception."""


class ConfigError(EVKafkaError, ValueError):
    """A consumer, producer or app setting is invalid."""


class RegistrationError(EVKafkaError, TypeError):
    """An endpoint cannot be registered as written."""


class NotStartedError(EVKafkaError, RuntimeError):
    """A producer or sender was used before the app started it."""


class DeliveryError(EVKafkaError):
    """One or more produced events did not reach the broker; `errors` holds each cause."""

    def __init__(self, reason: str, errors: list[BaseException] | None = None) -> None:
        self.errors = errors or []
        super().__init__(reason)


class MessageError(EVKafkaError):
    """A record could not be processed; carries where it came from."""

    def __init__(self, reason: str, message: Message, endpoint: str | None = None) -> None:
        self.reason = reason
        self.topic = message.topic
        self.partition = message.partition
        self.offset = message.offset
        self.event_type = message.event_type
        self.endpoint = endpoint
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        target = f" for endpoint {endpoint!r}" if endpoint else ""
        super().__init__(f"{reason} ({where}{target})")


class UndecodableMessageError(MessageError):
    """The record can never be processed as it is; retrying cannot help."""


class MissingEventTypeError(UndecodableMessageError):
    """The record carries no event type where the convention expects one."""


class InvalidEventTypeError(UndecodableMessageError):
    """The event type is present but unreadable (e.g. not UTF-8)."""


class PayloadDecodeError(UndecodableMessageError):
    """The value does not decode into the endpoint's payload type."""


class TombstoneError(PayloadDecodeError):
    """A null value reached an endpoint whose payload type is not Optional."""
