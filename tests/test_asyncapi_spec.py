"""The generated AsyncAPI 3.0 documents, checked against the official schema from @asyncapi/specs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypedDict
from urllib.parse import unquote

import msgspec
import pydantic
import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT7

from evkafka import EVKafkaApp, Handler, Middleware, Request, Sender
from evkafka.asyncapi import build_spec
from evkafka.asyncapi.schemas import SchemaComponents
from evkafka.middleware import (
    BodyFieldEventTypeMiddleware,
    CloudEventsBinaryMiddleware,
    CloudEventsStructuredMiddleware,
    EventTypeMiddleware,
    JsonTypedDecoderMiddleware,
)

#: Kept equal to the version .ci/run installs.
SPECS_PACKAGE = "@asyncapi/specs@6.11.1"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "asyncapi"
SCHEMA_FILE = CACHE / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"
COMPONENT_KEY = r"^[A-Za-z0-9.\-_]+$"


@pytest.fixture(scope="session")
def official_validator() -> Draft7Validator:
    """The bundled AsyncAPI 3.0.0 schema of the npm package, every $id registered for $refs."""
    if not SCHEMA_FILE.exists():
        npm = shutil.which("npm")
        if npm is None:
            if os.environ.get("CI"):
                pytest.fail("npm is needed in CI to fetch the official AsyncAPI schema")
            pytest.skip("npm is not installed: cannot fetch @asyncapi/specs")
        subprocess.run(
            [
                npm,
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(CACHE),
                SPECS_PACKAGE,
            ],
            check=True,
            timeout=300,
        )
    bundle = json.loads(SCHEMA_FILE.read_text())
    registry = Registry().with_resource(bundle["$id"], DRAFT7.create_resource(bundle)).crawl()
    return Draft7Validator(bundle, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


def local_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from local_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from local_refs(item)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (at {part!r})"
        node = node[part]
    return node


def check(doc: dict[str, Any], validator: Draft7Validator) -> dict[str, Any]:
    """Valid against the official schema, every $ref resolves, and it survives JSON and YAML."""
    error = best_match(validator.iter_errors(doc))
    if error is not None:
        pytest.fail(f"invalid AsyncAPI at {list(error.absolute_path)}: {error.message[:500]}")
    for ref in local_refs(doc):
        resolve(doc, ref)
    assert json.loads(json.dumps(doc)) == doc
    assert yaml.safe_load(asyncapi_command_yaml(doc)) == doc
    return doc


def asyncapi_command_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def message_of(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    [ref] = operation["messages"]
    return resolve(doc, resolve(doc, ref["$ref"])["$ref"])  # type: ignore[no-any-return]


def operations_for(doc: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [op for op in doc["operations"].values() if message_of(doc, op)["name"] == event]


# -- payload types -----------------------------------------------------------------


class Address(pydantic.BaseModel):
    street: str
    city: str = "Berlin"


class Order(pydantic.BaseModel):
    id: int
    address: Address
    lines: list[str] = []


class Line(msgspec.Struct):
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Refund:
    order_id: int
    reason: str | None = None


class Category(pydantic.BaseModel):
    name: str
    children: list[Category] = []


class Cat(pydantic.BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(pydantic.BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(pydantic.BaseModel):
    pet: Annotated[Cat | Dog, pydantic.Field(discriminator="kind")]


class Receipt(pydantic.BaseModel):
    net: float

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def gross(self) -> float:
        return self.net * 1.2


class Totals(TypedDict):
    net: float
    gross: float


def consumer(topics: list[Any], **extra: Any) -> dict[str, Any]:
    return {"topics": topics, "bootstrap_servers": "localhost:9092", "group_id": "docs", **extra}


# -- documents ------------------------------------------------------------------------


def test_app_event_default_consumer_is_documented(official_validator: Draft7Validator) -> None:
    app = EVKafkaApp(config=consumer(["orders"]), title="Shop", version="2.0")

    @app.event("OrderCreated", summary="A new order", description="Sent once.", tags=["orders"])
    async def created(order: Order) -> None: ...

    doc = check(app.asyncapi(), official_validator)
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"] == {"title": "Shop", "version": "2.0"}
    assert doc["channels"]["orders"]["address"] == "orders"
    [op] = doc["operations"].values()
    assert op["action"] == "receive" and op["summary"] == "A new order"
    assert op["bindings"]["kafka"]["groupId"] == {"type": "string", "enum": ["docs"]}
    message = message_of(doc, op)
    assert message["summary"] == "A new order" and message["description"] == "Sent once."
    assert message["tags"] == [{"name": "orders"}]
    assert message["headers"]["properties"]["Event-Type"]["const"] == "OrderCreated"
    order = resolve(doc, message["payload"]["$ref"])
    assert resolve(doc, order["properties"]["address"]["$ref"])["required"] == ["street"]
    assert message["examples"][0]["headers"] == {"Event-Type": "OrderCreated"}
    assert message["examples"][0]["payload"]["address"] == {"street": "string", "city": "Berlin"}
    assert app.asyncapi() == build_spec(app) == doc  # deterministic


def test_consumers_on_several_clusters_and_topics(official_validator: Draft7Validator) -> None:
    app = EVKafkaApp(title="Multi", version="1")
    orders, audit = Handler(), Handler()

    @orders.event("OrderCreated")
    async def created(order: Order) -> None: ...

    @audit.event("Audited")
    def audited(payload: dict) -> None: ...  # type: ignore[type-arg]

    topics = [{"name": "orders", "description": "Every order, keyed by id."}, "orders-retry"]
    app.add_consumer(
        consumer(topics, cluster_name="main", cluster_description="EU"), orders, name="o"
    )
    app.add_consumer(
        {
            "topics": ["orders"],
            "bootstrap_servers": ["a:9093", "b:9093"],
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "cluster_name": "audit",
        },
        audit,
        name="a",
    )
    for mechanism in ("PLAIN", "GSSAPI", "OAUTHBEARER", "SCRAM-SHA-512"):
        app.add_consumer(
            consumer(
                [f"t-{mechanism}"], security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism
            ),
            audit,
            name=mechanism,
        )
    app.add_consumer(consumer(["tls"], security_protocol="SSL"), audit, name="tls")
    doc = check(app.asyncapi(), official_validator)

    assert doc["servers"]["main"] == {
        "host": "localhost:9092",
        "protocol": "kafka",
        "title": "main",
        "description": "EU",
    }
    assert doc["servers"]["audit"]["host"] == "a:9093,b:9093"
    assert doc["servers"]["audit"]["protocol"] == "kafka-secure"
    schemes = {s["type"] for s in doc["components"]["securitySchemes"].values()}
    assert schemes == {"scramSha256", "plain", "gssapi", "oauth2", "scramSha512"}
    # one channel per topic and cluster: "orders" on two clusters stays two channels
    addresses = sorted(c["address"] for c in doc["channels"].values())
    assert addresses == sorted(
        [
            "orders",
            "orders-retry",
            "orders",
            "t-PLAIN",
            "t-GSSAPI",
            "t-OAUTHBEARER",
            "t-SCRAM-SHA-512",
            "tls",
        ]
    )
    assert doc["channels"]["orders"]["description"] == "Every order, keyed by id."
    assert len(operations_for(doc, "OrderCreated")) == 2  # one per topic of consumer "o"


def test_custom_header_names_are_the_ones_consumers_read(
    official_validator: Draft7Validator,
) -> None:
    app = EVKafkaApp(
        config=consumer(["a"]),
        middleware=[Middleware(JsonTypedDecoderMiddleware, type_header_name="Custom-Type-Header")],
    )

    @app.event("Created")
    async def created(payload: dict) -> None: ...  # type: ignore[type-arg]

    other = Handler()

    @other.event("Pinged")
    async def pinged(payload: str) -> None: ...

    app.add_consumer(
        consumer(["b"]),
        other,
        name="b",
        middleware=[Middleware(EventTypeMiddleware, header_name="x-kind")],
    )
    doc = check(app.asyncapi(), official_validator)
    [created_op] = operations_for(doc, "Created")
    assert message_of(doc, created_op)["headers"]["required"] == ["Custom-Type-Header"]
    [pinged_op] = operations_for(doc, "Pinged")
    message = message_of(doc, pinged_op)
    assert list(message["headers"]["properties"]) == ["x-kind"]
    assert message["contentType"] == "text/plain"
    assert message["examples"][0]["headers"] == {"x-kind": "Pinged"}


def test_cloudevents_attributes_are_documented(official_validator: Draft7Validator) -> None:
    app = EVKafkaApp(
        config=consumer(["binary"]),
        middleware=[Middleware(CloudEventsBinaryMiddleware, source="shop")],
    )

    @app.event("com.shop.order.created")
    async def created(order: Order) -> None: ...

    structured = Handler()

    @structured.event("com.shop.line.added")
    async def added(line: Line) -> None: ...

    app.add_consumer(
        consumer(["structured"]),
        structured,
        name="s",
        middleware=[Middleware(CloudEventsStructuredMiddleware)],
    )
    doc = check(app.asyncapi(), official_validator)

    binary = message_of(doc, operations_for(doc, "com.shop.order.created")[0])
    assert {"ce_type", "ce_specversion", "ce_id", "ce_source"} <= set(binary["headers"]["required"])
    assert binary["headers"]["properties"]["ce_type"]["const"] == "com.shop.order.created"
    assert binary["examples"][0]["headers"]["ce_source"] == "shop"
    envelope = message_of(doc, operations_for(doc, "com.shop.line.added")[0])
    assert envelope["contentType"] == "application/cloudevents+json"
    assert envelope["payload"]["properties"]["type"]["const"] == "com.shop.line.added"
    assert resolve(doc, envelope["payload"]["properties"]["data"]["$ref"])["required"] == ["sku"]
    assert envelope["examples"][0]["payload"]["data"] == {"sku": "string", "qty": 1}


def test_body_field_convention_marks_the_payload(official_validator: Draft7Validator) -> None:
    app = EVKafkaApp(
        config=consumer(["t"]), middleware=[Middleware(BodyFieldEventTypeMiddleware, field="kind")]
    )

    @app.event("Refunded")
    async def refunded(refund: Refund) -> None: ...

    doc = check(app.asyncapi(), official_validator)
    message = message_of(doc, operations_for(doc, "Refunded")[0])
    assert "headers" not in message
    marker = message["payload"]["allOf"][1]
    assert marker["properties"]["kind"]["const"] == "Refunded" and marker["required"] == ["kind"]
    assert message["examples"][0]["payload"] == {"order_id": 0, "reason": None, "kind": "Refunded"}


AWKWARD = [
    "order.created.v1",
    "Order Created",
    "orders/created",
    "a~b#c%d",
    "événement",
    "a b",
    "a_b",
]


def test_awkward_event_and_topic_names_give_valid_references(
    official_validator: Draft7Validator,
) -> None:
    app = EVKafkaApp(config=consumer(["shop.orders/v1", "with space"]))
    for name in AWKWARD:
        app.event(name)(_endpoint())
    doc = check(app.asyncapi(), official_validator)
    for section in (doc["components"]["messages"], doc["channels"], doc["operations"]):
        for key in section:
            assert re.fullmatch(COMPONENT_KEY, key), key
    names = sorted(m["name"] for m in doc["components"]["messages"].values())
    assert names == sorted(AWKWARD)  # every name kept, none merged ("a b" vs "a_b")
    assert {c["address"] for c in doc["channels"].values()} == {"shop.orders/v1", "with space"}
    assert len(doc["operations"]) == 2 * len(AWKWARD)


def _endpoint() -> Any:
    async def endpoint(payload: Line) -> None: ...

    return endpoint


def test_same_event_with_different_payloads_is_not_overwritten(
    official_validator: Draft7Validator,
) -> None:
    app = EVKafkaApp()
    first, second, third = Handler(), Handler(), Handler()

    @first.event("Created")
    async def a(payload: Order) -> None: ...

    @second.event("Created")
    async def b(payload: Refund) -> None: ...

    @third.event("Created")
    async def c(payload: Order) -> None: ...

    app.add_consumer(consumer(["one"]), first, name="first")
    app.add_consumer(consumer(["two"]), second, name="second")
    app.add_consumer(consumer(["one"]), third, name="third")
    doc = check(app.asyncapi(), official_validator)
    payloads = {
        op["x-evkafka-consumer"]: message_of(doc, op)["payload"]["$ref"]
        for op in doc["operations"].values()
    }
    assert payloads == {
        "first": "#/components/schemas/Order",
        "second": "#/components/schemas/Refund",
        "third": "#/components/schemas/Order",
    }
    assert len(doc["components"]["messages"]) == 2  # equal messages are shared
    assert set(doc["channels"]["one"]["messages"]) == {"Created"}
    assert set(doc["channels"]["two"]["messages"]) == {"Created.second"}


def test_same_model_name_from_two_classes_gives_two_schemas(
    official_validator: Draft7Validator,
) -> None:
    def make() -> type[pydantic.BaseModel]:
        class Address(pydantic.BaseModel):  # same name as the module's, other fields
            planet: str

        class Shipment(pydantic.BaseModel):
            to: Address

        return Shipment

    app = EVKafkaApp(config=consumer(["t"]))
    app.event("Ordered")(_typed(Order))
    app.event("Shipped")(_typed(make()))
    doc = check(app.asyncapi(), official_validator)
    schemas = doc["components"]["schemas"]
    shipment = schemas["Shipment"]
    other = resolve(doc, shipment["properties"]["to"]["$ref"])
    assert other["required"] == ["planet"] and schemas["Address"]["required"] == ["street"]


def _typed(tp: Any) -> Any:
    async def endpoint(payload: tp) -> None:  # type: ignore[valid-type]
        ...

    endpoint.__annotations__["payload"] = tp
    return endpoint


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        (dict, {"type": "object"}),
        (str, {"type": "string"}),
        (bytes, {"type": "string", "format": "binary"}),
        (Any, {}),
        (list, {"type": "array"}),
        (list[Order], {"type": "array", "items": {"$ref": "#/components/schemas/Order"}}),
        (Line, {"$ref": "#/components/schemas/Line"}),
        (Refund, {"$ref": "#/components/schemas/Refund"}),
        (Totals, {"$ref": "#/components/schemas/Totals"}),
        (Category, {"$ref": "#/components/schemas/Category"}),
        (Pet, {"$ref": "#/components/schemas/Pet"}),
    ],
)
def test_payload_kinds(
    tp: Any, expected: dict[str, Any], official_validator: Draft7Validator
) -> None:
    app = EVKafkaApp(config=consumer(["t"]))
    app.event("E")(_typed(tp))
    doc = check(app.asyncapi(), official_validator)
    message = next(iter(doc["components"]["messages"].values()))
    assert message["payload"] == expected
    if tp is Category:  # recursive model: a self reference, no endless inlining
        items = doc["components"]["schemas"]["Category"]["properties"]["children"]["items"]
        assert items == {"$ref": "#/components/schemas/Category"}
    if tp is Pet:  # AsyncAPI wants the discriminator as the property name
        assert doc["components"]["schemas"]["Pet"]["properties"]["pet"]["discriminator"] == "kind"


def test_optional_payload_and_endpoints_without_payload(
    official_validator: Draft7Validator,
) -> None:
    app = EVKafkaApp(config=consumer(["t"]))

    @app.event("Maybe")
    async def maybe(line: Optional[Line]) -> None: ...  # noqa: UP045

    @app.event("Bare")
    async def bare(request: Request) -> None: ...

    @app.event("Blob")
    async def blob(raw: bytes) -> None: ...

    doc = check(app.asyncapi(), official_validator)
    messages = {m["name"]: m for m in doc["components"]["messages"].values()}
    assert messages["Maybe"]["payload"]["anyOf"][1] == {"type": "null"}
    assert "payload" not in messages["Bare"]
    assert messages["Blob"]["contentType"] == "application/octet-stream"


def test_examples_are_valid_for_their_payload_schemas(official_validator: Draft7Validator) -> None:
    app = EVKafkaApp(config=consumer(["t"]))
    kinds = (Order, Line, Refund, Totals, Category, Pet, list[Order], Refund | None)
    for i, tp in enumerate(kinds):
        app.event(f"E{i}")(_typed(tp))
    doc = check(app.asyncapi(), official_validator)
    components = doc["components"]
    for message in components["messages"].values():
        schema = {**message["payload"], "components": components}
        Draft202012Validator(schema).validate(message["examples"][0]["payload"])


def test_producers_give_send_operations(official_validator: Draft7Validator) -> None:
    app = EVKafkaApp(config=consumer(["orders"]))

    @app.event("OrderCreated")
    async def created(order: Order) -> None: ...

    sender = Sender()

    @sender.event("ReceiptIssued", summary="After payment")
    async def issue(receipt: Receipt) -> None: ...

    @sender.event("OrderCreated", topic="orders")
    async def forward(order: Order) -> None: ...

    app.add_producer(
        {"bootstrap_servers": "localhost:9092", "topic": "receipts", "client_id": "p1"},
        sender,
        name="out",
    )
    doc = check(app.asyncapi(), official_validator)
    sends = {k: op for k, op in doc["operations"].items() if op["action"] == "send"}
    assert set(sends) == {"send.out.ReceiptIssued", "send.out.OrderCreated"}
    receipt_op = sends["send.out.ReceiptIssued"]
    assert resolve(doc, receipt_op["channel"]["$ref"])["address"] == "receipts"
    assert receipt_op["summary"] == "After payment"
    assert receipt_op["bindings"]["kafka"]["clientId"]["enum"] == ["p1"]
    # produced values are serialised: computed fields are part of the payload
    assert "gross" in resolve(doc, message_of(doc, receipt_op)["payload"]["$ref"])["properties"]
    # the produced and the consumed OrderCreated share one channel and one message
    forward_op = sends["send.out.OrderCreated"]
    [receive_op] = [op for op in doc["operations"].values() if op["action"] == "receive"]
    assert forward_op["channel"] == receive_op["channel"]
    assert forward_op["messages"] == receive_op["messages"]
    assert list(doc["servers"]) == ["kafka"]


def test_info_contact_and_license(official_validator: Draft7Validator) -> None:
    app = EVKafkaApp(
        title="T",
        version="1",
        description="Long text.",
        contact={"name": "Team", "email": "team@example.com", "url": "https://example.com/team"},
        license="Apache-2.0",
    )
    doc = check(app.asyncapi(), official_validator)
    assert doc["info"]["contact"]["email"] == "team@example.com"
    assert doc["info"]["license"] == {"name": "Apache-2.0"}
    assert doc["info"]["description"] == "Long text."
    assert doc["channels"] == {} and doc["operations"] == {} and "servers" not in doc
    app.license = {"name": "MIT", "url": "https://opensource.org/license/mit"}  # type: ignore[assignment]
    assert check(app.asyncapi(), official_validator)["info"]["license"]["url"].endswith("/mit")


def test_a_type_without_a_schema_is_described_not_fatal() -> None:
    class Opaque:
        pass

    schema = SchemaComponents().payload(Opaque)
    assert schema["description"].startswith("no JSON Schema for")


def test_the_official_schema_catches_broken_documents(official_validator: Draft7Validator) -> None:
    app = EVKafkaApp(config=consumer(["t"]))
    app.event("E")(_typed(Order))
    doc = app.asyncapi()
    [op] = doc["operations"].values()
    op["action"] = "consume"
    doc["channels"]["t"]["messages"]["E"]["$ref"] = "#/components/messages/with space"
    paths = {tuple(e.absolute_path)[:2] for e in official_validator.iter_errors(doc)}
    assert ("operations", "receive.default.E") in paths
    assert ("channels", "t") in paths
