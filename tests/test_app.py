"""The app's lifecycle without a broker: HTTP server wiring, shutdown order, embedding."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from evkafka import EVKafkaApp
from evkafka.errors import ConfigError


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


# -- wiring into the app (no consumers, so no broker) ---------------------------


async def test_the_server_is_opt_in() -> None:
    app = EVKafkaApp()
    assert not app.serves_http
    await app.start()
    assert app.http_server is None
    await app.stop()


async def test_expose_health_serves_probes_until_stop_which_closes_it_first() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        yield
        events.append("lifespan down")

    def install(web_app: web.Application) -> None:
        async def closed(web_app: web.Application) -> None:
            events.append("http down")

        web_app.on_cleanup.append(closed)

    app = EVKafkaApp(lifespan=lifespan, expose_health=True, http_host="127.0.0.1", http_port=0)
    app.add_http_routes(install)
    await app.start()
    assert app.http_server is not None
    base = f"http://127.0.0.1:{app.http_server.port}"
    assert (await get(f"{base}/health/live"))[0] == 200
    assert (await get(f"{base}/health/ready"))[0] == 200
    assert (await get(f"{base}/asyncapi.json"))[0] == 404  # docs only with expose_asyncapi
    await app.stop()
    assert events == ["http down", "lifespan down"]
    assert app.http_server is None
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(f"{base}/health/live")


async def test_expose_asyncapi_serves_the_docs_and_probes_on_one_port() -> None:
    app = EVKafkaApp(expose_asyncapi=True, asyncapi_host="127.0.0.1", asyncapi_port=0, title="T")
    assert (app.http_host, app.http_port) == ("127.0.0.1", 0)
    await app.start()
    try:
        assert app.http_server is not None
        base = f"http://127.0.0.1:{app.http_server.port}"
        status, doc = await get(f"{base}/asyncapi.json")
        assert (status, doc["info"]["title"]) == (200, "T")
        assert (await get(f"{base}/health/ready"))[0] == 200
    finally:
        await app.stop()


def test_installing_routes_turns_the_server_on_and_needs_a_callable() -> None:
    app = EVKafkaApp()
    app.add_http_routes(lambda web_app: None)
    assert app.serves_http
    with pytest.raises(ConfigError, match="add_http_routes needs a callable"):
        app.add_http_routes("metrics")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -5, 1.5, "30s", True])
def test_graceful_timeout_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ConfigError, match="graceful_timeout_ms must be a positive integer"):
        EVKafkaApp(graceful_timeout_ms=value)  # type: ignore[arg-type]


# -- embedding: start/stop and serve() need no main thread and no signals --------


def test_start_and_stop_run_in_a_worker_thread_loop() -> None:
    states: list[dict[str, Any]] = []

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[dict[str, Any]]:
        yield {"pool": "ready"}

    app = EVKafkaApp(lifespan=lifespan, expose_health=True, http_host="127.0.0.1", http_port=0)

    async def embedded() -> int:
        await app.start()
        states.append(dict(app.state))
        await app.stop()
        serving = asyncio.create_task(app.serve())  # no signal handlers off the main thread
        await asyncio.sleep(0)
        app.request_stop()
        return await serving

    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(embedded())))
    thread.start()
    thread.join(30)
    assert results == [0]
    assert states == [{"pool": "ready"}]


async def test_serve_without_signal_handlers_leaves_the_hosts_handlers_alone() -> None:
    before = signal.getsignal(signal.SIGTERM)
    app = EVKafkaApp()
    serving = asyncio.create_task(app.serve(install_signal_handlers=False))
    await asyncio.sleep(0)
    assert signal.getsignal(signal.SIGTERM) is before
    app.request_stop()
    async with asyncio.timeout(10):
        assert await serving == 0
    assert signal.getsignal(signal.SIGTERM) is before


async def test_serve_removes_its_signal_handlers_on_return() -> None:
    before = signal.getsignal(signal.SIGTERM)
    app = EVKafkaApp()
    serving = asyncio.create_task(app.serve())
    await asyncio.sleep(0)
    assert signal.getsignal(signal.SIGTERM) is not before
    app.request_stop()
    async with asyncio.timeout(10):
        assert await serving == 0
    assert signal.getsignal(signal.SIGTERM) is before


async def test_cancelling_serve_stops_the_app_and_runs_the_teardown() -> None:
    torn_down = asyncio.Event()

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        yield
        torn_down.set()

    app = EVKafkaApp(lifespan=lifespan, expose_health=True, http_host="127.0.0.1", http_port=0)
    serving = asyncio.create_task(app.serve(install_signal_handlers=False))
    async with asyncio.timeout(10):
        while app.http_server is None:  # noqa: ASYNC110 - watched from outside, as a host would
            await asyncio.sleep(0.01)
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
    assert torn_down.is_set() and app.http_server is None


async def test_cancelling_serve_during_startup_stops_what_started() -> None:
    entered, left = asyncio.Event(), asyncio.Event()

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        entered.set()
        try:
            await asyncio.Event().wait()  # a startup that never finishes
            yield
        finally:
            left.set()

    app = EVKafkaApp(lifespan=lifespan, expose_health=True, http_host="127.0.0.1", http_port=0)
    serving = asyncio.create_task(app.serve(install_signal_handlers=False))
    async with asyncio.timeout(10):
        await entered.wait()
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
    assert left.is_set() and app.http_server is None
    await app.stop()  # nothing left to stop, and no stale lifespan to exit
