"""TaskActor: the single owner of one claimed task's scheduling state."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from pykka import ActorDeadError, ActorRef
from pykka.messages import _ActorStop

from actors._base import Handler, SafeActor
from actors._shared import NEVER, Services, due_key, log_safely
from actors.metrics import NOT_FOUND, STORE_ERROR, TaskMetrics
from actors.runner_actor import RunnerActor
from protocols.errors import RunNotDueYet, RunNotFound, TaskNotFound
from protocols.messages import (
    Cancel,
    CancelRun,
    Drain,
    Execute,
    Flush,
    Gone,
    InFlight,
    NextDue,
    Reclaim,
    Release,
    Retired,
    RunFinished,
    Started,
    Tick,
    Update,
)
from protocols.model import QueuedRun, Run, RunStatus, Task

__all__ = ["TaskActor"]

_STOP = _ActorStop()


class TaskActor(SafeActor):
    """Owns a task's options, next due time, queue flag, slots and runs in flight.

    It asks the store for runs (``create_next_run``) when ticked or when a slot
    frees, hands each run to the RunnerActor of a free slot, and reports its next
    due time to the SchedulerActor whenever that changes, so only due tasks are
    ticked. Runs resumed on claim (from before a restart) take free slots first;
    there is no limit on how many wait for a slot. A run the store has in progress
    whose outcome is already recorded (the process died before ``finish_run``) is
    completed, never executed again.

    Released, it cancels its runs in flight and starts nothing; once the last one is
    recorded it reports :class:`Retired` and the SchedulerActor stops it. Claimed
    again before that (:class:`Reclaim`), it carries on with those runs still in
    their slots, and resumes only the store's runs that are not its own: one run
    never executes twice at once. If the store no longer knows the task, it says so
    once (:class:`Gone`) and the SchedulerActor releases it.
    """

    #: The actor spawned per busy slot (a seam for the kit's broken variants).
    runner_class: ClassVar[type[RunnerActor]] = RunnerActor

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
        self._errors = services.metrics
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
        # Slots whose runner belongs to a claim before a Reclaim: retired when they free.
        self._stale_runners: set[int] = set()
        self._concurrency = task.options.concurrency
        self._busy: dict[int, int] = {}  # slot -> run id
        self._slot_of: dict[int, int] = {}  # run id -> slot
        self._free: list[int] = []  # heap of free slots below concurrency
        self._metrics: TaskMetrics | None = None
        self._cancelled: list[ActorRef[RunnerActor]] = []  # told Cancel since the last Flush
        self._released = False
        self._draining = False
        self._gone = False
        # A Reclaim could not read the store's runs in progress: retried on each tick
        # (the task stays due until then, so it is ticked).
        self._unadopted = False
        # The SchedulerActor indexed the task from the same facts at claim time.
        self._reported = due_key(task.active, next_due, has_queue, now)
        self._resize(task.options.concurrency)

    # -- messages -------------------------------------------------------------------

    def _on_started(self, message: Started) -> None:
        self._now = max(self._now, message.now)
        self._adopt(message.running)
        self._work()
        self._report()

    def _on_reclaim(self, message: Reclaim) -> None:
        task = message.task
        self._task = task
        self._epoch = message.epoch
        self._next_due = message.next_due
        self._has_queue = message.has_queue
        self._now = max(self._now, message.now)
        self._released = self._gone = False
        self._bound_log = None
        # Fresh metric series for the new claim; runners of busy slots keep the old
        # (released) ones for the run they finish, then retire.
        self._metrics = None
        self._stale_runners = set(self._busy)
        self._resize(task.options.concurrency)
        self._adopt_from_store()
        self._work()
        self._report(force=True)

    def _adopt_from_store(self) -> None:
        """Read the store's runs in progress and adopt them; on failure, retry next tick."""
        state = self._store_read(self._svc.store.claim_state)
        self._unadopted = state is None
        if state is not None:
            self._adopt(state.in_progress)

    def _on_tick(self, message: Tick) -> None:
        self._now = max(self._now, message.now)
        if message.queue_changed:
            self._has_queue = True
        if self._unadopted and not self._released:
            self._adopt_from_store()
        self._work()
        # A tick means the SchedulerActor holds the task as due with a free slot. A busy
        # task says it is busy, as of this tick, even if it said so before: that earlier
        # report may have been stale (sent before the clock moved), and without a fresh
        # one the task would be ticked every tick until a slot frees.
        busy = len(self._busy) >= self._concurrency
        self._report(force=message.queue_changed or busy)

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
                self._retired()
            return
        if slot in self._stale_runners:
            self._stale_runners.discard(slot)
            self._retire(slot)
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

    def _on_release(self, message: Release) -> None:
        """Stop working, cancel every run in flight; Retired once none is left."""
        if self._released:
            return
        self._released = True
        self._resume.clear()
        metrics, self._metrics = self._metrics, None
        if metrics is not None:
            try:
                metrics.release()
            except Exception as exc:
                self._handler_failed(message, exc)
        for slot, run_id in self._busy.items():
            runner = self._runner(slot)
            runner.tell(Cancel(run_id))
            self._cancelled.append(runner)
        for slot in range(len(self._runners)):
            if slot not in self._busy:
                self._retire(slot)
        if not self._busy:
            self._retired()

    def _on_cancel_run(self, message: CancelRun) -> ActorRef[RunnerActor]:
        """Cancel run ``run_id``; the answer is its runner, for the caller to flush."""
        slot = self._slot_of.get(message.run_id)
        if slot is None:
            raise RunNotFound(
                self._task.id,
                message.run_id,
                f"run not found: run {message.run_id} of task {self._task.id!r} is not in flight",
            )
        runner = self._runner(slot)
        runner.tell(Cancel(message.run_id))
        return runner

    def _on_flush(self, message: Flush) -> tuple[ActorRef[RunnerActor], ...]:
        cancelled = tuple(self._cancelled)
        self._cancelled.clear()
        return cancelled

    def _on_in_flight(self, message: InFlight) -> int:
        """Runs executing. Runs waiting to be resumed do not count: draining never starts them."""
        return len(self._busy)

    # -- work -----------------------------------------------------------------------

    def _adopt(self, running: Iterable[Run]) -> None:
        """Take the store's runs in progress that are not in flight here.

        A run whose outcome is recorded is completed (``finish_run``), never executed
        again; the others are resumed, in slot order, before any new run is created.
        """
        waiting = {run.run_id for run in self._resume}
        completed = False
        for run in sorted(running, key=lambda r: (r.scheduled_for, r.id)):
            if run.id in self._slot_of or run.id in waiting:
                continue  # executing here (a run of the claim before a Reclaim)
            if run.status.is_terminal:
                completed = True
                try:
                    self._svc.store.finish_run(run.task_id, run.id)
                except Exception as exc:
                    self._store_failed("finish_run", exc)
                continue
            started = run.status is RunStatus.STARTED
            executions = max(run.executions, 1) if started else run.executions
            if started and executions >= self._svc.max_executions:
                self._abandon(run, executions)
                completed = True
                continue
            self._resume.append(
                QueuedRun(
                    task_id=self._task.id,
                    run_id=run.id,
                    scheduled_for=run.scheduled_for,
                    due_at=self._now,
                    requested_at=run.requested_at,
                    script=self._task.script,
                    resumed_from=(run.started_at or 0.0) if started else None,
                    execution=executions + 1,
                )
            )
        if completed:  # latest completed may have moved
            next_due = self._store_read(self._svc.store.next_due_run)
            if next_due is not None:
                self._next_due = next_due

    def _abandon(self, run: Run, executions: int) -> None:
        """Complete, failed, a run whose executions never completed (each time the
        process running it died): executing it again would likely kill this one too."""
        line = (
            f"Abandoned after {executions} executions whose outcome is unknown (the process "
            "running it died each time); not executed again"
        )
        try:
            self._svc.store.complete_run(
                run.task_id, run.id, self._svc.clock(), RunStatus.FAILED, (line,)
            )
        except Exception as exc:
            self._store_failed("complete_run", exc)
            return
        log_safely(
            self._log,
            self._errors,
            "error",
            "run_abandoned",
            run_id=run.id,
            scheduled_for=run.scheduled_for,
            executions=executions,
        )

    def _work(self) -> None:
        """Fill free slots: resumed runs first, then whatever the store says is due."""
        if self._released or self._draining or self._gone:
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
                except TaskNotFound:
                    self._vanished()
                    return
                except Exception as exc:
                    self._store_failed("create_next_run", exc)
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
        if self._released or self._gone:
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
        if self._unadopted:
            next_due = min(next_due, self._now)  # ticked until the store answers
        key = due_key(self._task.active, next_due, has_queue, self._now, busy)
        if force or key != self._reported:
            self._reported = key
            self._scheduler.tell(
                NextDue(self._task.id, self._epoch, next_due, has_queue, self._now, busy)
            )

    def _retired(self) -> None:
        """Released and nothing in flight: the SchedulerActor may stop this actor."""
        try:
            self._scheduler.tell(Retired(self._task.id, self._epoch))
        except ActorDeadError:
            self.stop()  # the scheduler is gone already (runtime shutdown)

    def _vanished(self) -> None:
        """The store no longer knows the task: say so once, and be released."""
        if self._gone:
            return
        self._gone = True
        self._svc.metrics.error(NOT_FOUND)
        log_safely(self._log, self._errors, "warning", "task_not_found_releasing")
        self._scheduler.tell(Gone(self._task.id, self._epoch))

    def _store_read(self, fn: Callable[[str], Any]) -> Any:
        """``fn(task_id)``; None (counted and logged) if the store raised."""
        try:
            return fn(self._task.id)
        except TaskNotFound:
            self._vanished()
        except Exception as exc:
            self._store_failed(getattr(fn, "__name__", "store call"), exc)
        return None

    def _store_failed(self, call: str, exc: Exception) -> None:
        self._svc.metrics.error(STORE_ERROR)
        log_safely(
            self._log, self._errors, "warning", "store_call_failed", call=call, error=str(exc)
        )

    @property
    def _log(self) -> Any:
        """The logger with ``task_id`` bound, made on first use (idle tasks never log)."""
        if self._bound_log is None:
            try:
                self._bound_log = self._svc.log.bind(task_id=self._task.id)
            except Exception:
                return self._svc.log
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
            try:
                log = self._log.bind(run_slot=slot)
            except Exception:
                log = self._log
            runner = svc.runtime.spawn(
                self.runner_class,
                task_ref=self.actor_ref,
                slot=slot,
                store=svc.store,
                executor=svc.executor,
                metrics=self._metrics,
                log=log,
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
            try:
                runner.tell(_STOP)  # what ActorRef.stop sends, without its two futures
            except ActorDeadError:
                pass

    def on_stop(self) -> None:
        for slot in list(self._extra_runners):
            self._retire(slot)
        for slot in range(len(self._runners)):
            self._retire(slot)

    _tells: ClassVar[Mapping[type, Handler]] = {
        Started: _on_started,
        Reclaim: _on_reclaim,
        Tick: _on_tick,
        Update: _on_update,
        RunFinished: _on_run_finished,
        Drain: _on_drain,
        Release: _on_release,
    }
    _asks: ClassVar[Mapping[type, Handler]] = {
        CancelRun: _on_cancel_run,
        Flush: _on_flush,
        InFlight: _on_in_flight,
    }
