"""Marks a message's offset done so the consumer engine may commit it."""

from __future__ import annotations

from evkafka.errors import ConfigError
from evkafka.message import Message
from evkafka.types import CommitMode, Committer, MessageApp

COMMIT_MODES = ("post-commit", "pre-commit")


class CommitMiddleware:
    """Outermost layer: post-commit marks after the chain returns, pre-commit before."""

    def __init__(
        self, app: MessageApp, committer: Committer, mode: CommitMode = "post-commit"
    ) -> None:
        if mode not in COMMIT_MODES:
            raise ConfigError(f"auto_commit_mode must be one of {COMMIT_MODES}, not {mode!r}")
        self.app = app
        self.committer = committer
        self.mark_done = committer.mark_done
        self.pre_commit = mode == "pre-commit"

    async def __call__(self, message: Message) -> None:
        if self.pre_commit:
            self.mark_done(message)
            await self.app(message)
        else:
            await self.app(message)
            self.mark_done(message)
