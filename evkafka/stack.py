"""Builds a consumer's middleware chain once, at startup."""

from __future__ import annotations

from collections.abc import Sequence

from evkafka.conventions import EventTypeConvention
from evkafka.middleware import Middleware
from evkafka.middleware.commit import CommitMiddleware
from evkafka.middleware.decoding import DecoderMiddleware
from evkafka.middleware.errors import ErrorPolicy, ErrorPolicyMiddleware
from evkafka.middleware.event_type import EventTypeMiddleware
from evkafka.types import CommitMode, Committer, MessageApp

DEFAULT_STACK: tuple[Middleware, ...] = (
    Middleware(EventTypeMiddleware),
    Middleware(DecoderMiddleware),
)


def processing_stack(user: Sequence[Middleware] | None) -> list[Middleware]:
    """The user's layers; the default event-type and decoding layers when the user has none.

    A user list without any event-type layer gets the default one innermost, so adding
    a timing middleware never silently stops routing.
    """
    if user is None:
        return list(DEFAULT_STACK)
    layers = list(user)
    if not any(getattr(m.cls, "sets_event_type", False) for m in layers):
        layers.extend(DEFAULT_STACK)
    return layers


def build_chain(
    router: MessageApp,
    middleware: Sequence[Middleware] | None,
    committer: Committer,
    mode: CommitMode = "post-commit",
    policy: ErrorPolicy | None = None,
) -> MessageApp:
    """commit -> error policy -> processing layers (first is outermost) -> router."""
    app = router
    for m in reversed(processing_stack(middleware)):
        app = m.cls(app, *m.args, **m.kwargs)
    app = ErrorPolicyMiddleware(app, policy)
    return CommitMiddleware(app, committer, mode)


def find_convention(chain: MessageApp) -> EventTypeConvention | None:
    """The event-type convention a built chain reads (for TestClient and producers)."""
    layer: object = chain
    while layer is not None:
        convention = getattr(layer, "convention", None)
        if convention is not None:
            return convention  # type: ignore[no-any-return]
        layer = getattr(layer, "app", None)
    return None
