"""Health verdicts, the HTTP server, and how the app wires it (no broker: stand-in consumers)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiokafka import TopicPartition

from evkafka import EVKafkaApp
from evkafka.health import POLL_STALL_S, liveness, readiness
from evkafka.server import AppServer, HTTPServerError

NOW = 1000.0


def consumer(**overrides: Any) -> Any:
    """A stand-in with the attributes the verdicts read from a running Consumer."""
    fields: dict[str, Any] = {
        "name": "orders",
        "error": None,
        "fetching": True,
        "last_poll": NOW - 0.1,
        "workers": {},
        "exec_limit": 2.0,
        "group_id": "billing",
        "assigned_at": NOW - 5,
    }
    return SimpleNamespace(**{**fields, **overrides})


def busy_worker(since: float | None) -> Any:
    return SimpleNamespace(tp=TopicPartition("orders", 3), busy_since=since)


def test_a_polling_consumer_with_timely_endpoints_is_alive() -> None:
    c = consumer(workers={1: busy_worker(NOW - 1.9), 2: busy_worker(None)})
    assert liveness([c], NOW).ok
    assert liveness([], NOW).ok  # a producer-only app


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"error": RuntimeError("boom")}, "consumer 'orders' failed: boom"),
        ({"fetching": False}, "consumer 'orders' is not fetching"),
        ({"last_poll": NOW - POLL_STALL_S - 1}, "has not polled for 16s"),
        (
            {"workers": {1: busy_worker(NOW - 2.5)}},
            "endpoint on orders[3] busy for 2.5s (limit 2s)",
        ),
    ],
)
def test_liveness_fails_on_a_dead_stalled_or_stuck_loop(
    overrides: dict[str, Any], problem: str
) -> None:
    verdict = liveness([consumer(name="ok"), consumer(**overrides)], NOW)
    assert not verdict.ok
    assert len(verdict.problems) == 1 and problem in verdict.problems[0]


def test_readiness_needs_every_consumer_fetching_and_assigned() -> None:
    assert readiness([consumer(), consumer(group_id=None, assigned_at=None)]).ok
    verdict = readiness([consumer(assigned_at=None), consumer(name="b", fetching=False)])
    assert verdict.problems == [
        "consumer 'orders' has no partition assignment yet",
        "consumer 'b' is not fetching",
    ]


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def test_server_answers_200_or_503_with_the_problems() -> None:
    consumers = [consumer(last_poll=time.monotonic())]

    def install(web_app: web.Application) -> None:
        async def extra(request: web.Request) -> web.Response:
            return web.Response(text="extra")

        web_app.router.add_get("/extra", extra)

    server = AppServer("127.0.0.1", 0, lambda: consumers, [install])
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert await get(f"{base}/health/live") == (200, {"status": "ok", "problems": []})
        assert await get(f"{base}/health/ready") == (200, {"status": "ok", "problems": []})
        consumers.append(consumer(name="late", assigned_at=None, error=RuntimeError("x")))
        status, body = await get(f"{base}/health/ready")
        assert (status, body["status"]) == (503, "fail")
        assert body["problems"] == ["consumer 'late' has no partition assignment yet"]
        assert (await get(f"{base}/health/live"))[0] == 503
        assert (await get(f"{base}/extra"))[0] == 200
    finally:
        await server.stop()


async def test_a_taken_port_is_a_clear_startup_error(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HTTPServerError, match=f"cannot serve HTTP on 127.0.0.1:{port}"):
            await AppServer("127.0.0.1", port, list).start()
        app = EVKafkaApp(expose_health=True, http_host="127.0.0.1", http_port=port)
        caplog.set_level(logging.INFO, "evkafka")
        async with asyncio.timeout(10):
            assert await app.serve(install_signal_handlers=False) == 1
    last = caplog.records[-1]
    assert last.getMessage().startswith(
        f"evkafka app exiting with code 1: could not start: cannot serve HTTP on 127.0.0.1:{port}"
    )
