"""The catch-up arithmetic: missed slots counted, and the latest due slot found."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.catchup import count_missed, latest_due_slot
from protocols import TaskOptions
from protocols.schedules import due_time, next_slot


def _every(every: int, offset: int = 0) -> TaskOptions:
    return TaskOptions(name="t", every=every, offset=offset)


def test_count_missed_counts_due_slots_after_the_start() -> None:
    """Slots 20, 30, 40 are due by 45 after 10 (every 10 s)."""
    assert count_missed(_every(10), 10, 45) == 3
    assert count_missed(_every(10, offset=10), 10, 45) == 2  # 40 is due at 50
    assert count_missed(_every(10), 50, 45) == 0


def test_count_missed_stops_at_the_cap() -> None:
    """A long downtime is counted up to the cap, not slot by slot forever."""
    assert count_missed(_every(1), 0, 10**9, cap=500) == 500


def test_latest_due_slot_every_and_offset() -> None:
    """The last slot due by now; None when none is due after the start."""
    assert latest_due_slot(_every(10), 0, 45) == 40
    assert latest_due_slot(_every(10, offset=10), 0, 45) == 30
    assert latest_due_slot(_every(10), 40, 45) is None
    assert latest_due_slot(_every(3600), 0, 10**6) == 10**6 // 3600 * 3600


def test_latest_due_slot_cron_in_a_zone() -> None:
    """A daily cron in New York: the latest 03:00 local before now, across a long gap."""
    options = TaskOptions(name="t", cron="0 3 * * *", timezone="America/New_York")
    now = 1_730_613_600 + 10 * 86_400  # ten days after 2024-11-03T06:00Z
    slot = latest_due_slot(options, now - 100 * 86_400, now)
    assert slot is not None
    assert slot <= now < next_slot(options, slot)


@given(
    every=st.integers(1, 600),
    offset=st.integers(-300, 300),
    after=st.integers(0, 10**6),
    gap=st.integers(0, 10**5),
)
def test_latest_due_slot_agrees_with_counting(
    every: int, offset: int, after: int, gap: int
) -> None:
    """The latest due slot is the last of the slots count_missed counts (brute force)."""
    options = _every(every, offset)
    now = after + gap
    slot = latest_due_slot(options, after, now)
    missed = count_missed(options, after, now, cap=10**6)
    if missed == 0:
        assert slot is None
    else:
        assert slot is not None
        assert slot > after
        assert due_time(options, slot) <= now
        assert due_time(options, next_slot(options, slot)) > now


@pytest.mark.parametrize(("now", "expected"), [(-1, None), (0, 0), (59, 0), (60, 60), (61, 60)])
def test_latest_due_slot_at_the_edges(now: int, expected: int | None) -> None:
    """A slot due exactly now counts; one due a second later does not."""
    assert latest_due_slot(_every(60), -1, now) == expected
