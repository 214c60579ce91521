"""tickactors' concurrency core and its public facade, :class:`Scheduler`.

A SchedulerActor ticks only the TaskActors that are due; each TaskActor hands its
runs to RunnerActors, one per busy concurrency slot. Actors share a small pool of
threads (:mod:`actors.runtime`), so an idle claimed task costs no thread.
"""

from __future__ import annotations

from actors._shared import SchedulerStats
from actors.scheduler import Scheduler

__all__ = ["Scheduler", "SchedulerStats"]
