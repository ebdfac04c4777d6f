"""Finds an app by its `module:attribute` import string, as `evkafka run` and uvicorn take it."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from evkafka.errors import ConfigError

if TYPE_CHECKING:
    from evkafka.app import EVKafkaApp


class AppImportError(ConfigError):
    """The import string is malformed, or its module or attribute cannot be loaded."""


def load_app(target: str) -> EVKafkaApp:
    """The app named by `module:attribute` (the current directory is importable, as for uvicorn)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise AppImportError(f"expected 'module:app', e.g. 'myservice.main:app', not {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppImportError(f"cannot import module {module_name!r} of {target!r}") from exc
        # The module exists but one of its own imports is missing.
        raise AppImportError(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise AppImportError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppImportError(f"module {module_name!r} has no attribute {attribute!r}") from None
    from evkafka.app import EVKafkaApp

    if not isinstance(obj, EVKafkaApp):
        raise AppImportError(f"{target!r} is a {type(obj).__name__}, not an EVKafkaApp")
    return obj
