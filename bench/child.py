"""One measured run in its own process: `python -m bench.child '<json job>'`.

Prints JSON lines on stdout: progress or readiness notes while running, then one
`{"result": {...}}` line. A fresh process per run keeps runs independent (no warm
caches, no leftover tasks) and makes its CPU time and peak RSS its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from bench.workload import Tally, cpu_seconds


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def _stdin_stop(stop: asyncio.Event) -> None:
    """Set `stop` when the parent writes a line (or closes our stdin)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    stop.set()


class TimedTally(Tally):
    """A tally that also records (distinct, when, CPU) every `n / 2000` new ids, so a
    parent can merge processes sharing a group into one exact timeline."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.step = max(1, n // 2000)
        self.marks: list[tuple[int, float, float]] = [(0, time.monotonic(), cpu_seconds())]

    def see(self, ident: int) -> None:
        before = self.distinct
        super().see(ident)
        if self.distinct != before and self.distinct % self.step == 0:
            self.marks.append((self.distinct, time.monotonic(), cpu_seconds()))


async def _report_progress(tally: TimedTally, every_s: float = 0.02) -> None:
    """Emit the distinct count whenever it moved, so a parent knows when the group is done."""
    reported = -1
    while True:
        if tally.distinct != reported:
            reported = tally.distinct
            emit(progress=reported)
        await asyncio.sleep(every_s)


async def consume(job: dict[str, Any]) -> dict[str, Any]:
    """Run one contender; alone it stops at the last id, in a shared group when told to."""
    from bench.contenders import runner as contender

    runner = contender(job["contender"])
    shared = job.get("shared", False)
    timed = TimedTally(job["n"]) if shared else None
    tally = timed or Tally(job["n"])
    stop = asyncio.Event() if shared else tally.done
    helpers = []
    if timed is not None:
        helpers = [
            asyncio.create_task(_stdin_stop(stop)),
            asyncio.create_task(_report_progress(timed)),
        ]
    task = asyncio.create_task(runner(job["topic"], job["kafka"], tally, stop))
    error = None
    try:
        async with asyncio.timeout(job["timeout"]):
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            await task
    except TimeoutError:
        error = f"timed out after {job['timeout']}s"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        for helper in helpers:
            helper.cancel()
    result: dict[str, Any] = tally.result()
    result["error"] = error
    if timed is not None:
        result["seen"] = timed.seen.hex()
        result["marks"] = timed.marks
    return result


async def main(job: dict[str, Any]) -> None:
    kind = job["kind"]
    if kind == "consume":
        result = await consume(job)
    elif kind == "produce":
        from bench.producers import produce

        result = await produce(job)
    else:
        from bench.latency import consume_timed

        result = await consume_timed(job)
    emit(result=result)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    job = json.loads(sys.argv[1])
    if job["kind"] == "chain":  # times its own event loop
        from bench.chain_overhead import measure

        emit(result=measure(job))
    else:
        asyncio.run(main(job))
