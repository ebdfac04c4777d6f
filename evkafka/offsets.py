"""Where a partition's work stands: the offset to commit next and the one last committed."""

from __future__ import annotations


class OffsetTracker:
    """The commit position of one partition.

    A partition worker finishes its records strictly in offset order, so the position to
    commit is the offset after the last finished one (the next record to read, as Kafka
    expects; offsets can have gaps, so it is not a count of records).
    """

    __slots__ = ("committed", "position")

    def __init__(self, committed: int | None = None) -> None:
        #: The offset to commit next (last finished offset + 1), once one is finished.
        self.position: int | None = committed
        #: The last position actually committed to the broker.
        self.committed: int | None = committed

    def mark_done(self, offset: int) -> None:
        self.position = offset + 1

    def to_commit(self) -> int | None:
        """The position to commit if it moved since the last commit, else None."""
        if self.position is not None and self.position != self.committed:
            return self.position
        return None
