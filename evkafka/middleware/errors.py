"""Applies the error policy to whatever the inner layers raise: retry, dead-letter, skip, stop.

Observability: every retry, dead-letter, skip and stop is logged on the `evkafka.errors`
logger with the record's coordinates and reported as an `ErrorEvent` to listeners: the
`listener=` callable given to `ErrorPolicyMiddleware`, and every inner layer (user middleware
in `middleware=[...]`) that defines `on_error_event(event)`. That is how a metrics
middleware counts retries, dead-letters, skips and stops without extra wiring. A listener
that raises is logged and ignored.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import random
import re
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from evkafka.config import PRODUCER_KEYS, ProducerConfig, check_keys
from evkafka.errors import ConfigError, UndecodableMessageError
from evkafka.message import Message
from evkafka.types import DeadLetterSink, MessageApp

logger = logging.getLogger("evkafka.errors")

OnFailure = Literal["stop", "skip", "dead-letter"]
ON_FAILURE: tuple[OnFailure, ...] = ("stop", "skip", "dead-letter")
ErrorAction = Literal["retry", "dead-letter", "skip", "stop"]

#: Placeholders a `dead_letter_topic` template may use.
TOPIC_FIELDS = frozenset({"topic", "group", "consumer"})
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")

ExceptionTypes = tuple[type[BaseException], ...]


def _exception_types(value: Any, name: str) -> ExceptionTypes:
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value
    ):
        raise ConfigError(f"{name} must be an exception class or a tuple of them, not {value!r}")
    return tuple(value)


def _check_topic_template(template: Any) -> None:
    if not isinstance(template, str) or not template:
        raise ConfigError(f"dead_letter_topic must be a non-empty string, not {template!r}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"dead_letter_topic {template!r} is not a valid template: {exc}"
        ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TOPIC_FIELDS:
            raise ConfigError(
                f"dead_letter_topic {template!r} uses unknown placeholder {{{name}}}; "
                f"use {{topic}}, {{group}} or {{consumer}}"
            )
        if spec or conversion:
            raise ConfigError(f"dead_letter_topic {template!r}: placeholders take no format spec")
    sample = template.format(topic="t", group="g", consumer="c")
    if not _LEGAL_TOPIC.match(sample):
        raise ConfigError(
            f"dead_letter_topic {template!r} gives an illegal topic name {sample!r}; "
            f"Kafka topic names use only letters, digits, '.', '_' and '-'"
        )


@dataclass(frozen=True)
class ErrorPolicy:
    """What happens when processing a message raises.

    Default: endpoint exceptions are retried 3 times (exponential backoff from 100 ms,
    doubling, capped at 10 s, with jitter), then `stop`: the offset is not committed, the
    consumer stops and the app exits non-zero, so nothing is ever lost by default.
    Undecodable records (bad JSON, wrong schema, bad UTF-8, unexpected tombstone, missing
    event type) can never succeed and go straight to the terminal action. Turn on
    dead-lettering with `ErrorPolicy(on_failure="dead-letter")`: failed records are written
    to `<topic>.DLT` (see `dead_letter_topic`) with error headers, then committed.
    """

    #: Attempts after the first; 0 disables retrying.
    retries: int = 3
    #: Wait before the first retry; each further wait is `backoff_multiplier` times longer.
    backoff_ms: int = 100
    backoff_max_ms: int = 10_000
    backoff_multiplier: float = 2.0
    #: Fraction of each wait that is random (0: exact waits; 1: anywhere from 0 to the wait).
    jitter: float = 0.5
    #: The terminal action once retries are spent or the error is not retryable.
    on_failure: OnFailure = "stop"
    #: Only these exceptions are retried (default: any endpoint exception).
    retry_on: ExceptionTypes = (Exception,)
    #: These are never retried, even when they match `retry_on`.
    never_retry: ExceptionTypes = ()
    #: Dead-letter topic name; may use {topic}, {group} and {consumer}.
    dead_letter_topic: str = "{topic}.DLT"
    #: Producer options for dead-lettering. Without `bootstrap_servers` they are laid over the
    #: consumer's connection settings; with it they describe another cluster on their own.
    dead_letter_producer: ProducerConfig | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.on_failure not in ON_FAILURE:
            close = difflib.get_close_matches(str(self.on_failure), ON_FAILURE, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"on_failure must be one of 'stop', 'skip', 'dead-letter', not "
                f"{self.on_failure!r}{hint}"
            )
        for name in ("retries", "backoff_ms", "backoff_max_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, not {value!r}")
        if self.backoff_max_ms < self.backoff_ms:
            raise ConfigError(
                f"backoff_max_ms ({self.backoff_max_ms}) must not be below backoff_ms "
                f"({self.backoff_ms})"
            )
        if not isinstance(self.backoff_multiplier, (int, float)) or self.backoff_multiplier < 1:
            raise ConfigError(f"backoff_multiplier must be >= 1, not {self.backoff_multiplier!r}")
        if not isinstance(self.jitter, (int, float)) or not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be between 0 and 1, not {self.jitter!r}")
        object.__setattr__(self, "retry_on", _exception_types(self.retry_on, "retry_on"))
        object.__setattr__(self, "never_retry", _exception_types(self.never_retry, "never_retry"))
        _check_topic_template(self.dead_letter_topic)
        producer = self.dead_letter_producer
        if producer is not None:
            if not isinstance(producer, dict):
                raise ConfigError(
                    f"dead_letter_producer must be a ProducerConfig dict, not {producer!r}"
                )
            check_keys(dict(producer), PRODUCER_KEYS, "dead_letter_producer")

    def retryable(self, error: BaseException) -> bool:
        """Whether another attempt could succeed: never for undecodable records."""
        if isinstance(error, UndecodableMessageError) or isinstance(error, self.never_retry):
            return False
        return isinstance(error, self.retry_on)

    def backoff(self, retry: int, rand: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based); `rand` in [0, 1) for tests."""
        base = min(self.backoff_max_ms, self.backoff_ms * self.backoff_multiplier ** (retry - 1))
        if rand is None:
            rand = random.random()
        return base * (1 - self.jitter * rand) / 1000

    def dead_letter_topic_for(self, topic: str, group: str | None, consumer: str | None) -> str:
        """The dead-letter topic for records of `topic`."""
        return self.dead_letter_topic.format(
            topic=topic, group=group or "", consumer=consumer or ""
        )


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """One decision of the error policy, as listeners see it."""

    action: ErrorAction
    message: Message
    error: BaseException
    #: Attempts made so far.
    attempt: int
    #: Seconds until the next attempt (retries only).
    delay: float = 0.0
    dead_letter_topic: str | None = None


