"""The app's optional HTTP server: health probes, API docs and metrics on one port."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from aiohttp import web

from evkafka.consumer import Consumer
from evkafka.errors import EVKafkaError
from evkafka.health import Verdict, liveness, readiness

logger = logging.getLogger("evkafka.server")

RouteInstaller = Callable[[web.Application], None]


class HTTPServerError(EVKafkaError):
    """The HTTP server could not listen on its host and port."""


def _verdict_response(verdict: Verdict) -> web.Response:
    return web.json_response(
        {"status": "ok" if verdict.ok else "fail", "problems": verdict.problems},
        status=200 if verdict.ok else 503,
    )


class AppServer:
    """aiohttp on (host, port): `/health/live`, `/health/ready`, plus installed routes."""

    def __init__(
        self,
        host: str,
        port: int,
        consumers: Callable[[], Iterable[Consumer]],
        installers: Iterable[RouteInstaller] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.consumers = consumers
        self.web_app = web.Application()
        self.web_app.router.add_get("/health/live", self._live)
        self.web_app.router.add_get("/health/ready", self._ready)
        for install in installers:
            install(self.web_app)
        self._runner: web.AppRunner | None = None

    async def _live(self, request: web.Request) -> web.Response:
        return _verdict_response(liveness(self.consumers()))

    async def _ready(self, request: web.Request) -> web.Response:
        return _verdict_response(readiness(self.consumers()))

    async def start(self) -> None:
        runner = web.AppRunner(self.web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise HTTPServerError(
                f"cannot serve HTTP on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])
        logger.info("HTTP server on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
