"""An app run as a subprocess by the tests: appends `partition offset value` per handled record.

Settings come from the environment: BOOTSTRAP, TOPIC, GROUP, OUT, SLOW_MS, FAIL_VALUE, MODE.
"""

from __future__ import annotations

import asyncio
import os

from evkafka import EVKafkaApp, Request

env = os.environ
slow = int(env.get("SLOW_MS", "0")) / 1000
fail_value = env.get("FAIL_VALUE")
out = open(env["OUT"], "a", buffering=1)

app = EVKafkaApp(
    config={
        "topics": [env["TOPIC"]],
        "bootstrap_servers": env["BOOTSTRAP"],
        "group_id": env["GROUP"],
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 400,
        "auto_commit_interval_ms": 200,
        "auto_commit_mode": env.get("MODE", "post-commit"),  # type: ignore[typeddict-item]
    }
)


@app.event("E")
async def on_e(event: dict, request: Request) -> None:
    out.write(f"start {request.partition} {request.offset} {event['i']}\n")
    if slow:
        await asyncio.sleep(slow)
    if fail_value is not None and str(event["i"]) == fail_value:
        raise RuntimeError(f"refusing {event['i']}")
    out.write(f"done {request.partition} {request.offset} {event['i']}\n")


if __name__ == "__main__":
    app.run()
