"""API documentation: an AsyncAPI 3.0 document of the app and a page that renders it offline."""

from evkafka.asyncapi.command import asyncapi_command
from evkafka.asyncapi.html import render_html
from evkafka.asyncapi.routes import add_routes, serve_asyncapi, to_json, to_yaml
from evkafka.asyncapi.spec import build_spec

__all__ = [
    "add_routes",
    "asyncapi_command",
    "build_spec",
    "render_html",
    "serve_asyncapi",
    "to_json",
    "to_yaml",
]
