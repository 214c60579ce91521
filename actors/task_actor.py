"""TaskActor: the single owner of one claimed task's scheduling state."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs
from pykka import ActorRef
from pykka.messages import _ActorStop

from actors._base import Handler, SafeActor
from actors.metrics import INTERNAL_ERROR, SchedulerMetrics, TaskMetrics
from actors.runner_actor import STORE_ERROR, RunnerActor
from actors.runtime import Runtime
from protocols.contracts import Executor, TaskControlService
from protocols.errors import RunNotDueYet, RunNotFound
from protocols.messages import (
    CancelRun,
    Drain,
    Execute,
    InFlight,
    NextDue,
    Release,
    RunFinished,
    Shutdown,
    Started,
    Tick,
    Update,
)
from protocols.model import QueuedRun, Task

__all__ = ["BUSY", "DUE", "NEVER", "Services", "TaskActor", "due_key"]

_STOP = _ActorStop()

#: The next due time of a task that will never be due by itself (inactive).
NEVER = 2**62
#: What a TaskActor last reported when it was due now (any int below every real time).
DUE = -(2**62)
#: What a TaskActor last reported when it was due now but had no free slot.
BUSY = DUE + 1


def due_key(active: bool, next_due: int, has_queue: bool, now: int, busy: bool = False) -> int:
    """What the SchedulerActor must know of a task.

    NEVER (inactive), the future time it is next due, DUE (due now, with a free slot:
    tick it), or BUSY (due now but every slot is taken: it will report again when a
    slot frees, so ticking it would be wasted work).
    """
    if not active:
        return NEVER
    if has_queue or next_due <= now:
        return BUSY if busy else DUE
    return next_due


@attrs.frozen
class Services:
    """What every actor of one Scheduler shares (all of it thread-safe or immutable)."""

    store: TaskControlService
    executor: Executor
    metrics: SchedulerMetrics
    runtime: Runtime
    log: Any
    clock: Callable[[], float]


class TaskActor(SafeActor):
    """Owns a task's options, next due time, queue flag, slots and runs in flight.

    It asks the store for runs (``create_next_run``) when ticked or when a slot
    frees, hands each run to the RunnerActor of a free slot, and reports its next
    due time to the SchedulerActor whenever that changes, so only due tasks are
    ticked. Runs resumed on claim (from before a restart) take free slots first;
    there is no limit on how many wait for a slot.
    """

    def __init__(
        self,
        *,
        services: Services,
        scheduler_ref: ActorRef[Any],
        task: Task,
        epoch: int,
        next_due: int,
        has_queue: bool,
        now: int,
    ) -> None:
        super().__init__()
        self._svc = services
        self._scheduler = scheduler_ref
        self._task = task
        self._epoch = epoch
        self._next_due = next_due
        self._has_queue = has_queue
        self._now = now
        self._bound_log: Any = None
        # Runs resumed on claim, oldest first (a list: usually empty, rarely long).
        self._resume: list[QueuedRun] = []
        self._runners: list[ActorRef[RunnerActor] | None] = []
        # Runners of busy slots beyond a shrunk concurrency: they finish, then retire.
        self._extra_runners: dict[int, ActorRef[RunnerActor]] = {}
        self._concurrency = task.options.concurrency
        self._busy: dict[int, int] = {}  # slot -> run id
        self._slot_of: dict[int, int] = {}  # run id -> slot
        self._free: list[int] = []  # heap of free slots below concurrency
        self._metrics: TaskMetrics | None = None
        self._released = False
        self._draining = False
        # The SchedulerActor indexed the task from the same facts at claim time.
        self._reported = due_key(task.active, next_due, has_queue, now)
        self._resize(task.options.concurrency)

    # -- messages -------------------------------------------------------------------

    def _on_started(self, message: Started) -> None:
        self._now = max(self._now, message.now)
        self._resume.extend(message.resume)
        self._work()
        self._report()

    def _on_tick(self, message: Tick) -> None:
        self._now = max(self._now, message.now)
        if message.queue_changed:
            self._has_queue = True
        self._work()
        self._report()

    def _on_update(self, message: Update) -> None:
        self._task = message.task
        self._next_due = message.next_due
        self._has_queue = message.has_queue
        self._now = max(self._now, message.now)
        self._resize(message.task.options.concurrency)
        self._work()
        self._report(force=True)

    def _on_run_finished(self, message: RunFinished) -> None:
        slot = message.slot
        if self._busy.get(slot) != message.run_id:
            return
        del self._busy[slot]
        del self._slot_of[message.run_id]
        if self._released:
            self._retire(slot)
            if not self._busy:
                self.stop()
            return
        if slot < len(self._runners):
            heapq.heappush(self._free, slot)
        else:
            self._retire(slot)
        self._work()
        if slot and slot not in self._busy:
            # An idle task keeps the runner of slot 0 only: a periodic task reuses it
            # run after run, and a burst's extra runners do not outlive the burst.
            self._retire(slot)
        self._report()

    def _on_drain(self, message: Drain) -> None:
        self._draining = True

    def _on_cancel(self, message: CancelRun) -> ActorRef[RunnerActor]:
        """The runner of run ``run_id``, which the caller then asks to cancel."""
        slot = self._slot_of.get(message.run_id)
        if slot is None:
            raise RunNotFound(
                self._task.id,
                message.run_id,
                f"run not found: run {message.run_id} of task {self._task.id!r} is not in flight",
            )
        return self._runner(slot)

    def _on_release(self, message: Release) -> list[tuple[ActorRef[RunnerActor], int]]:
        """Stop working; return the runners in flight so the caller cancels them."""
        self._released = True
        self._resume.clear()
        if self._metrics is not None:
            self._metrics.release()
        in_flight = [(self._runner(slot), run_id) for slot, run_id in self._busy.items()]
        for slot in range(len(self._runners)):
            if slot not in self._busy:
                self._retire(slot)
        if not self._busy:
            self.stop()
        return in_flight

    def _on_shutdown(self, message: Shutdown) -> None:
        """Release and cancel every run in flight, without a caller waiting (scheduler stop)."""
        for runner, run_id in self._on_release(Release(self._task.id)):
            runner.tell(CancelRun(run_id))

    def _on_in_flight(self, message: InFlight) -> int:
        return len(self._busy) + len(self._resume)

    # -- work -----------------------------------------------------------------------

    def _work(self) -> None:
        """Fill free slots: resumed runs first, then whatever the store says is due."""
        if self._released or self._draining:
            return
        store = self._svc.store
        task_id = self._task.id
        while self._free and len(self._busy) < self._concurrency:
            if self._resume:
                run = self._resume.pop(0)
            elif self._task.active and (self._has_queue or self._now >= self._next_due):
                try:
                    created = store.create_next_run(task_id, self._now)
                except RunNotDueYet as exc:
                    self._next_due = exc.due_at
                    self._has_queue = False
                    return
                except Exception as exc:
                    self._svc.metrics.error(STORE_ERROR)
                    self._log.warning("run_create_failed", error=str(exc))
                    return
                run = created.created
                self._next_due = created.next_due
                self._has_queue = created.has_queue
            else:
                return
            slot = heapq.heappop(self._free)
            self._busy[slot] = run.run_id
            self._slot_of[run.run_id] = slot
            self._runner(slot).tell(Execute(run))

    def _report(self, *, force: bool = False) -> None:
        """Tell the SchedulerActor when this task is next due, if that changed."""
        if self._released:
            return
        if self._task.active:
            next_due, has_queue = self._next_due, self._has_queue
        else:
            next_due, has_queue = NEVER, False
        # While the task is due (a backlog drains), its exact next due time does not
        # matter to the SchedulerActor: it ticks due tasks every tick. Reporting only
        # changes of "due now" or of a future due time saves a message per run. A due
        # task with every slot busy asks not to be ticked; it reports when one frees.
        busy = len(self._busy) >= self._concurrency
        key = due_key(self._task.active, next_due, has_queue, self._now, busy)
        if force or key != self._reported:
            self._reported = key
            self._scheduler.tell(
                NextDue(self._task.id, self._epoch, next_due, has_queue, self._now, busy)
            )

    @property
    def _log(self) -> Any:
        """The logger with ``task_id`` bound, made on first use (idle tasks never log)."""
        if self._bound_log is None:
            self._bound_log = self._svc.log.bind(task_id=self._task.id)
        return self._bound_log

    # -- slots ----------------------------------------------------------------------

    def _resize(self, concurrency: int) -> None:
        """Grow or shrink to ``concurrency`` slots; shrinking cancels nothing in flight."""
        self._concurrency = concurrency
        old = len(self._runners)
        if concurrency > old:
            self._runners.extend([None] * (concurrency - old))
            for slot in range(old, concurrency):
                if slot in self._extra_runners:
                    self._runners[slot] = self._extra_runners.pop(slot)
        elif concurrency < old:
            for slot in range(concurrency, old):
                if slot not in self._busy:
                    self._retire(slot)
            # Busy slots past the new size finish their run, then retire.
            extra = {slot: self._runners[slot] for slot in range(concurrency, old)}
            del self._runners[concurrency:]
            self._extra_runners.update({s: r for s, r in extra.items() if r is not None})
        self._free = [s for s in range(concurrency) if s not in self._busy]
        heapq.heapify(self._free)

    def _runner(self, slot: int) -> ActorRef[RunnerActor]:
        if slot >= len(self._runners):
            return self._extra_runners[slot]
        runner = self._runners[slot]
        if runner is None:
            if self._metrics is None:
                self._metrics = self._svc.metrics.for_task(self._task.id)
            svc = self._svc
            runner = svc.runtime.spawn(
                RunnerActor,
                task_ref=self.actor_ref,
                slot=slot,
                store=svc.store,
                executor=svc.executor,
                metrics=self._metrics,
                log=self._log.bind(run_slot=slot),
                clock=svc.clock,
            )
            self._runners[slot] = runner
        return runner

    def _retire(self, slot: int) -> None:
        """Stop the runner of an idle slot (it is spawned again when needed)."""
        if slot < len(self._runners):
            runner = self._runners[slot]
            self._runners[slot] = None
        else:
            runner = self._extra_runners.pop(slot, None)
        if runner is not None:
            runner.tell(_STOP)  # what ActorRef.stop sends, without its two futures

    def on_stop(self) -> None:
        for slot in list(self._extra_runners):
            self._retire(slot)
        for slot in range(len(self._runners)):
            self._retire(slot)

    def _handler_failed(self, message: Any, exc: Exception) -> None:
        self._svc.metrics.error(INTERNAL_ERROR)
        self._log.error("message_handler_failed", message=type(message).__name__, exc_info=exc)

    _tells: ClassVar[Mapping[type, Handler]] = {
        Started: _on_started,
        Tick: _on_tick,
        Update: _on_update,
        RunFinished: _on_run_finished,
        Drain: _on_drain,
        Shutdown: _on_shutdown,
    }
    _asks: ClassVar[Mapping[type, Handler]] = {
        CancelRun: _on_cancel,
        Release: _on_release,
        InFlight: _on_in_flight,
    }
