"""A service that consumes FooEvent and produces BarEvent: a Handler in, a Sender out.

The outbound endpoint's body never runs: calling `send_bar(...)` encodes the payload and
produces it with the `Event-Type: BarEvent` header, keyed like the record it came from.
"""

from __future__ import annotations

import os

from pydantic import BaseModel

from evkafka import EVKafkaApp, Handler, Request, Sender

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")


class FooEvent(BaseModel):
    id: int
    text: str


class BarEvent(BaseModel):
    id: int
    text: str
    length: int


sender = Sender()


@sender.event("BarEvent", topic="bar")
async def send_bar(event: BarEvent) -> None:
    """Produces BarEvent to `bar`; documented in the app's AsyncAPI page."""


handler = Handler()


@handler.event("FooEvent")
async def on_foo(event: FooEvent, request: Request) -> None:
    """Turn every FooEvent into a BarEvent on the same key, and wait for the broker's ack."""
    bar = BarEvent(id=event.id, text=event.text.upper(), length=len(event.text))
    await send_bar(bar, key=request.key, wait=True)


app = EVKafkaApp(title="foo-to-bar", version="1.0.0")
app.add_consumer(
    {"topics": ["foo"], "bootstrap_servers": BOOTSTRAP, "group_id": "foo-to-bar"},
    handler,
    name="foo",
)
app.add_producer({"bootstrap_servers": BOOTSTRAP}, sender, name="bar")

if __name__ == "__main__":
    app.run()
