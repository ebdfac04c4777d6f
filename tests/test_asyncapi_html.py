"""The docs page: self-contained, escaped, complete; served over HTTP and rendered by Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pydantic
import pytest
import yaml

from evkafka import EVKafkaApp, Handler, Middleware, Sender
from evkafka.asyncapi import render_html, serve_asyncapi
from evkafka.middleware import CloudEventsBinaryMiddleware

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "asyncapi.png"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


class Address(pydantic.BaseModel):
    street: str
    city: str
    country: str = pydantic.Field("DE", description="ISO 3166 code", min_length=2, max_length=2)


class Line(pydantic.BaseModel):
    sku: str
    quantity: int = pydantic.Field(ge=1)
    price: Decimal


class Order(pydantic.BaseModel):
    """An order as the shop front submits it."""

    id: int
    placed_at: datetime
    ship_to: Address
    lines: list[Line]
    note: str | None = None


class Payment(msgspec.Struct):
    order_id: int
    amount: float
    method: str = "card"


class Shipment(pydantic.BaseModel):
    order_id: int
    carrier: str
    to: Address


class Tree(pydantic.BaseModel):
    label: str
    children: list[Tree] = []


def shop_app() -> EVKafkaApp:
    """Consumed and produced events of a small shop, on two clusters."""
    app = EVKafkaApp(
        config={
            "topics": [{"name": "shop.orders", "description": "Orders from the web shop."}],
            "bootstrap_servers": "kafka-1:9092,kafka-2:9092",
            "group_id": "fulfilment",
            "cluster_name": "main",
        },
        title="Fulfilment service",
        version="1.4.0",
        description="Turns paid orders into shipments.",
        contact={"name": "Fulfilment team", "email": "fulfilment@example.com"},
        license="MIT",
    )

    @app.event("OrderPlaced", summary="A customer placed an order", tags=["orders"])
    async def order_placed(order: Order) -> None:
        """Reserves stock for every line."""

    @app.event("order.cancelled/v2")
    async def order_cancelled(payload: dict) -> None:  # type: ignore[type-arg]
        """Releases reserved stock."""

    payments = Handler()

    @payments.event("PaymentCaptured", summary="Money is in")
    async def captured(payment: Payment) -> None: ...

    app.add_consumer(
        {
            "topics": ["payments"],
            "group_id": "fulfilment",
            "cluster_name": "payments",
            "bootstrap_servers": "pay:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
        },
        payments,
        name="payments",
        middleware=[Middleware(CloudEventsBinaryMiddleware, source="payments")],
    )
    sender = Sender()

    @sender.event("ShipmentCreated", summary="Handed to a carrier")
    async def shipment_created(shipment: Shipment) -> None: ...

    app.add_producer(
        {
            "bootstrap_servers": "kafka-1:9092,kafka-2:9092",
            "topic": "shop.shipments",
            "cluster_name": "main",
        },
        sender,
        name="shipments",
    )
    return app


EVENTS = ("OrderPlaced", "order.cancelled/v2", "PaymentCaptured", "ShipmentCreated")
TOPICS = ("shop.orders", "payments", "shop.shipments")


def test_page_shows_every_channel_event_header_and_nested_model() -> None:
    page = render_html(shop_app().asyncapi())
    for name in EVENTS + TOPICS:
        assert f">{name}<" in page, name
    for header in ("Event-Type", "ce_type", "ce_source"):
        assert f"<code>{header}</code>" in page
    # nested models are rows of the payload table, linked to their schema
    assert "<code>ship_to</code>" in page and "<code>street</code>" in page
    assert '<a href="#schema-Address">Address</a>' in page and "id='schema-Address'" in page
    assert "ISO 3166 code" in page and "minLength <code>2</code>" in page
    assert "&quot;placed_at&quot;: &quot;2024-01-31T12:00:00Z&quot;" in page  # example payload
    assert page.count("class='badge receive'") >= 3 and "class='badge send'" in page
    assert "Fulfilment team" in page and "License: MIT" in page


def test_page_needs_nothing_from_the_network() -> None:
    page = render_html(shop_app().asyncapi())
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"url\(|@import", page, re.I)
    assert re.search(r"<style>.+</style>", page, re.S)


def test_text_from_the_app_is_escaped() -> None:
    app = EVKafkaApp(config={"topics": ["<b>t</b>"]}, title="<script>alert(1)</script>")

    @app.event("<img src=x onerror=alert(1)>", summary="\"quoted\" & 'single'")
    async def evil(payload: dict) -> None:  # type: ignore[type-arg]
        ...

    page = render_html(app.asyncapi())
    assert "<script>" not in page and "<img" not in page and "<b>t</b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&quot;quoted&quot; &amp; &#x27;single&#x27;" in page


def test_recursive_models_render_once() -> None:
    app = EVKafkaApp(config={"topics": ["t"]})

    @app.event("TreeChanged")
    async def changed(tree: Tree) -> None: ...

    page = render_html(app.asyncapi())
    assert page.count("<code>children</code>") == 2  # the payload table and the schema table
    assert 'array of <a href="#schema-Tree">Tree</a>' in page


def test_page_of_a_foreign_document_with_inline_parts() -> None:
    spec: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {"title": "Foreign", "version": "0"},
        "channels": {
            "c": {
                "address": None,
                "messages": {"m": {"name": "Inline", "payload": {"type": "integer"}}},
            }
        },
        "operations": {
            "o": {
                "action": "send",
                "channel": {"$ref": "#/channels/c"},
                "messages": [{"$ref": "#/channels/c/messages/m"}],
            }
        },
    }
    page = render_html(spec)
    assert "(address unknown)" in page and "<code>Inline</code>" in page and "SEND" in page


async def test_routes_serve_json_yaml_and_the_page() -> None:
    app = shop_app()
    async with (
        asyncio.timeout(20),
        serve_asyncapi(app, port=0) as url,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{url}/asyncapi.json") as response:
            assert response.status == 200 and response.content_type == "application/json"
            assert json.loads(await response.text()) == app.asyncapi()
        async with http.get(f"{url}/asyncapi.yaml") as response:
            assert response.status == 200 and response.content_type == "application/yaml"
            assert yaml.safe_load(await response.text()) == app.asyncapi()
        for path in ("/", "/asyncapi"):
            async with http.get(url + path) as response:
                assert response.status == 200 and response.content_type == "text/html"
                assert (await response.text()) == render_html(app.asyncapi())
        async with http.get(f"{url}/nope") as response:
            assert response.status == 404


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


async def run_chromium(binary: str, profile: Path, *args: str) -> bytes:
    process = await asyncio.create_subprocess_exec(
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(90):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


@pytest.mark.timeout(240)
async def test_headless_chromium_renders_every_event(tmp_path: Path) -> None:
    binary = chromium_binary()
    app = shop_app()
    async with serve_asyncapi(app, port=0) as url:
        dom = (await run_chromium(binary, tmp_path / "profile", "--dump-dom", f"{url}/")).decode()
        shot = tmp_path / "asyncapi.png"
        await run_chromium(
            binary,
            tmp_path / "profile",
            "--hide-scrollbars",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            f"{url}/asyncapi",
        )
    assert "<h1>Fulfilment service" in dom
    for name in EVENTS + TOPICS:
        assert f">{name}<" in dom, name
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("EVKAFKA_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_every_link_has_its_target_even_for_awkward_names() -> None:
    app = shop_app()
    for name in ("order.created.v1", "Order Created", "orders/created", "a~b#c%d", "événement"):

        @app.event(name)
        async def endpoint(payload: Tree) -> None: ...

    page = render_html(app.asyncapi())
    targets = set(re.findall(r"""href=["']#([^"']+)["']""", page))
    ids = re.findall(r"""id=["']([^"']+)["']""", page)
    assert len(ids) == len(set(ids)), "duplicate anchors"
    assert targets <= set(ids), targets - set(ids)
    for name in ("Order Created", "orders/created", "a~b#c%d", "événement"):
        assert f">{name}<" in page
