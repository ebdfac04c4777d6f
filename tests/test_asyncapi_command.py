"""`evkafka asyncapi module:app`: JSON, YAML or the HTML page of an app found by its import path."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from evkafka import EVKafkaApp
from evkafka.asyncapi import asyncapi_command
from evkafka.asyncapi.command import load_app
from evkafka.cli import main
from evkafka.errors import ConfigError

APP_MODULE = """
from pydantic import BaseModel
from evkafka import EVKafkaApp

class Order(BaseModel):
    id: int

app = EVKafkaApp(config={"topics": ["orders"]}, title="From the CLI")
not_an_app = 42

@app.event("OrderCreated")
async def created(order: Order) -> None: ...
"""


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module holding `app`, in the working directory, as a user would run it."""
    name = f"docs_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(APP_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_command_formats(tmp_path: Path) -> None:
    app = EVKafkaApp(config={"topics": ["t"]})

    @app.event("E")
    async def endpoint(payload: dict) -> None:  # type: ignore[type-arg]
        ...

    assert json.loads(asyncapi_command(app)) == app.asyncapi()
    assert yaml.safe_load(asyncapi_command(app, fmt="yaml")) == app.asyncapi()
    page = tmp_path / "docs.html"
    assert asyncapi_command(app, html_path=page) == f"wrote {page}"
    assert page.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(ConfigError, match="'json' or 'yaml', not 'xml'"):
        asyncapi_command(app, fmt="xml")  # type: ignore[arg-type]


def test_cli_prints_json_and_yaml(app_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["asyncapi", f"{app_module}:app"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["info"]["title"] == "From the CLI"
    assert [m["name"] for m in doc["components"]["messages"].values()] == ["OrderCreated"]
    assert main(["asyncapi", f"{app_module}:app", "--format", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == doc


def test_cli_writes_the_html_page(
    app_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asyncapi", f"{app_module}:app", "--html", "out.html"]) == 0
    assert capsys.readouterr().out.strip() == "wrote out.html"
    page = (tmp_path / "out.html").read_text()
    assert ">OrderCreated<" in page and ">orders<" in page


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("no_colon", "expected 'module:app'"),
        ("{module}:", "expected 'module:app'"),
        ("missing_module_xyz:app", "cannot import module 'missing_module_xyz'"),
        ("{module}:nope", "has no attribute 'nope'"),
        ("{module}:not_an_app", "is a int, not an EVKafkaApp"),
    ],
)
def test_bad_targets_are_clear_errors(
    app_module: str, target: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = target.format(module=app_module)
    with pytest.raises(ConfigError, match=error):
        load_app(target)
    assert main(["asyncapi", target]) == 1
    assert error in capsys.readouterr().err
