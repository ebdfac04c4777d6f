"""Dead-letter records without a broker: the headers written and the producer options."""

from __future__ import annotations

import ssl

import pytest

from evkafka.deadletter import (
    DeadLetterError,
    DeadLetterPublisher,
    dead_letter_headers,
    original_headers,
    producer_kwargs,
)
from evkafka.errors import PayloadDecodeError
from evkafka.message import Message


def test_headers_keep_the_originals_and_describe_the_failure() -> None:
    m = Message(
        "orders",
        3,
        41,
        b"k",
        b"{bad",
        [("Event-Type", b"Created"), ("evkafka-dlt-error-type", b"stale")],
        1700000000000,
        consumer_name="main",
        group_id="billing",
    )
    m.attempt = 4
    headers = dead_letter_headers(m, PayloadDecodeError("cannot decode", m, "on_created"), 1234)
    assert headers[0] == ("Event-Type", b"Created")
    assert dict(headers[1:]) == {
        "evkafka-dlt-error-type": b"evkafka.errors.PayloadDecodeError",
        "evkafka-dlt-error-message": b"cannot decode (orders[3]@41 for endpoint 'on_created')",
        "evkafka-dlt-original-topic": b"orders",
        "evkafka-dlt-original-partition": b"3",
        "evkafka-dlt-original-offset": b"41",
        "evkafka-dlt-original-timestamp": b"1700000000000",
        "evkafka-dlt-consumer-group": b"billing",
        "evkafka-dlt-consumer": b"main",
        "evkafka-dlt-attempts": b"4",
        "evkafka-dlt-time": b"1234",
    }
    assert original_headers(headers) == [("Event-Type", b"Created")]


def test_long_error_messages_are_truncated() -> None:
    m = Message("t", 0, 0, None, b"", [], 0)
    headers = dict(dead_letter_headers(m, ValueError("x" * 10_000)))
    assert len(headers["evkafka-dlt-error-message"]) == 2000


def test_the_producer_reuses_the_consumers_connection() -> None:
    context = ssl.create_default_context()
    settings = {
        "bootstrap_servers": "a:9093",
        "security_protocol": "SASL_SSL",
        "ssl_context": context,
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
        "client_id": "svc",
        "group_id": "g",
        "topics": ["t"],
        "session_timeout_ms": 2000,
        "cluster_name": "main",
    }
    publisher = DeadLetterPublisher(settings)
    kwargs = producer_kwargs(publisher.connection, {"max_request_size": 5000})
    assert kwargs == {
        "acks": "all",
        "bootstrap_servers": "a:9093",
        "security_protocol": "SASL_SSL",
        "ssl_context": context,
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
        "client_id": "svc",
        "max_request_size": 5000,
    }


def test_a_producer_config_with_servers_describes_another_cluster() -> None:
    connection = {"bootstrap_servers": "a:9093", "sasl_plain_password": "p"}
    kwargs = producer_kwargs(connection, {"bootstrap_servers": "b:9092", "acks": 1})
    assert kwargs == {"bootstrap_servers": "b:9092", "acks": 1}


async def test_publishing_before_start_is_a_clear_error() -> None:
    publisher = DeadLetterPublisher({"bootstrap_servers": "a:9092"})
    publisher.require()
    m = Message("t", 0, 5, None, b"", [], 0)
    with pytest.raises(DeadLetterError, match=r"t\[0\]@5: no started dead-letter producer"):
        await publisher.publish(m, b"", ValueError(), "t.DLT")


async def test_start_without_requirements_connects_nothing() -> None:
    publisher = DeadLetterPublisher({"bootstrap_servers": "127.0.0.1:1"})
    await publisher.start()
    await publisher.stop()
    assert not publisher.needed
