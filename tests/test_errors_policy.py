"""The error policy without a broker: validation, classification, backoff, the retry loop."""

from __future__ import annotations

import time
from typing import Any

import pytest

from evkafka import ErrorPolicy, EVKafkaApp, Handler, TestClient
from evkafka.config import ProducerConfig
from evkafka.deadletter import DeadLetterError, DeadLetterPublisher
from evkafka.errors import (
    ConfigError,
    InvalidEventTypeError,
    MissingEventTypeError,
    PayloadDecodeError,
    TombstoneError,
)
from evkafka.message import Message
from evkafka.middleware.errors import ErrorEvent, ErrorPolicyMiddleware
from evkafka.stack import build_chain
from evkafka.testclient import InMemoryCommitter

FAST = {"backoff_ms": 1, "backoff_max_ms": 1}


def msg(value: bytes | None = b"{}", event_type: bytes = b"E") -> Message:
    return Message("orders", 2, 7, b"k", value, [("Event-Type", event_type)], 1000, group_id="g")


class Flaky:
    """An inner app that fails `failures` times, recording what each attempt saw."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RuntimeError("boom")
        self.seen: list[tuple[int, bytes | None, dict[str, Any]]] = []

    async def __call__(self, message: Message) -> None:
        self.seen.append((message.attempt, message.value, dict(message.extensions)))
        message.value = b"rewritten by a convention"
        message.extensions["cloudevents"] = {"id": "1"}
        message.event_type = "E"
        if self.failures:
            self.failures -= 1
            raise self.error


class FakeDeadLetters:
    """Stands in for DeadLetterPublisher (our own interface, not aiokafka)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[tuple[bytes | None, str, str, ProducerConfig | None]] = []

    async def publish(
        self,
        message: Message,
        value: bytes | None,
        error: BaseException,
        topic: str,
        producer: ProducerConfig | None = None,
    ) -> None:
        if self.fail:
            raise DeadLetterError("cannot write")
        self.published.append((value, topic, type(error).__name__, producer))


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"on_failure": "dead_letter"}, "did you mean 'dead-letter'"),
        ({"on_failure": "crash"}, "on_failure must be one of"),
        ({"retries": -1}, "retries must be a non-negative integer"),
        ({"retries": True}, "retries must be a non-negative integer"),
        ({"backoff_ms": 1.5}, "backoff_ms must be a non-negative integer"),
        ({"backoff_ms": 500, "backoff_max_ms": 100}, "must not be below backoff_ms"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier must be >= 1"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1"),
        ({"retry_on": "ValueError"}, "retry_on must be an exception class"),
        ({"never_retry": (ValueError, int)}, "never_retry must be an exception class"),
        ({"dead_letter_topic": ""}, "non-empty string"),
        ({"dead_letter_topic": "{source}.DLT"}, r"unknown placeholder \{source\}"),
        ({"dead_letter_topic": "{topic:>9}"}, "no format spec"),
        ({"dead_letter_topic": "{topic"}, "not a valid template"),
        ({"dead_letter_topic": "{topic} dead"}, "illegal topic name 't dead'"),
        ({"dead_letter_producer": ["acks"]}, "must be a ProducerConfig dict"),
        ({"dead_letter_producer": {"ack": "all"}}, "did you mean 'acks'"),
    ],
)
def test_invalid_policies_are_rejected_clearly(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ErrorPolicy(**options)


def test_defaults_retry_a_few_times_then_stop() -> None:
    policy = ErrorPolicy()
    assert (policy.retries, policy.on_failure) == (3, "stop")
    assert policy.dead_letter_topic_for("orders", "g", "c") == "orders.DLT"


def test_single_exception_classes_are_accepted() -> None:
    policy = ErrorPolicy(retry_on=ConnectionError, never_retry=[TimeoutError])
    assert policy.retry_on == (ConnectionError,)
    assert policy.never_retry == (TimeoutError,)


def test_dead_letter_topic_template() -> None:
    policy = ErrorPolicy(dead_letter_topic="dlt.{group}.{consumer}.{topic}")
    assert policy.dead_letter_topic_for("orders", "billing", "main") == "dlt.billing.main.orders"


def test_a_policy_holding_a_producer_config_is_hashable() -> None:
    assert hash(ErrorPolicy(dead_letter_producer={"acks": 1}))


# -- classification and backoff -------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        PayloadDecodeError("bad json", msg()),
        TombstoneError("tombstone", msg(None)),
        MissingEventTypeError("no header", msg()),
        InvalidEventTypeError("not utf-8", msg()),
    ],
)
def test_undecodable_records_are_never_retried(error: Exception) -> None:
    assert not ErrorPolicy(retry_on=(Exception,)).retryable(error)


