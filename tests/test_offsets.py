"""OffsetTracker: the commit position never passes an unfinished offset."""

from __future__ import annotations

from evkafka.offsets import OffsetTracker


def test_nothing_done_means_nothing_to_commit() -> None:
    t = OffsetTracker()
    t.track([0, 1, 2])
    assert t.to_commit() is None


def test_in_order_completion_advances_to_next_offset() -> None:
    t = OffsetTracker()
    t.track([5, 6, 7])
    t.mark_done(5)
    t.mark_done(6)
    assert t.to_commit() == 7


def test_a_later_success_does_not_pass_an_unfinished_offset() -> None:
    t = OffsetTracker()
    t.track([0, 1, 2, 3])
    t.mark_done(0)
    t.mark_done(2)
    t.mark_done(3)
    assert t.to_commit() == 1
    t.mark_done(1)
    assert t.to_commit() == 4


def test_gaps_in_offsets_are_contiguous_in_fetch_order() -> None:
    t = OffsetTracker()
    t.track([10, 13, 20])
    t.mark_done(10)
    t.mark_done(13)
    assert t.to_commit() == 14


def test_committed_position_is_not_reported_again() -> None:
    t = OffsetTracker()
    t.track([0, 1])
    t.mark_done(0)
    t.committed = t.to_commit()
    assert t.to_commit() is None
    t.mark_done(1)
    assert t.to_commit() == 2


def test_drop_after_keeps_the_in_flight_offset_committable() -> None:
    t = OffsetTracker()
    t.track([0, 1, 2, 3])
    t.mark_done(0)
    t.drop_after(1)
    t.mark_done(1)
    assert t.to_commit() == 2
    assert t.in_flight == 0


def test_unknown_offsets_are_ignored() -> None:
    t = OffsetTracker()
    t.track([0])
    t.mark_done(99)
    assert t.to_commit() is None
