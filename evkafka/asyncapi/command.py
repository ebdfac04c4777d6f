"""What `evkafka asyncapi module:app` does: print the document, or write the HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from evkafka.asyncapi.html import render_html
from evkafka.asyncapi.routes import to_json, to_yaml
from evkafka.asyncapi.spec import build_spec
from evkafka.errors import ConfigError
from evkafka.importer import load_app

if TYPE_CHECKING:
    from evkafka.app import EVKafkaApp

__all__ = ["asyncapi_command", "load_app"]


def asyncapi_command(
    app: EVKafkaApp, fmt: Literal["json", "yaml"] = "json", html_path: str | Path | None = None
) -> str:
    """The document as JSON or YAML; with `html_path`, writes the page there and says so."""
    if fmt not in ("json", "yaml"):
        raise ConfigError(f"format must be 'json' or 'yaml', not {fmt!r}")
    spec = build_spec(app)
    if html_path is not None:
        path = Path(html_path)
        path.write_text(render_html(spec), encoding="utf-8")
        return f"wrote {path}"
    return to_json(spec) if fmt == "json" else to_yaml(spec)
