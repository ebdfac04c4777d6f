"""Per-partition offset tracking: commit only past offsets that are all done."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class OffsetTracker:
    """Tracks offsets in fetch order; the commit position never passes an unfinished one.

    Kafka offsets have gaps (compaction, transaction markers), so "contiguous" means
    contiguous in the order records were handed out, not consecutive integers.
    """

    __slots__ = ("_done", "_pending", "committed", "position")

    def __init__(self, committed: int | None = None) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        #: The offset to commit next (last contiguous done offset + 1), if any is done.
        self.position: int | None = committed
        #: The last position actually committed to the broker.
        self.committed: int | None = committed

    def track(self, offsets: Iterable[int]) -> None:
        """Offsets handed to a worker, in order."""
        self._pending.extend(offsets)

    def mark_done(self, offset: int) -> None:
        pending = self._pending
        if pending and pending[0] == offset:
            pending.popleft()
            self.position = offset + 1
            done = self._done
            while done and pending and pending[0] in done:
                head = pending.popleft()
                done.discard(head)
                self.position = head + 1
        elif offset in pending:
            self._done.add(offset)

    def drop_after(self, offset: int | None) -> None:
        """Forget offsets after `offset` (all if None): they will not be processed here."""
        pending = self._pending
        if offset is None:
            pending.clear()
            self._done.clear()
            return
        while pending and pending[-1] > offset:
            self._done.discard(pending.pop())

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def first_unfinished(self) -> int | None:
        """The oldest offset handed out and not yet done, else `position` (where work stands)."""
        return self._pending[0] if self._pending else self.position

    def to_commit(self) -> int | None:
        """The position to commit if it moved since the last commit, else None."""
        if self.position is not None and self.position != self.committed:
            return self.position
        return None
