"""Where the event type lives, per consumer: a renamed header, CloudEvents, a body field.

Two clusters with different conventions feed one handler: each `add_consumer` takes its own
`middleware=[...]`. Producers write the type the same way a consumer reads it, so a
convention round-trips (see `cloud_sender`).
"""

from __future__ import annotations

import logging
import os

from pydantic import BaseModel

from evkafka import EVKafkaApp, Handler, Middleware, Request, Sender
from evkafka.conventions import CloudEventsBinary
from evkafka.middleware import (
    BodyFieldEventTypeMiddleware,
    CloudEventsStructuredMiddleware,
    JsonTypedDecoderMiddleware,
)

log = logging.getLogger(__name__)

LEGACY_CLUSTER = os.environ.get("LEGACY_BOOTSTRAP_SERVERS", "legacy-kafka:9092")
CLOUD_CLUSTER = os.environ.get("CLOUD_BOOTSTRAP_SERVERS", "cloud-kafka:9092")


class OrderCreated(BaseModel):
    id: int
    amount: float


handler = Handler()


@handler.event("OrderCreated")
async def order_created(order: OrderCreated, request: Request) -> None:
    """One endpoint, whatever convention the record arrived with."""
    cloudevent = request.message.extensions.get("cloudevents", {})
    log.info(
        "order %d via consumer %r (CloudEvents source %r)",
        order.id,
        request.message.consumer_name,
        cloudevent.get("source"),
    )


app = EVKafkaApp(title="conventions")

# Legacy cluster: the original evkafka layer, with the type in a renamed header.
app.add_consumer(
    {
        "topics": ["orders"],
        "bootstrap_servers": LEGACY_CLUSTER,
        "group_id": "billing",
        "cluster_name": "legacy",
    },
    handler,
    name="legacy",
    middleware=[Middleware(JsonTypedDecoderMiddleware, type_header_name="X-Event-Name")],
)

# New cluster: CloudEvents (structured JSON envelopes, or binary `ce_*` headers).
app.add_consumer(
    {
        "topics": ["orders.v2"],
        "bootstrap_servers": CLOUD_CLUSTER,
        "group_id": "billing",
        "cluster_name": "cloud",
    },
    handler,
    name="cloud",
    middleware=[Middleware(CloudEventsStructuredMiddleware)],
)

# Same new cluster, a topic whose producers put the type in the JSON body: {"kind": ...}.
app.add_consumer(
    {"topics": ["orders.audit"], "bootstrap_servers": CLOUD_CLUSTER, "group_id": "billing"},
    handler,
    name="audit",
    middleware=[Middleware(BodyFieldEventTypeMiddleware, field="kind")],
)

# Producing to the new cluster in CloudEvents binary mode: the `ce_type` header and friends.
cloud_sender = Sender()


@cloud_sender.event("OrderCreated", topic="orders.v2")
async def publish_order_created(order: OrderCreated) -> None:
    """Writes `ce_type: OrderCreated`, `ce_id`, `ce_source: billing`, `ce_specversion`."""


app.add_producer(
    {"bootstrap_servers": CLOUD_CLUSTER},
    cloud_sender,
    name="cloud",
    convention=CloudEventsBinary(source="billing"),
)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run()
