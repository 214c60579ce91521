"""The messages the actors exchange. All immutable (``attrs.frozen``).

Flow of one run: SchedulerActor --Tick--> TaskActor --Execute--> RunnerActor,
the promise's done-callback --PromiseDone--> RunnerActor --RunFinished--> TaskActor.
TaskActors report their next due time with NextDue so the SchedulerActor ticks only
due tasks. ``epoch`` tells a task's claims apart, so a report from a released
claim never touches a later claim of the same task id.
"""

from __future__ import annotations

import attrs

from protocols.model import QueuedRun, Task

__all__ = [
    "CancelRun",
    "Claim",
    "ClaimMany",
    "Drain",
    "Execute",
    "InFlight",
    "ListTasks",
    "Lookup",
    "NextDue",
    "Now",
    "PromiseDone",
    "QueueChanged",
    "Release",
    "ReleaseAll",
    "RunFinished",
    "Shutdown",
    "Started",
    "Tick",
    "Update",
]


@attrs.frozen
class Tick:
    """Time moved to ``now``; ``queue_changed`` says manual runs were queued."""

    now: int
    queue_changed: bool = False


@attrs.frozen
class NextDue:
    """A TaskActor's next due time, whether manual runs wait, the ``now`` it knew,
    and whether every slot is busy (then it needs no tick until it reports again)."""

    task_id: str
    epoch: int
    next_due: int
    has_queue: bool
    as_of: int = 0
    busy: bool = False


@attrs.frozen
class Started:
    """A TaskActor was claimed: resume ``resume`` (runs from before a restart), then work."""

    now: int
    resume: tuple[QueuedRun, ...]


@attrs.frozen
class Execute:
    """A RunnerActor is to execute ``run``."""

    run: QueuedRun


@attrs.frozen
class PromiseDone:
    """The promise of the runner's current run completed (sent by its done-callback)."""

    run_id: int


@attrs.frozen
class RunFinished:
    """A RunnerActor finished a run (any outcome); its slot is free."""

    slot: int
    run_id: int


@attrs.frozen
class Claim:
    """Facade -> SchedulerActor: claim a task."""

    task: Task


@attrs.frozen
class Update:
    """Facade -> SchedulerActor (re-read schedule and queue), then SchedulerActor -> TaskActor."""

    task: Task
    next_due: int = 0
    has_queue: bool = False
    now: int = 0


@attrs.frozen
class Release:
    """Release a task (facade -> SchedulerActor -> facade -> TaskActor)."""

    task_id: str


@attrs.frozen
class ReleaseAll:
    """Facade -> SchedulerActor at stop: forget every task, return their actors."""


@attrs.frozen
class Lookup:
    """Facade -> SchedulerActor: the actor of a claimed task."""

    task_id: str


@attrs.frozen
class QueueChanged:
    """Facade -> SchedulerActor: manual runs were queued for a task."""

    task_id: str


@attrs.frozen
class CancelRun:
    """Cancel one run in flight (facade -> TaskActor -> facade -> RunnerActor)."""

    run_id: int


@attrs.frozen
class Drain:
    """Start no new runs (stop with a grace period)."""


@attrs.frozen
class InFlight:
    """Facade -> TaskActor: how many runs are in flight."""


@attrs.frozen
class Now:
    """Facade -> SchedulerActor: the last tick."""


@attrs.frozen
class ListTasks:
    """Facade -> SchedulerActor: the actors of every claimed task."""


@attrs.frozen
class Shutdown:
    """SchedulerActor -> TaskActor at stop: release and cancel every run in flight."""


@attrs.frozen
class ClaimMany:
    """Facade -> SchedulerActor: claim several tasks in one request."""

    tasks: tuple[Task, ...]
