"""An app the lifecycle tests run with `evkafka run`; it reports what it does on stderr.

Lines: `handling <pid> <partition> <offset>`, `handled <pid> <partition> <offset>`,
`lifespan up`, `lifespan down`. Settings come from the environment: BOOTSTRAP, TOPIC,
GROUP, SLOW_MS (endpoint duration), GRACEFUL_MS, LIFESPAN_FAIL (`startup` or `teardown`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from evkafka import EVKafkaApp, Request

env = os.environ
slow = int(env.get("SLOW_MS", "0")) / 1000
lifespan_fail = env.get("LIFESPAN_FAIL")


def report(*words: object) -> None:
    os.write(2, (" ".join(map(str, words)) + "\n").encode())  # one write: workers never mix


@asynccontextmanager
async def lifespan() -> AsyncIterator[None]:
    if lifespan_fail == "startup":
        raise RuntimeError("database unreachable")
    report("lifespan up")
    yield
    report("lifespan down")
    if lifespan_fail == "teardown":
        raise RuntimeError("cannot close the pool")


app = EVKafkaApp(
    config={
        "topics": [env.get("TOPIC", "unused")],
        "bootstrap_servers": env.get("BOOTSTRAP", "127.0.0.1:9"),
        "group_id": env.get("GROUP", "unused"),
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 400,
        "auto_commit_interval_ms": 200,
    },
    lifespan=lifespan,
    graceful_timeout_ms=int(env.get("GRACEFUL_MS", "30000")),
)


@app.event("E")
async def on_e(event: dict, request: Request) -> None:  # type: ignore[type-arg]
    report("handling", os.getpid(), request.partition, request.offset)
    await asyncio.sleep(slow)
    report("handled", os.getpid(), request.partition, request.offset)
