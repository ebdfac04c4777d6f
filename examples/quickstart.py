"""Quickstart: one consumer, typed endpoints, failed records dead-lettered.

Run it against any Kafka: `KAFKA_BOOTSTRAP_SERVERS=host:9092 python -m examples.quickstart`,
or let `evkafka demo` run it on an embedded broker and feed it sample orders.
"""

from __future__ import annotations

import logging
import os

from pydantic import BaseModel

from evkafka import ErrorPolicy, EVKafkaApp, Request

log = logging.getLogger(__name__)


class OrderCreated(BaseModel):
    id: int
    amount: float
    currency: str = "EUR"


class OrderPaid(BaseModel):
    id: int
    method: str


app = EVKafkaApp(
    config={
        "topics": ["orders"],
        "bootstrap_servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        "group_id": "billing",
    },
    # Records that fail for good (after 3 retries, or at once when they cannot be decoded)
    # go to `orders.DLT`, and the service carries on.
    error_policy=ErrorPolicy(on_failure="dead-letter"),
)


@app.event("OrderCreated")
async def order_created(order: OrderCreated, request: Request) -> None:
    """Typed payload plus the record's coordinates."""
    log.info(
        "order %d: %.2f %s (partition %d)",
        order.id,
        order.amount,
        order.currency,
        request.partition,
    )


@app.event("OrderPaid")
def order_paid(order: OrderPaid) -> None:
    """A plain `def` runs in a thread pool, off the event loop."""
    log.info("order %d paid by %s", order.id, order.method)


@app.event("OrderShipped")
async def order_shipped(order: dict) -> None:
    """A dict payload needs no model."""
    log.info("order %s shipped to %s", order["id"], order.get("country", "?"))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run()
