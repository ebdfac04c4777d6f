"""`from __future__ import annotations` endpoints resolve their payload types."""

from __future__ import annotations

import pydantic

from evkafka import EVKafkaApp, Request, TestClient


class Payload(pydantic.BaseModel):
    n: int


def test_string_annotations_are_resolved() -> None:
    app = EVKafkaApp(config={"topics": ["t"]})
    got: list[tuple[Payload | None, str]] = []

    @app.event("P")
    async def on_p(event: Payload | None, request: Request) -> None:
        got.append((event, request.topic))

    with TestClient(app) as client:
        client.send_event(topic="t", event={"n": 3}, event_type="P")
        client.send_event(topic="t", event=None, event_type="P")
    assert got == [(Payload(n=3), "t"), (None, "t")]
