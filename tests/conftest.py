from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from evkafka.devbroker import DevBroker


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """A Kafka-protocol broker: EVKAFKA_TEST_BOOTSTRAP, or an embedded Tansu on a free port."""
    external = os.environ.get("EVKAFKA_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    with DevBroker() as broker:
        yield broker.bootstrap_servers
