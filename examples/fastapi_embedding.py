"""Embedding beside a FastAPI app: one process serves HTTP and consumes and produces Kafka.

FastAPI's lifespan starts the evkafka app (lifespan, producers, consumers) and stops it on
shutdown, so uvicorn owns the process and its signals:

    KAFKA_BOOTSTRAP_SERVERS=host:9092 uvicorn examples.fastapi_embedding:api

`POST /orders` produces an OrderCreated event; the consumer in the same process records it;
`GET /orders/{id}?wait_s=2` reads it back, waiting for it to arrive if asked to.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from evkafka import EVKafkaApp, Handler, Request, Sender


class Order(BaseModel):
    id: int
    item: str


class OrderBook:
    """Orders seen on the topic; readers may wait for one to arrive."""

    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        self._arrived: dict[int, asyncio.Event] = {}

    def add(self, order: Order) -> None:
        self.orders[order.id] = order
        self._arrival(order.id).set()

    async def get(self, order_id: int, wait_s: float = 0.0) -> Order | None:
        if order_id not in self.orders and wait_s > 0:
            try:
                async with asyncio.timeout(wait_s):
                    await self._arrival(order_id).wait()
            except TimeoutError:
                pass
        return self.orders.get(order_id)

    def _arrival(self, order_id: int) -> asyncio.Event:
        return self._arrived.setdefault(order_id, asyncio.Event())


sender = Sender()


@sender.event("OrderCreated")
async def publish_order(order: Order) -> None:
    """Produced by `POST /orders` to the producer's default topic."""


handler = Handler()


@handler.event("OrderCreated")
async def order_created(order: Order, request: Request) -> None:
    request.state.book.add(order)


def build(
    bootstrap_servers: str, topic: str = "orders", group_id: str = "order-api", **consumer: Any
) -> tuple[EVKafkaApp, FastAPI]:
    """The evkafka app and the FastAPI app around it (tests pass their own broker and topic)."""
    book = OrderBook()

    @asynccontextmanager
    async def kafka_lifespan() -> AsyncIterator[dict[str, Any]]:
        yield {"book": book}

    app = EVKafkaApp(lifespan=kafka_lifespan, title="order-api")
    app.add_consumer(
        {
            "topics": [topic],
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            **consumer,
        },
        handler,
        name="orders",
    )
    app.add_producer({"bootstrap_servers": bootstrap_servers, "topic": topic}, sender)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        await app.start()
        try:
            yield
        finally:
            await app.stop()

    api = FastAPI(title="order-api", lifespan=lifespan)

    @api.post("/orders", status_code=202)
    async def create_order(order: Order) -> dict[str, Any]:
        metadata = await publish_order(order, key=str(order.id), wait=True)
        return {"id": order.id, "partition": metadata.partition, "offset": metadata.offset}

    @api.get("/orders/{order_id}")
    async def read_order(order_id: int, wait_s: float = 0.0) -> Order:
        order = await book.get(order_id, min(wait_s, 10.0))
        if order is None:
            raise HTTPException(404, f"order {order_id} not seen yet")
        return order

    return app, api


app, api = build(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"))
