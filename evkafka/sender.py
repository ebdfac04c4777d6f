"""Outbound endpoints: `@sender.event("Name")` turns a function into a producer of that event."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from evkafka.errors import ConfigError, NotStartedError, RegistrationError
from evkafka.producer import HeadersArg

if TYPE_CHECKING:
    from evkafka.producer import EVKafkaProducer

_MISSING: Any = object()


class SendEvent(Protocol):
    """What `@sender.event(...)` returns: an async callable that produces its payload.

    It returns the delivery future (fire-and-forget); with `wait=True` it waits for
    the broker and returns the RecordMetadata, raising DeliveryError on failure.
    """

    async def __call__(
        self,
        payload: Any = ...,
        key: bytes | str | None = None,
        headers: HeadersArg | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        *,
        wait: bool = False,
        **by_name: Any,
    ) -> Any: ...


class OutboundEndpoint:
    """One produced event: its name, topic, payload annotation and documentation."""

    def __init__(
        self,
        event_type: str,
        func: Callable[..., Any],
        topic: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        _check_names(event_type, topic)
        self.event_type = event_type
        self.func = func
        self.name: str = getattr(func, "__qualname__", None) or type(func).__name__
        self.topic = topic
        self.summary = summary
        self.description = description if description is not None else inspect.getdoc(func)
        self.tags = list(tags or ())
        self.payload_name, self.payload_type = self._payload_parameter()

    def _payload_parameter(self) -> tuple[str, Any]:
        try:
            params = [
                p
                for p in inspect.signature(self.func).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
        except (TypeError, ValueError) as exc:
            raise RegistrationError(
                f"outbound endpoint for event {self.event_type!r}: cannot read the signature "
                f"of {self.func!r}: {exc}"
            ) from exc
        if len(params) != 1:
            raise RegistrationError(
                f"outbound endpoint {self.name!r} for event {self.event_type!r} must take "
                f"exactly one parameter, the payload; it takes {len(params)}"
            )
        name = params[0].name
        try:
            hints = typing.get_type_hints(self.func)
        except NameError as exc:
            raise RegistrationError(
                f"outbound endpoint {self.name!r} for event {self.event_type!r}: cannot "
                f"resolve an annotation ({exc}); define the type at module level"
            ) from exc
        return name, hints.get(name, Any)

    def __repr__(self) -> str:
        return f"<OutboundEndpoint {self.event_type!r} -> {self.topic or '(producer topic)'}>"


class Sender:
    """Collects outbound endpoints; `app.add_producer(config, sender)` gives them a producer."""

    def __init__(self) -> None:
        self.endpoints: dict[str, OutboundEndpoint] = {}
        #: The running producer the endpoints send through; set while the app runs.
        self.producer: EVKafkaProducer | None = None

    def event(
        self,
        event_type: str,
        topic: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> Callable[[Callable[..., Any]], SendEvent]:
        """Make the decorated function send `event_type`; its body is never run."""
        _check_names(event_type, topic)

        def register(func: Callable[..., Any]) -> SendEvent:
            endpoint = OutboundEndpoint(event_type, func, topic, summary, description, tags)
            existing = self.endpoints.get(event_type)
            if existing is not None:
                raise RegistrationError(
                    f"outbound event {event_type!r} already has an endpoint ({existing.name}); "
                    f"cannot register {endpoint.name} for it too"
                )
            if self.producer is not None:
                self._check_topic(endpoint, self.producer.topic, self.producer.name)
            self.endpoints[event_type] = endpoint
            return self._sending(endpoint)

        return register

    def _sending(self, endpoint: OutboundEndpoint) -> SendEvent:
        sender = self
        event_type, topic, payload_name = endpoint.event_type, endpoint.topic, endpoint.payload_name

        async def send(
            payload: Any = _MISSING,
            key: bytes | str | None = None,
            headers: HeadersArg | None = None,
            partition: int | None = None,
            timestamp_ms: int | None = None,
            *,
            wait: bool = False,
            **by_name: Any,
        ) -> Any:
            if payload is _MISSING or by_name:
                payload = _payload_by_name(endpoint, payload, by_name, payload_name)
            producer = sender.producer
            if producer is None:
                raise NotStartedError(
                    f"outbound endpoint {endpoint.name!r} (event {event_type!r}) was called "
                    f"before the app started its producer; producers run between app start "
                    f"and stop (in tests: inside `with TestClient(app)`)"
                )
            if wait:
                return await producer.send_event_and_wait(
                    payload, event_type, topic, key, partition, timestamp_ms, headers
                )
            return await producer.send_event(
                payload, event_type, topic, key, partition, timestamp_ms, headers
            )

        functools.update_wrapper(send, endpoint.func)
        return send

    # -- binding to a producer (by the app and the TestClient) ------------

    def check_topics(self, default_topic: str | None, producer_name: str) -> None:
        """Every endpoint needs a topic of its own or the producer's default."""
        for endpoint in self.endpoints.values():
            self._check_topic(endpoint, default_topic, producer_name)

    @staticmethod
    def _check_topic(
        endpoint: OutboundEndpoint, default_topic: str | None, producer_name: str
    ) -> None:
        if endpoint.topic is None and default_topic is None:
            raise ConfigError(
                f"outbound event {endpoint.event_type!r} ({endpoint.name}) has no topic: pass "
                f"topic= to @sender.event or set 'topic' in the config of producer "
                f"{producer_name!r}"
            )

    def bind(self, producer: EVKafkaProducer) -> None:
        """Send through `producer` from now on; one producer at a time."""
        if self.producer is not None and self.producer is not producer:
            raise ConfigError(
                f"this sender already sends through running producer {self.producer.name!r}; "
                f"a sender can be bound to one running producer at a time"
            )
        self.check_topics(producer.topic, producer.name)
        self.producer = producer

    def unbind(self, producer: EVKafkaProducer) -> None:
        if self.producer is producer:
            self.producer = None


def _check_names(event_type: Any, topic: Any) -> None:
    if not isinstance(event_type, str) or not event_type:
        raise RegistrationError(f"event type must be a non-empty str, not {event_type!r}")
    if topic is not None and (not isinstance(topic, str) or not topic):
        raise ConfigError(
            f"outbound event {event_type!r}: topic must be a non-empty name, not {topic!r}"
        )


def _payload_by_name(
    endpoint: OutboundEndpoint, payload: Any, by_name: dict[str, Any], payload_name: str
) -> Any:
    if payload is _MISSING and payload_name in by_name:
        payload = by_name.pop(payload_name)
    if by_name:
        raise TypeError(
            f"{endpoint.name}() got unexpected keyword argument(s): {', '.join(by_name)}"
        )
    if payload is _MISSING:
        raise TypeError(f"{endpoint.name}() missing the payload argument {payload_name!r}")
    return payload
