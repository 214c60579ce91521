"""Schedule arithmetic (PLACEHOLDER: only ``every`` so far; cron to be completed)."""

from __future__ import annotations

import functools
from typing import Protocol

import attrs

from protocols.options import TaskOptions

__all__ = ["Schedule", "compile_schedule", "next_slot", "due_time"]


class Schedule(Protocol):
    """The slots of a task: instants (Unix seconds) at which a run is for."""

    def next_after(self, t: int) -> int:
        """The first slot strictly after ``t``."""
        ...


@attrs.frozen
class EverySchedule:
    """Slots at multiples of ``every`` seconds since the Unix epoch."""

    every: int

    def next_after(self, t: int) -> int:
        return (t // self.every + 1) * self.every


@functools.lru_cache(maxsize=4096)
def compile_schedule(options: TaskOptions) -> Schedule:
    """The schedule described by ``options`` (cached: options are immutable)."""
    assert options.every is not None
    return EverySchedule(options.every)


def next_slot(options: TaskOptions, after: int) -> int:
    """The first slot of ``options`` strictly after ``after``."""
    return compile_schedule(options).next_after(after)


def due_time(options: TaskOptions, slot: int) -> int:
    """When the run for ``slot`` is due: the slot plus the offset."""
    return slot + options.offset
