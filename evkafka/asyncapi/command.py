"""What `evkafka asyncapi module:app` does: print the document, or write the HTML page."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evkafka.asyncapi.html import render_html
from evkafka.asyncapi.routes import to_json, to_yaml
from evkafka.asyncapi.spec import build_spec
from evkafka.errors import ConfigError

if TYPE_CHECKING:
    from evkafka.app import EVKafkaApp


def load_app(target: str) -> EVKafkaApp:
    """The app named by `module:attribute` (the current directory is importable, as for uvicorn)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"expected 'module:app', e.g. 'myservice.main:app', not {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import module {module_name!r} of {target!r}") from exc
        raise  # the module exists but one of its own imports is missing
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}") from None
    from evkafka.app import EVKafkaApp

    if not isinstance(obj, EVKafkaApp):
        raise ConfigError(f"{target!r} is a {type(obj).__name__}, not an EVKafkaApp")
    return obj


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
