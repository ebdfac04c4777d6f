"""The supervisor tests' parent process: `python -m tests.integration.apps.supervised N`
keeps N sleeper workers running (fast backoff) until SIGTERM and exits with the
supervisor's code. STOP_TIMEOUT_S bounds the workers' graceful stop.
"""

from __future__ import annotations

import os
import sys

from evkafka.logs import configure_logging
from evkafka.supervisor import Backoff, Supervisor

configure_logging("INFO")
parent = str(os.getpid())
supervisor = Supervisor(
    lambda index: [sys.executable, "-m", "tests.integration.apps.sleeper", parent],
    int(sys.argv[1]),
    backoff=lambda: Backoff(initial_s=0.1, max_s=1.0),
    stop_timeout_s=float(os.environ.get("STOP_TIMEOUT_S", "20")),
)
sys.exit(supervisor.run())