ErrorListener = Callable[[ErrorEvent], None]

DEFAULT_POLICY = ErrorPolicy()


def _inner_listeners(app: Any) -> list[ErrorListener]:
    found: list[ErrorListener] = []
    layer = app
    while layer is not None:
        hook = getattr(layer, "on_error_event", None)
        if callable(hook):
            found.append(hook)
        layer = getattr(layer, "app", None)
    return found


class ErrorPolicyMiddleware:
    """Sits inside the commit layer: a message it lets through is marked done.

    `policy` applies unless the failing message's endpoint has its own. `dead_letters`
    writes dead letters (without one, dead-lettering falls back to stop). Retrying one
    message never takes longer than `time_budget_ms` (the consumer's
    `max_endpoint_exec_time_ms`), so the partition is never held past the limit.
    """

    def __init__(
        self,
        app: MessageApp,
        policy: ErrorPolicy | None = None,
        *,
        dead_letters: DeadLetterSink | None = None,
        listener: ErrorListener | None = None,
        time_budget_ms: int | None = None,
    ) -> None:
        self.app = app
        self.policy = policy or DEFAULT_POLICY
        self.dead_letters = dead_letters
        self.listeners = ([listener] if listener else []) + _inner_listeners(app)
        self.time_budget = time_budget_ms / 1000 if time_budget_ms else None
        self._dead_letter_topics: dict[tuple[int, str], str] = {}

    async def __call__(self, message: Message) -> None:
        value = message.value
        try:
            await self.app(message)
        except Exception as exc:
            await self.recover(message, value, exc)

    async def recover(self, message: Message, value: bytes | None, error: Exception) -> None:
        """Retry `message` (from its original `value`) while the policy allows, then act."""
        endpoint = message.endpoint
        policy = (endpoint.error_policy if endpoint is not None else None) or self.policy
        deadline = None if self.time_budget is None else time.monotonic() + self.time_budget
        while policy.retryable(error) and message.attempt <= policy.retries:
            delay = policy.backoff(message.attempt)
            if deadline is not None and time.monotonic() + delay > deadline:
                logger.warning(
                    "%s: retry budget of %.3fs (max_endpoint_exec_time_ms) spent after %d "
                    "attempt(s)",
                    _where(message),
                    self.time_budget,
                    message.attempt,
                    extra=message.log_fields(),
                )
                break
            logger.warning(
                "%s failed (attempt %d of %d), retrying in %.3fs: %s: %s",
                _where(message),
                message.attempt,
                policy.retries + 1,
                delay,
                type(error).__name__,
                error,
                extra=message.log_fields(),
            )
            self._emit("retry", message, error, delay=delay)
            await asyncio.sleep(delay)
            _reset(message, value)
            try:
                await self.app(message)
                return
            except Exception as exc:
                error = exc
        await self._terminal(policy, message, value, error)

    async def _terminal(
        self, policy: ErrorPolicy, message: Message, value: bytes | None, error: Exception
    ) -> None:
        action = policy.on_failure
        trace = None if isinstance(error, UndecodableMessageError) else error
        if action == "skip":
            logger.warning(
                "%s skipped after %d attempt(s): %s: %s",
                _where(message),
                message.attempt,
                type(error).__name__,
                error,
                exc_info=trace,
                extra=message.log_fields(),
            )
            self._emit("skip", message, error)
            return
        if action == "dead-letter" and self.dead_letters is not None:
            topic = self._dead_letter_topic(policy, message)
            try:
                await self.dead_letters.publish(
                    message, value, error, topic, policy.dead_letter_producer
                )
            except Exception as exc:
                logger.error(
                    "%s: dead-letter write to %r failed, stopping instead (nothing is "
                    "committed): %s",
                    _where(message),
                    topic,
                    exc,
                    extra=message.log_fields(),
                )
                self._emit("stop", message, exc)
                raise
            logger.warning(
                "%s dead-lettered to %r after %d attempt(s): %s: %s",
                _where(message),
                topic,
                message.attempt,
                type(error).__name__,
                error,
                exc_info=trace,
                extra=message.log_fields(),
            )
            self._emit("dead-letter", message, error, dead_letter_topic=topic)
            return
        self._emit("stop", message, error)
        raise error

    def _dead_letter_topic(self, policy: ErrorPolicy, message: Message) -> str:
        key = (id(policy), message.topic)
        topic = self._dead_letter_topics.get(key)
        if topic is None:
            topic = self._dead_letter_topics[key] = policy.dead_letter_topic_for(
                message.topic, message.group_id, message.consumer_name
            )
        return topic

    def _emit(
        self,
        action: ErrorAction,
        message: Message,
        error: BaseException,
        delay: float = 0.0,
        dead_letter_topic: str | None = None,
    ) -> None:
        if not self.listeners:
            return
        event = ErrorEvent(action, message, error, message.attempt, delay, dead_letter_topic)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                logger.exception(
                    "error-event listener %r failed", listener, extra=message.log_fields()
                )


def _reset(message: Message, value: bytes | None) -> None:
    """Undo what layers learned or rewrote, so the next attempt starts from the record."""
    message.value = value
    message.event_type = None
    message.codec = None
    message.endpoint = None
    if message.extensions:
        message.extensions = {}
    message.attempt += 1


def _where(message: Message) -> str:
    return (
        f"{message.topic}[{message.partition}]@{message.offset} "
        f"(event type {message.event_type!r}, consumer {message.consumer_name!r})"
    )
