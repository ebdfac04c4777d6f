"""The `evkafka` command line, without a broker."""

from __future__ import annotations

import pytest

from evkafka.cli import SUBCOMMANDS, build_parser, connection_config, main


def test_redrive_is_a_subcommand_with_its_own_function() -> None:
    assert "redrive" in SUBCOMMANDS
    args = build_parser().parse_args(
        ["redrive", "--bootstrap-servers", "k:9092", "--topic", "orders.DLT", "--limit", "5"]
    )
    assert (args.topic, args.limit, args.group_id) == ("orders.DLT", 5, "evkafka-redrive")
    assert args.run is SUBCOMMANDS["redrive"][2]


def test_missing_topic_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["redrive", "--bootstrap-servers", "k:9092"])
    assert info.value.code == 2
    assert "--topic" in capsys.readouterr().err


def test_no_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_connection_flags_and_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVKAFKA_SASL_PASSWORD", "secret")
    args = build_parser().parse_args(
        [
            "redrive",
            "--bootstrap-servers",
            "k:9092",
            "--topic",
            "x",
            "--security-protocol",
            "SASL_PLAINTEXT",
            "--sasl-mechanism",
            "PLAIN",
            "--sasl-username",
            "me",
        ]
    )
    assert connection_config(args) == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "me",
        "sasl_plain_password": "secret",
    }


def test_a_bad_limit_exits_1_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["redrive", "--bootstrap-servers", "k:9092", "--topic", "x", "--limit", "-1"])
    assert code == 1
    assert "limit must be a non-negative integer" in capsys.readouterr().err
