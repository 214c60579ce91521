"""SchedulerActor: the claimed tasks, the clock, and an index of when each task is due."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import ClassVar

import attrs
from pykka import ActorDeadError, ActorRef
from pykka.messages import _ActorStop

from actors._base import Handler, SafeActor
from actors._shared import DUE, NEVER, SchedulerStats, Services, due_key
from actors.metrics import NOT_FOUND
from actors.task_actor import TaskActor
from protocols.errors import TaskAlreadyClaimed, TaskNotClaimed, TaskNotFound
from protocols.messages import (
    Claim,
    ClaimMany,
    Drain,
    Forget,
    Gone,
    ListTasks,
    Lookup,
    NextDue,
    Now,
    QueueChanged,
    Reclaim,
    Release,
    ReleaseAll,
    Retired,
    Started,
    Stats,
    Tick,
    Update,
)
from protocols.model import ClaimState, Task

__all__ = ["SchedulerActor"]

_STOP = _ActorStop()

#: Stale heap entries tolerated before the heap is rebuilt (beyond one per live entry).
_STALE_SLACK = 64


@attrs.define
class _Entry:
    ref: ActorRef[TaskActor]
    epoch: int
    next_due: int
    has_queue: bool
    active: bool
    seq: int = 0  # the sequence number of its heap item; 0: none


class SchedulerActor(SafeActor):
    """The only actor the facade talks to.

    It keeps every claimed task's next due time in a heap (lazy deletion by
    sequence number) and a set of tasks that are due now. A tick pops what became
    due and sends :class:`Tick` to the due set only: with 10,000 claimed tasks of
    which none is due, a tick sends nothing. A task stays in the due set until it
    reports a next due time in the future (a busy task with a backlog is ticked
    every tick, so it learns the time). Inactive tasks are in neither.

    Memory is bounded by what is claimed: released or re-indexed tasks leave stale
    heap items behind, and the heap is rebuilt once they outnumber the live ones (plus
    a little slack), so the heap never holds more than ``2 * claimed + 64`` items.

    Released tasks whose runs are still being cancelled stay known (``_releasing``)
    until their TaskActor reports :class:`Retired`; only then is it stopped. A claim
    of such a task revives that actor, so one task id never has two TaskActors.
    """

    #: Its jobs run before ordinary ones: every TaskActor reports to it, and the
    #: facade's callers (claim, stop) wait on it, so it must not queue behind runs.
    urgent = True
    #: The actor spawned per claimed task (a seam for the kit's broken variants).
    task_actor_class: ClassVar[type[TaskActor]] = TaskActor

    def __init__(self, *, services: Services, now: int) -> None:
        super().__init__()
        self._svc = services
        self._errors = services.metrics
        self._log = services.log
        self._now = now
        self._tasks: dict[str, _Entry] = {}
        self._releasing: dict[str, _Entry] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._stale = 0  # heap items whose entry moved on or was released
        self._due: set[str] = set()
        self._seq = 0
        self._epochs = 0

    # -- time -----------------------------------------------------------------------

    def _on_tick(self, message: Tick) -> None:
        if message.now < self._now:
            return  # the clock never goes backwards
        self._now = now = message.now
        heap, tasks, due = self._heap, self._tasks, self._due
        while heap and heap[0][0] <= now:
            _, seq, task_id = heapq.heappop(heap)
            entry = tasks.get(task_id)
            if entry is not None and entry.seq == seq:
                entry.seq = 0
                due.add(task_id)
            else:
                self._stale -= 1
        if due:
            tick = Tick(now)
            for task_id in due:
                tasks[task_id].ref.tell(tick)

    def _on_next_due(self, message: NextDue) -> None:
        entry = self._tasks.get(message.task_id)
        if entry is None or entry.epoch != message.epoch:
            return  # from an earlier claim of this task id
        # A busy task is left alone only if it knows the time: a stale report is ticked.
        busy = message.busy and message.as_of >= self._now
        self._index(message.task_id, entry, message.next_due, message.has_queue, busy)
        if message.task_id in self._due and message.as_of < self._now:
            entry.ref.tell(Tick(self._now))  # it became due while the report was in transit

    def _index(
        self, task_id: str, entry: _Entry, next_due: int, has_queue: bool, busy: bool = False
    ) -> None:
        entry.next_due = next_due
        entry.has_queue = has_queue
        self._unindex(entry)
        if has_queue or next_due <= self._now:
            if busy:
                self._due.discard(task_id)  # it reports again when a slot frees
            else:
                self._due.add(task_id)
        else:
            self._due.discard(task_id)
            if next_due < NEVER:  # an inactive task is never due: no heap item
                self._seq += 1
                entry.seq = self._seq
                heapq.heappush(self._heap, (next_due, self._seq, task_id))

    def _unindex(self, entry: _Entry) -> None:
        """Forget ``entry``'s heap item (lazily); rebuild the heap when mostly stale."""
        if entry.seq:
            entry.seq = 0
            self._stale += 1
            if self._stale > _STALE_SLACK and 2 * self._stale > len(self._heap):
                self._heap = [
                    (e.next_due, e.seq, task_id) for task_id, e in self._tasks.items() if e.seq
                ]
                heapq.heapify(self._heap)
                self._stale = 0

    # -- requests from the facade ---------------------------------------------------

    def _on_claim(self, message: Claim) -> None:
        self._claim(message.task, message.state)

    def _on_claim_many(self, message: ClaimMany) -> dict[str, Exception]:
        failures: dict[str, Exception] = {}
        for task, state in message.claims:
            try:
                self._claim(task, state)
            except Exception as exc:
                failures[task.id] = exc
        return failures

    def _claim(self, task: Task, state: ClaimState | Exception) -> None:
        """Claim ``task``; ``state`` is what the store had for it (read by the facade),
        or the error that read raised."""
        metrics = self._svc.metrics
        if task.id in self._tasks:
            metrics.claim(False)
            raise TaskAlreadyClaimed(task.id)
        if isinstance(state, Exception):
            metrics.claim(False)
            raise state
        releasing = self._releasing.get(task.id)
        next_due, has_queue = state.next_due, state.has_queue
        # A TaskActor still finishing runs of a released claim reads them itself.
        running = () if releasing is not None else state.in_progress
        self._epochs += 1
        if releasing is not None:
            del self._releasing[task.id]
            ref = releasing.ref
            ref.tell(Reclaim(task, self._epochs, next_due, has_queue, self._now))
        else:
            ref = self._svc.runtime.spawn(
                self.task_actor_class,
                services=self._svc,
                scheduler_ref=self.actor_ref,
                task=task,
                epoch=self._epochs,
                next_due=next_due,
                has_queue=has_queue,
                now=self._now,
            )
        entry = _Entry(ref, self._epochs, next_due, has_queue, task.active)
        self._tasks[task.id] = entry
        self._index(task.id, entry, next_due if task.active else NEVER, has_queue and task.active)
        metrics.claim(True)
        if releasing is None and (
            running or due_key(task.active, next_due, has_queue, self._now) == DUE
        ):
            ref.tell(Started(self._now, running))

    def _on_update(self, message: Update) -> None:
        task = message.task
        entry = self._tasks.get(task.id)
        if entry is None:
            raise TaskNotClaimed(task.id)
        entry.active = task.active
        entry.ref.tell(Update(task, message.next_due, message.has_queue, self._now))

    def _on_forget(self, message: Forget) -> None:
        """Gone from the store: released, as a TaskActor that notices does (Gone)."""
        entry = self._tasks.get(message.task_id)
        if entry is None:
            raise TaskNotClaimed(message.task_id)
        self._svc.metrics.error(NOT_FOUND)
        self._release(message.task_id, entry)

    def _on_release(self, message: Release) -> ActorRef[TaskActor]:
        entry = self._tasks.get(message.task_id)
        if entry is None:
            raise TaskNotClaimed(message.task_id)
        self._release(message.task_id, entry)
        return entry.ref

    def _release(self, task_id: str, entry: _Entry) -> None:
        """Stop scheduling ``task_id``; its TaskActor cancels its runs and reports Retired."""
        del self._tasks[task_id]
        self._due.discard(task_id)
        self._unindex(entry)
        self._releasing[task_id] = entry
        self._svc.metrics.claims_active.dec()
        entry.ref.tell(Release(task_id))

    def _on_release_all(self, message: ReleaseAll) -> int:
        """Release every task (stop); their runs are cancelled without anyone waiting."""
        count = len(self._tasks)
        for task_id, entry in list(self._tasks.items()):
            self._release(task_id, entry)
        self._heap.clear()
        self._stale = 0
        return count

    def _on_retired(self, message: Retired) -> None:
        entry = self._releasing.get(message.task_id)
        if entry is None or entry.epoch != message.epoch:
            return  # claimed again meanwhile: the actor lives on
        del self._releasing[message.task_id]
        try:
            entry.ref.tell(_STOP)
        except ActorDeadError:
            pass

    def _on_gone(self, message: Gone) -> None:
        entry = self._tasks.get(message.task_id)
        if entry is not None and entry.epoch == message.epoch:
            self._release(message.task_id, entry)

    def _on_lookup(self, message: Lookup) -> ActorRef[TaskActor]:
        entry = self._tasks.get(message.task_id)
        if entry is None:
            raise TaskNotFound(
                message.task_id,
                f"task not found: {message.task_id!r} is not claimed by this scheduler",
            )
        return entry.ref

    def _on_queue_changed(self, message: QueueChanged) -> bool:
        entry = self._tasks.get(message.task_id)
        if entry is None:
            return False
        entry.has_queue = True
        if entry.active:  # an inactive task is never due; update_task re-reads the queue
            self._due.add(message.task_id)
            entry.ref.tell(Tick(self._now, queue_changed=True))
        return True

    def _on_drain(self, message: Drain) -> int:
        for entry in self._tasks.values():
            entry.ref.tell(message)
        return len(self._tasks)

    def _on_now(self, message: Now) -> int:
        return self._now

    def _on_tasks(self, message: ListTasks) -> list[ActorRef[TaskActor]]:
        return [entry.ref for entry in self._tasks.values()]

    def _on_stats(self, message: Stats) -> SchedulerStats:
        return SchedulerStats(
            claimed=len(self._tasks),
            releasing=len(self._releasing),
            due=len(self._due),
            indexed=len(self._heap),
            now=self._now,
        )

    _tells: ClassVar[Mapping[type, Handler]] = {
        Tick: _on_tick,
        NextDue: _on_next_due,
        Retired: _on_retired,
        Gone: _on_gone,
    }
    _asks: ClassVar[Mapping[type, Handler]] = {
        Claim: _on_claim,
        ClaimMany: _on_claim_many,
        Update: _on_update,
        Forget: _on_forget,
        Release: _on_release,
        ReleaseAll: _on_release_all,
        Lookup: _on_lookup,
        QueueChanged: _on_queue_changed,
        Drain: _on_drain,
        Now: _on_now,
        ListTasks: _on_tasks,
        Stats: _on_stats,
    }
