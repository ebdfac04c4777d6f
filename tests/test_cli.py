"""The `evkafka` command line, without a broker."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from evkafka.cli import SUBCOMMANDS, build_parser, connection_config, main
from evkafka.devbroker import free_port
from tests.integration.commandline import Command


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


# -- evkafka run, --version, log flags ------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from evkafka import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"evkafka {__version__}"


def test_run_arguments_and_log_flags_on_either_side_of_the_subcommand() -> None:
    args = build_parser().parse_args(
        ["run", "svc.main:app", "--workers", "3", "--log-level", "debug", "--log-format", "json"]
    )
    assert (args.app, args.workers, args.log_level, args.log_format) == (
        "svc.main:app",
        3,
        "DEBUG",
        "json",
    )
    assert args.run is SUBCOMMANDS["run"][2]
    args = build_parser().parse_args(["--log-format", "json", "run", "svc.main:app"])
    assert (args.workers, args.log_level, args.log_format) == (1, "INFO", "json")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["run", "x:app", "--workers", "0"], "--workers: expected a positive integer, not '0'"),
        (["run", "x:app", "--workers", "two"], "expected a positive integer, not 'two'"),
        (["run", "x:app", "--log-format", "xml"], "invalid choice: 'xml'"),
        (["run"], "the following arguments are required: app"),
    ],
)
def test_bad_run_flags_are_usage_errors(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert error in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "target", "error"),
    [
        (None, "no_such_module_xyz:app", "cannot import module 'no_such_module_xyz'"),
        (None, "no-colon", "expected 'module:app'"),
        ("app = 1 / 0\n", "{module}:app", "importing '{module}' failed: ZeroDivisionError"),
        (
            "import no_such_dependency_xyz\n",
            "{module}:app",
            "No module named 'no_such_dependency_xyz'",
        ),
        ("app = None\n", "{module}:app", "is a NoneType, not an EVKafkaApp"),
        ("x = 1\n", "{module}:app", "has no attribute 'app'"),
    ],
)
def test_run_with_a_bad_import_string_exits_1_saying_why(
    source: str | None,
    target: str,
    error: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = f"run_target_{tmp_path.name.replace('-', '_')}"
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    assert main(["run", target.format(module=module)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("evkafka run: AppImportError: ")
    assert error.format(module=module) in err


def test_python_dash_m_evkafka_reports_a_bad_import_string() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evkafka", "run", "no_such_module_xyz:app"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "evkafka run: AppImportError: cannot import module 'no_such_module_xyz' "
        "of 'no_such_module_xyz:app'"
    )


def free_port_pair() -> int:
    """A port p with p + 1 free too (worker 1 listens on the app's port + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no free pair of ports")


async def test_worker_i_serves_http_on_the_apps_port_plus_i() -> None:
    port = free_port_pair()
    app = "tests.integration.apps.probe_only:app"
    worker = await Command.evkafka("run", app, "--worker-index", "1", HTTP_PORT=str(port))
    try:
        await worker.wait_for_line(f"HTTP server on http://127.0.0.1:{port + 1}")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port + 1}/health/ready") as response:
                assert response.status == 200
        worker.send(signal.SIGTERM)
        assert await worker.exit_code(timeout=20) == 0, worker.log
    finally:
        await worker.kill()


async def test_a_worker_whose_supervisor_is_gone_exits_at_once() -> None:
    worker = await Command.evkafka(
        "run", "tests.integration.apps.probe_only:app", "--supervisor-pid", "1", HTTP_PORT="0"
    )
    try:
        assert await worker.exit_code(timeout=20) == 1
    finally:
        await worker.kill()
    assert worker.lines[-1] == "evkafka worker: supervisor 1 is gone; exiting"
