"""An app run as a subprocess by the outbound tests: each consumed `E` record is relayed
as FANOUT `Relayed` events through a Sender, with `start`/`done` lines written to OUT.

Settings come from the environment: BOOTSTRAP, TOPIC, OUT_TOPIC, GROUP, OUT, FANOUT, SLOW_MS.
The producer lingers a second, so events sent just before shutdown are still batched
when SIGTERM arrives and only the stop-time flush delivers them.
"""

from __future__ import annotations

import asyncio
import os

from evkafka import EVKafkaApp, Request, Sender

env = os.environ
fanout = int(env.get("FANOUT", "10"))
pause = int(env.get("SLOW_MS", "0")) / 1000 / fanout
out = open(env["OUT"], "a", buffering=1)

sender = Sender()


@sender.event("Relayed")
async def send_relayed(event: dict) -> None: ...


app = EVKafkaApp(
    config={
        "topics": [env["TOPIC"]],
        "bootstrap_servers": env["BOOTSTRAP"],
        "group_id": env["GROUP"],
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 400,
        "auto_commit_interval_ms": 200,
    }
)
app.add_producer(
    {"bootstrap_servers": env["BOOTSTRAP"], "topic": env["OUT_TOPIC"], "linger_ms": 1000},
    sender,
)


@app.event("E")
async def on_e(event: dict, request: Request) -> None:
    out.write(f"start {request.offset} {event['i']}\n")
    for j in range(fanout):
        await send_relayed({"i": event["i"], "j": j}, key=str(event["i"]))
        if pause:
            await asyncio.sleep(pause)
    out.write(f"done {request.offset} {event['i']}\n")


if __name__ == "__main__":
    app.run()
