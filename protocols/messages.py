"""The messages the actors exchange. All immutable (``attrs.frozen``).

Flow of one run: SchedulerActor --Tick--> TaskActor --CreateRun--> the store's port
--StoreReply--> TaskActor --Execute--> RunnerActor, the promise's done-callback
--PromiseDone--> RunnerActor --CompleteRun--> the store's port --StoreReply--> TaskActor
(the slot is free). With a store that never blocks the port applies an op at once and
the requester handles its result without a StoreReply; with one that does I/O the store
actor replies after the batch holding the op is committed.
TaskActors report their next due time with NextDue so the SchedulerActor ticks only
due tasks. ``epoch`` tells a task's claims apart, so a report from a released
claim never touches a later claim of the same task id.

Release: SchedulerActor --Release--> TaskActor --Cancel--> RunnerActors; once its
last run is recorded the TaskActor reports Retired, and only then does the
SchedulerActor stop it. Until then a claim of the same task id revives that actor
(Reclaim) instead of spawning a second one, so a run whose cancel completes late is
never resumed while it still executes. Each message type travels one hop, as a tell
or as an ask, never both.
"""

from __future__ import annotations

import attrs

from protocols.contracts import StoreOp
from protocols.model import ClaimState, QueuedRun, Run, Task

__all__ = [
    "Cancel",
    "CancelRun",
    "Claim",
    "ClaimMany",
    "Drain",
    "Execute",
    "InFlight",
    "Flush",
    "Forget",
    "Gone",
    "ListTasks",
    "Lookup",
    "NextDue",
    "Now",
    "PromiseDone",
    "QueueChanged",
    "Release",
    "Reclaim",
    "ReleaseAll",
    "Retired",
    "Started",
    "Stats",
    "StoreReply",
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
    """SchedulerActor -> TaskActor: claimed; ``running`` is what the store has in progress
    (runs from before a restart: resumed, or completed if their outcome is recorded)."""

    now: int
    running: tuple[Run, ...]


@attrs.frozen
class Reclaim:
    """SchedulerActor -> a released TaskActor whose runs are still finishing: claimed
    again (it keeps those runs' slots and resumes only what is not its own)."""

    task: Task
    epoch: int
    next_due: int
    has_queue: bool
    now: int


@attrs.frozen
class Execute:
    """A RunnerActor is to execute ``run``."""

    run: QueuedRun


@attrs.frozen
class PromiseDone:
    """The promise of the runner's current run completed (sent by its done-callback)."""

    run_id: int


@attrs.frozen
class StoreReply:
    """The store actor -> the requester of ``op``: its ``result`` (or the exception it
    raised), sent once the batch holding the op is committed. A RunnerActor sends the
    reply to its :class:`~protocols.contracts.CompleteRun` itself when the store
    applied it inline, so the TaskActor frees the slot in one place."""

    op: StoreOp
    result: object


@attrs.frozen
class Claim:
    """Facade -> SchedulerActor: claim a task, with its ``state`` as the store has it
    (read by the facade in the caller's thread: no actor on the pool waits on a store),
    or the exception that read raised (raised unless the task is claimed already)."""

    task: Task
    state: ClaimState | Exception


@attrs.frozen
class Update:
    """Facade -> SchedulerActor (re-read schedule and queue), then SchedulerActor -> TaskActor."""

    task: Task
    next_due: int = 0
    has_queue: bool = False
    now: int = 0


@attrs.frozen
class Release:
    """Release a task: facade -> SchedulerActor (an ask), SchedulerActor -> TaskActor
    (a tell: cancel every run in flight, report Retired once they are recorded)."""

    task_id: str


@attrs.frozen
class ReleaseAll:
    """Facade -> SchedulerActor at stop: release every task."""


@attrs.frozen
class Retired:
    """A released TaskActor -> SchedulerActor: nothing of claim ``epoch`` is in flight."""

    task_id: str
    epoch: int


@attrs.frozen
class Gone:
    """TaskActor -> SchedulerActor: the store no longer knows the task; release it."""

    task_id: str
    epoch: int


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
    """Facade -> TaskActor (an ask): cancel run ``run_id``; the answer is its runner,
    which the facade then flushes."""

    run_id: int


@attrs.frozen
class Cancel:
    """TaskActor -> RunnerActor (a tell): cancel run ``run_id`` if it is the current one."""

    run_id: int


@attrs.frozen
class Flush:
    """Facade -> an actor (an ask): answered once every message sent to it before has
    been handled; the answer lists the actors it forwarded work to since the last
    Flush, so the facade can flush them in turn."""


@attrs.frozen
class Stats:
    """Facade -> SchedulerActor: counts of what it holds (``SchedulerStats``)."""


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
class ClaimMany:
    """Facade -> SchedulerActor: claim several tasks in one request (with their states)."""

    claims: tuple[tuple[Task, ClaimState | Exception], ...]


@attrs.frozen
class Forget:
    """Facade -> SchedulerActor: the store no longer knows a claimed task (update_task
    found it gone): release it, counted as a task not found."""

    task_id: str
