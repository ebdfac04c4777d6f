"""OffsetTracker: the position to commit is the offset after the last finished record."""

from __future__ import annotations

from evkafka.offsets import OffsetTracker


def test_nothing_done_means_nothing_to_commit() -> None:
    assert OffsetTracker().to_commit() is None


def test_the_position_is_the_offset_after_the_last_finished_record() -> None:
    t = OffsetTracker()
    t.mark_done(5)
    t.mark_done(6)
    assert t.to_commit() == 7


def test_gaps_in_offsets_do_not_matter() -> None:
    t = OffsetTracker()
    t.mark_done(10)
    t.mark_done(13)  # 11 and 12 were compacted away
    assert t.to_commit() == 14


def test_a_committed_position_is_not_reported_again() -> None:
    t = OffsetTracker()
    t.mark_done(0)
    t.committed = t.to_commit()
    assert t.to_commit() is None
    t.mark_done(1)
    assert t.to_commit() == 2


def test_a_tracker_starts_from_a_known_committed_position() -> None:
    t = OffsetTracker(committed=40)
    assert t.to_commit() is None
    t.mark_done(40)
    assert t.to_commit() == 41