def test_retry_on_and_never_retry() -> None:
    policy = ErrorPolicy(retry_on=(OSError,), never_retry=(FileNotFoundError,))
    assert policy.retryable(ConnectionError())
    assert not policy.retryable(FileNotFoundError())
    assert not policy.retryable(ValueError())
    assert ErrorPolicy().retryable(ValueError())


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = ErrorPolicy(backoff_ms=100, backoff_max_ms=1000, jitter=0)
    assert [policy.backoff(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_jitter_shortens_each_wait_by_at_most_its_fraction() -> None:
    policy = ErrorPolicy(backoff_ms=1000, backoff_max_ms=1000, jitter=0.25)
    assert policy.backoff(1, rand=0.0) == 1.0
    assert policy.backoff(1, rand=0.999) == pytest.approx(0.75, abs=0.001)
    waits = {policy.backoff(1) for _ in range(50)}
    assert all(0.75 <= w <= 1.0 for w in waits) and len(waits) > 1


# -- the retry loop ---------------------------------------------------------------


async def test_fails_twice_then_succeeds_with_a_fresh_message_each_attempt() -> None:
    inner = Flaky(2)
    events: list[ErrorEvent] = []
    layer = ErrorPolicyMiddleware(inner, ErrorPolicy(**FAST), listener=events.append)
    m = msg(b'{"a": 1}')
    m.extensions["from-the-consumer"] = True
    await layer(m)
    # every attempt starts from the original bytes with nothing learned by the last one
    assert [s[:2] for s in inner.seen] == [(1, b'{"a": 1}'), (2, b'{"a": 1}'), (3, b'{"a": 1}')]
    assert inner.seen[1][2] == {} and m.attempt == 3
    assert [(e.action, e.attempt) for e in events] == [("retry", 1), ("retry", 2)]


async def test_stop_reraises_the_original_error_after_the_retries() -> None:
    inner = Flaky(10, LookupError("still broken"))
    events: list[ErrorEvent] = []
    layer = ErrorPolicyMiddleware(inner, ErrorPolicy(retries=2, **FAST), listener=events.append)
    with pytest.raises(LookupError, match="still broken"):
        await layer(msg())
    assert len(inner.seen) == 3
    assert [e.action for e in events] == ["retry", "retry", "stop"]


async def test_undecodable_goes_straight_to_the_terminal_action() -> None:
    m = msg(b"{nope")
    inner = Flaky(10, PayloadDecodeError("bad json", m))
    events: list[ErrorEvent] = []
    layer = ErrorPolicyMiddleware(inner, ErrorPolicy(on_failure="skip"), listener=events.append)
    await layer(m)
    assert len(inner.seen) == 1
    assert [(e.action, e.attempt) for e in events] == [("skip", 1)]


async def test_never_retry_types_skip_the_retries(caplog: pytest.LogCaptureFixture) -> None:
    inner = Flaky(10, PermissionError("no"))
    policy = ErrorPolicy(on_failure="skip", never_retry=(PermissionError,))
    await ErrorPolicyMiddleware(inner, policy)(msg())
    assert len(inner.seen) == 1
    assert "orders[2]@7" in caplog.text and "skipped after 1 attempt" in caplog.text


async def test_retries_stop_at_the_time_budget() -> None:
    inner = Flaky(100)
    policy = ErrorPolicy(retries=50, backoff_ms=100, backoff_max_ms=100, jitter=0)
    layer = ErrorPolicyMiddleware(inner, policy, time_budget_ms=250)
    started = time.monotonic()
    with pytest.raises(RuntimeError):
        await layer(msg())
    # waits of 100 ms fit twice into 250 ms; the third would pass the budget
    assert len(inner.seen) == 3
    assert time.monotonic() - started < 1.0


async def test_dead_letter_gets_the_original_value_and_topic() -> None:
    dead = FakeDeadLetters()
    events: list[ErrorEvent] = []
    policy = ErrorPolicy(retries=1, on_failure="dead-letter", **FAST)
    layer = ErrorPolicyMiddleware(Flaky(10), policy, dead_letters=dead, listener=events.append)  # type: ignore[arg-type]
    await layer(msg(b'{"orig": 1}'))
    assert dead.published == [(b'{"orig": 1}', "orders.DLT", "RuntimeError", None)]
    assert [(e.action, e.dead_letter_topic) for e in events] == [
        ("retry", None),
        ("dead-letter", "orders.DLT"),
    ]


async def test_failed_dead_letter_write_stops() -> None:
    events: list[ErrorEvent] = []
    policy = ErrorPolicy(retries=0, on_failure="dead-letter")
    layer = ErrorPolicyMiddleware(
        Flaky(1),
        policy,
        dead_letters=FakeDeadLetters(fail=True),  # type: ignore[arg-type]
        listener=events.append,
    )
    with pytest.raises(DeadLetterError, match="cannot write"):
        await layer(msg())
    assert [e.action for e in events] == ["stop"]


async def test_dead_letter_without_a_publisher_stops_with_the_original_error() -> None:
    layer = ErrorPolicyMiddleware(Flaky(1), ErrorPolicy(retries=0, on_failure="dead-letter"))
    with pytest.raises(RuntimeError, match="boom"):
        await layer(msg())


async def test_inner_layers_with_on_error_event_are_listeners() -> None:
    class Counting:
        def __init__(self, app: Any) -> None:
            self.app = app
            self.actions: list[str] = []

        async def __call__(self, message: Message) -> None:
            await self.app(message)

        def on_error_event(self, event: ErrorEvent) -> None:
            self.actions.append(event.action)

    def broken_listener(event: ErrorEvent) -> None:
        raise ValueError("listener bug")

    counting = Counting(Flaky(1))
    policy = ErrorPolicy(retries=0, on_failure="skip")
    await ErrorPolicyMiddleware(counting, policy, listener=broken_listener)(msg())
    assert counting.actions == ["skip"]


# -- per-endpoint policies -----------------------------------------------------------


async def test_an_endpoint_policy_overrides_the_consumers() -> None:
    handler = Handler()
    calls: list[int] = []

    @handler.event("Lenient", error_policy=ErrorPolicy(retries=1, on_failure="skip", **FAST))
    async def lenient(event: dict) -> None:
        calls.append(1)
        raise RuntimeError("lenient")

    @handler.event("Strict")
    async def strict(event: dict) -> None:
        raise RuntimeError("strict")

    committer = InMemoryCommitter()
    chain = build_chain(handler, None, committer, policy=ErrorPolicy(retries=0))
    await chain(msg(event_type=b"Lenient"))
    assert calls == [1, 1] and committer.committed == {("orders", 2): 8}
    with pytest.raises(RuntimeError, match="strict"):
        await chain(msg(event_type=b"Strict"))


def test_app_event_takes_an_error_policy_and_testclient_applies_it() -> None:
    app = EVKafkaApp(config={"topics": ["t"]}, error_policy=ErrorPolicy(retries=0))
    attempts: list[int] = []

    @app.event("E", error_policy=ErrorPolicy(retries=2, **FAST))
    async def on_e(event: dict) -> None:
        attempts.append(1)
        raise KeyError("always")

    with TestClient(app) as client, pytest.raises(KeyError):
        client.send_event(topic="t", event={}, event_type="E")
    assert len(attempts) == 3


def test_build_chain_checks_policies_and_declares_dead_letter_producers() -> None:
    handler = Handler()
    other_cluster: ProducerConfig = {"bootstrap_servers": "elsewhere:9092"}

    @handler.event("A", error_policy=ErrorPolicy(on_failure="dead-letter"))
    async def a(event: dict) -> None: ...

    @handler.event(
        "B", error_policy=ErrorPolicy(on_failure="dead-letter", dead_letter_producer=other_cluster)
    )
    async def b(event: dict) -> None: ...

    publisher = DeadLetterPublisher({"bootstrap_servers": "here:9092", "group_id": "g"})
    build_chain(handler, None, InMemoryCommitter(), dead_letters=publisher)
    assert publisher.needed and len(publisher._configs) == 2

    unused = DeadLetterPublisher({"bootstrap_servers": "here:9092"})
    build_chain(Handler(), None, InMemoryCommitter(), dead_letters=unused)
    assert not unused.needed

    @handler.event("C", error_policy="skip")  # type: ignore[arg-type]
    async def c(event: dict) -> None: ...

    with pytest.raises(ConfigError, match="'C': error_policy must be an ErrorPolicy"):
        build_chain(handler, None, InMemoryCommitter())
    with pytest.raises(ConfigError, match="must be an ErrorPolicy"):
        build_chain(Handler(), None, InMemoryCommitter(), policy="stop")  # type: ignore[arg-type]
