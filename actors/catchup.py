"""Missed slots: how many a task will replay, and where ``catch_up`` moves its start.

The daemon applies a task's ``catch_up`` when it claims the task after downtime
(:mod:`actors.taskfile`): ``"all"`` leaves the store's latest completed slot as it
is (every missed slot runs), ``"latest"`` moves it to just before the most recent
missed slot, ``"none"`` to now. These helpers do the arithmetic on a task's
options, with :func:`protocols.schedules.next_slot` only, so they hold for
``every`` and cron schedules alike.
"""

from __future__ import annotations

from typing import Final

from protocols import TaskOptions
from protocols.schedules import due_time, next_slot

__all__ = ["MISSED_CAP", "count_missed", "latest_due_slot"]

#: :func:`count_missed` stops counting here (a task every second down for a day).
MISSED_CAP: Final = 100_000


def count_missed(options: TaskOptions, after: int, now: int, cap: int = MISSED_CAP) -> int:
    """How many slots after ``after`` are due by ``now`` (at most ``cap``)."""
    count = 0
    slot = next_slot(options, after)
    while due_time(options, slot) <= now and count < cap:
        count += 1
        slot = next_slot(options, slot)
    return count


def latest_due_slot(options: TaskOptions, after: int, now: int) -> int | None:
    """The last slot after ``after`` due by ``now``; None if no slot is due in between.

    Looks back from ``now`` in a window that doubles until it holds a due slot, so
    the cost is about the number of slots in twice the distance to that slot, not
    in the whole downtime.
    """
    horizon = now - options.offset  # a slot s is due by now when s <= horizon
    window = 60
    while True:
        start = max(after, horizon - window)
        slot = next_slot(options, start)
        if slot <= horizon:
            while True:
                following = next_slot(options, slot)
                if following > horizon:
                    return slot
                slot = following
        if start == after:
            return None
        window *= 2
