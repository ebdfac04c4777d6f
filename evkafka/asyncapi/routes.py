"""Serves the document as JSON and YAML and the HTML page, on any aiohttp application."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from evkafka.asyncapi.html import render_html
from evkafka.asyncapi.spec import build_spec

if TYPE_CHECKING:
    from evkafka.app import EVKafkaApp


def to_json(spec: dict[str, Any]) -> str:
    """The document as indented JSON text."""
    return json.dumps(spec, indent=2, ensure_ascii=False)


def to_yaml(spec: dict[str, Any]) -> str:
    """The document as YAML text, keys in document order."""
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


class _Documents:
    """Builds the document on first request (after every registration), then serves it as is."""

    def __init__(self, evkafka_app: EVKafkaApp) -> None:
        self.evkafka_app = evkafka_app
        self._rendered: dict[str, bytes] = {}

    def _body(self, fmt: str) -> bytes:
        if not self._rendered:
            spec = build_spec(self.evkafka_app)
            self._rendered = {
                "json": to_json(spec).encode(),
                "yaml": to_yaml(spec).encode(),
                "html": render_html(spec).encode(),
            }
        return self._rendered[fmt]

    def handler(
        self, fmt: str, content_type: str
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            return web.Response(body=self._body(fmt), content_type=content_type, charset="utf-8")

        return serve


def add_routes(web_app: web.Application, evkafka_app: EVKafkaApp) -> None:
    """GET `/asyncapi.json`, `/asyncapi.yaml`, and the HTML page at `/` and `/asyncapi`."""
    documents = _Documents(evkafka_app)
    web_app.router.add_get("/asyncapi.json", documents.handler("json", "application/json"))
    web_app.router.add_get("/asyncapi.yaml", documents.handler("yaml", "application/yaml"))
    page = documents.handler("html", "text/html")
    web_app.router.add_get("/asyncapi", page)
    web_app.router.add_get("/", page)


@asynccontextmanager
async def serve_asyncapi(
    evkafka_app: EVKafkaApp, host: str = "127.0.0.1", port: int = 8080
) -> AsyncIterator[str]:
    """Serve only the docs (port 0 picks a free one); yields the base URL, stops on exit."""
    web_app = web.Application()
    add_routes(web_app, evkafka_app)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
