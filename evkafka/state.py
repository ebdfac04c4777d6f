"""Attribute access over the dict a lifespan yields."""

from __future__ import annotations

from typing import Any


class State:
    """`state.db` reads `state_dict["db"]`; a missing name is a clear AttributeError."""

    __slots__ = ("_state",)

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_state", state if state is not None else {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._state[name]
        except KeyError:
            raise AttributeError(
                f"state has no {name!r}; the lifespan yielded {sorted(self._state)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._state[name] = value

    def __contains__(self, name: str) -> bool:
        return name in self._state
