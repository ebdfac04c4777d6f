"""Lifespan and shared state: open resources once at startup, close them at shutdown.

The lifespan is an async context manager factory. What it yields (a dict) is readable in
endpoints as `request.state.<name>`; code after `yield` runs once consumers have stopped
and committed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from evkafka import EVKafkaApp, Request


class Inventory:
    """Stands in for a database pool or an HTTP client: opened once, shared by endpoints."""

    def __init__(self) -> None:
        self.stock: dict[str, int] = {}
        self.open = False

    async def connect(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.open = False


#: The last Inventory the lifespan opened, so a test can look at it after shutdown.
opened: list[Inventory] = []


@asynccontextmanager
async def lifespan() -> AsyncIterator[dict[str, Any]]:
    inventory = Inventory()
    await inventory.connect()
    opened.append(inventory)
    try:
        yield {"inventory": inventory, "warehouse": os.environ.get("WAREHOUSE", "AMS-1")}
    finally:
        await inventory.close()


app = EVKafkaApp(
    config={
        "topics": ["stock"],
        "bootstrap_servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
        "group_id": "inventory",
    },
    lifespan=lifespan,
)


@app.event("StockReceived")
async def stock_received(item: dict, request: Request) -> None:
    """Uses the state the lifespan yielded."""
    inventory: Inventory = request.state.inventory
    sku = item["sku"]
    inventory.stock[sku] = inventory.stock.get(sku, 0) + item["quantity"]


if __name__ == "__main__":
    app.run()
