"""Builds a consumer's middleware chain once, at startup."""

from __future__ import annotations

from collections.abc import Sequence

from evkafka.conventions import EventTypeConvention
from evkafka.errors import ConfigError
from evkafka.middleware import Middleware
from evkafka.middleware.commit import CommitMiddleware
from evkafka.middleware.decoding import DecoderMiddleware
from evkafka.middleware.errors import DEFAULT_POLICY, ErrorPolicy, ErrorPolicyMiddleware
from evkafka.middleware.event_type import EventTypeMiddleware
from evkafka.types import CommitMode, Committer, DeadLetterSink, MessageApp

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
    *,
    dead_letters: DeadLetterSink | None = None,
    time_budget_ms: int | None = None,
) -> MessageApp:
    """commit -> error policy -> processing layers (first is outermost) -> router.

    Every policy that dead-letters (the consumer's and the endpoints') declares its
    producer to `dead_letters` here, so the consumer connects it before fetching.
    """
    app = router
    for m in reversed(processing_stack(middleware)):
        app = m.cls(app, *m.args, **m.kwargs)
    if policy is not None and not isinstance(policy, ErrorPolicy):
        raise ConfigError(f"error_policy must be an ErrorPolicy, not {policy!r}")
    policies = [policy or DEFAULT_POLICY]
    for endpoint in getattr(router, "endpoints", {}).values():
        if endpoint.error_policy is None:
            continue
        if not isinstance(endpoint.error_policy, ErrorPolicy):
            raise ConfigError(
                f"endpoint {endpoint.name!r} for event {endpoint.event_type!r}: error_policy "
                f"must be an ErrorPolicy, not {endpoint.error_policy!r}"
            )
        policies.append(endpoint.error_policy)
    if dead_letters is not None:
        for p in policies:
            if p.on_failure == "dead-letter":
                dead_letters.require(p.dead_letter_producer)
    app = ErrorPolicyMiddleware(
        app, policy, dead_letters=dead_letters, time_budget_ms=time_budget_ms
    )
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
