"""A worker for the supervisor tests (no broker): `python -m tests.integration.apps.sleeper PPID`.

Reports `up <pid>` on stderr, waits for SIGTERM, reports `bye <pid>` and exits 0. It asks
to be sent SIGTERM when its supervisor PPID dies. STUBBORN=1 ignores SIGTERM (only
SIGKILL ends it); CRASH=1 exits with code 3 at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from evkafka.supervisor import exit_with_parent


def report(word: str) -> None:
    os.write(2, f"{word} {os.getpid()}\n".encode())  # one write: lines of workers never mix


if os.environ.get("CRASH"):
    sys.exit(3)
if os.environ.get("STUBBORN"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    report("up")
    while True:
        time.sleep(3600)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
exit_with_parent(int(sys.argv[1]))
report("up")
signal.sigwait({signal.SIGTERM})
report("bye")
