"""Error policy: retry transient failures, dead-letter the rest, re-drive them after a fix.

- The app-wide policy retries 3 times with exponential backoff, then writes the record to
  `<topic>.DLT` with `evkafka-dlt-*` headers saying what failed, and commits it.
- `UnknownAccount` is never retried: another attempt cannot succeed.
- Records that cannot be decoded (bad JSON, wrong schema) are dead-lettered at once.
- One endpoint overrides the policy: audit events are skipped (logged) on failure.
- After fixing the cause, put the dead letters back with `redrive_dead_letters(...)` or
  `evkafka redrive --bootstrap-servers HOST:9092 --topic payments.DLT`.
"""

from __future__ import annotations

import logging
import os

from pydantic import BaseModel

from evkafka import ErrorPolicy, EVKafkaApp, Handler
from evkafka.config import ConsumerConfig
from evkafka.redrive import redrive

log = logging.getLogger(__name__)

#: Stands in for a lookup table loaded from a database; a missing account is a data problem.
ACCOUNTS = {"alice", "bob"}


class UnknownAccount(Exception):
    """The payment names an account this service does not know (yet)."""


class Payment(BaseModel):
    id: int
    account: str
    cents: int


POLICY = ErrorPolicy(
    retries=3,
    backoff_ms=200,
    backoff_max_ms=5_000,
    never_retry=(UnknownAccount,),
    on_failure="dead-letter",
    dead_letter_topic="{topic}.DLT",
)

handler = Handler()
#: What the endpoints accepted, for the tests and the curious.
booked: list[Payment] = []


@handler.event("PaymentRequested")
async def payment_requested(payment: Payment) -> None:
    """Book the payment; an unknown account is dead-lettered without retrying."""
    if payment.account not in ACCOUNTS:
        raise UnknownAccount(f"payment {payment.id}: no account {payment.account!r}")
    booked.append(payment)


@handler.event("PaymentAudited", error_policy=ErrorPolicy(retries=0, on_failure="skip"))
async def payment_audited(entry: dict) -> None:
    """Best effort: a failure here is logged and skipped, never retried or dead-lettered."""
    if "id" not in entry:
        raise ValueError("audit entry without an id")


def build_app(config: ConsumerConfig) -> EVKafkaApp:
    """The service for `config` (tests pass their own broker and topic)."""
    app = EVKafkaApp(error_policy=POLICY)
    app.add_consumer(config, handler, name="payments")
    return app


CONFIG: ConsumerConfig = {
    "topics": ["payments"],
    "bootstrap_servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
    "group_id": "payments",
}
app = build_app(CONFIG)


async def redrive_dead_letters(config: ConsumerConfig, topic: str = "payments") -> int:
    """Re-publish every dead letter of `topic` to where it came from; how many went back."""
    return await redrive(config, f"{topic}.DLT", group_id="payments-redrive")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run()
