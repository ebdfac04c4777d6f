"""The examples that need Kafka, against the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient as HTTPClient

from evkafka import Message, Middleware
from evkafka.middleware.errors import ErrorEvent
from evkafka.types import MessageApp
from examples import error_policy, fastapi_embedding
from tests.brokerkit import consumer_config, create_topic, event, produce, read_all


class Finished:
    """Sets `reached` once `count` records are finished (handled, skipped or dead-lettered)."""

    def __init__(self, app: MessageApp, count: int, reached: asyncio.Event) -> None:
        self.app = app
        self.left = count
        self.reached = reached

    async def __call__(self, message: Message) -> None:
        await self.app(message)
        self._one()

    def on_error_event(self, event: ErrorEvent) -> None:
        if event.action in ("dead-letter", "skip"):
            self._one()

    def _one(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.reached.set()


async def consume(config: dict[str, Any], count: int) -> None:
    """Run the error-policy example's app until `count` records are finished."""
    done = asyncio.Event()
    app = error_policy.build_app(config)  # type: ignore[arg-type]
    for spec in app.consumers.values():
        spec.middleware = [Middleware(Finished, count=count, reached=done)]
    await app.start()
    try:
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        await app.stop()


async def test_error_policy_dead_letters_then_redrives_after_the_fix(
    bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(error_policy, "booked", [])
    monkeypatch.setattr(error_policy, "ACCOUNTS", {"alice", "bob"})
    topic = await create_topic(bootstrap, partitions=1)
    await produce(
        bootstrap,
        topic,
        [
            event(b'{"id": 1, "account": "alice", "cents": 100}', "PaymentRequested", key=b"1"),
            event(b'{"id": 2, "account": "carol", "cents": 200}', "PaymentRequested", key=b"2"),
            event(b'{"id": 3, "account": "bob", "cents": ', "PaymentRequested", key=b"3"),
            event(b'{"note": "no id"}', "PaymentAudited", key=b"4"),
            event(b'{"id": 5, "account": "bob", "cents": 500}', "PaymentRequested", key=b"5"),
        ],
    )
    config = consumer_config(bootstrap, topic)
    await consume(config, 5)
    assert [p.id for p in error_policy.booked] == [1, 5]
    dead = await read_all(bootstrap, f"{topic}.DLT", 2)
    errors = {r.key: dict(r.headers)["evkafka-dlt-error-type"] for r in dead}
    assert errors == {
        b"2": b"examples.error_policy.UnknownAccount",
        b"3": b"evkafka.errors.PayloadDecodeError",
    }
    assert {r.key: dict(r.headers)["evkafka-dlt-attempts"] for r in dead} == {
        b"2": b"1",  # never_retry: no second attempt
        b"3": b"1",  # undecodable: never retried
    }

    error_policy.ACCOUNTS.add("carol")  # the fix
    assert await error_policy.redrive_dead_letters(config, topic) == 2
    await consume(config, 2)  # the same group picks up where it committed
    assert [p.id for p in error_policy.booked] == [1, 5, 2]
    again = await read_all(bootstrap, f"{topic}.DLT", 3)  # the bad JSON fails again
    assert sorted(r.key for r in again) == [b"2", b"3", b"3"]


def test_fastapi_produces_consumes_and_reads_back(bootstrap: str) -> None:
    topic = asyncio.run(create_topic(bootstrap, partitions=2))
    tuning = consumer_config(bootstrap, topic)
    del tuning["topics"], tuning["bootstrap_servers"], tuning["group_id"]
    _, api = fastapi_embedding.build(bootstrap, topic=topic, group_id=f"{topic}-g", **tuning)
    with HTTPClient(api) as http:
        created = [http.post("/orders", json={"id": i, "item": f"item-{i}"}) for i in range(4)]
        assert [r.status_code for r in created] == [202] * 4
        assert {r.json()["partition"] for r in created} <= {0, 1}
        found = [http.get(f"/orders/{i}", params={"wait_s": 20}) for i in range(4)]
        assert [r.json() for r in found] == [{"id": i, "item": f"item-{i}"} for i in range(4)]
        assert http.get("/orders/99").status_code == 404
    records = asyncio.run(read_all(bootstrap, topic, 4))
    assert {dict(r.headers)["Event-Type"] for r in records} == {b"OrderCreated"}
