"""TaskActor: the single owner of one claimed task's scheduling state."""

from __future__ import annotations

import datetime
import heapq
import json
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar, Final

from pykka import ActorDeadError, ActorRef
from pykka.messages import _ActorStop

from actors._base import Handler, SafeActor
from actors._shared import NEVER, Services, due_key, log_safely
from actors.metrics import INTERNAL_ERROR, NOT_FOUND, STORE_ERROR, TaskMetrics
from actors.runner_actor import RunnerActor
from actors.store_actor import PENDING
from protocols.contracts import (
    CompleteRun,
    CreateRun,
    FinishRun,
    ReadClaimState,
    ReadNextDue,
    StartRun,
    StoreOp,
)
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
    Started,
    StoreReply,
    Tick,
    Update,
)
from protocols.model import ClaimState, QueuedRun, Run, RunCreation, RunStatus, Task

__all__ = ["TaskActor"]

_STOP = _ActorStop()

#: The empty set an idle task shares (a set of its own costs 216 bytes per task).
_NONE: Final[frozenset[int]] = frozenset()

#: The run id a slot holds while the run it will execute is being created.
_CREATING: Final = -1
#: Ticks (seconds of ``now``) a failed completion waits before its next try, at most.
MAX_RETRY_BACKOFF: Final = 60


def _resumed_line(started_at: float) -> str:
    """The log line of a run executed again after the process that started it died."""
    when = datetime.datetime.fromtimestamp(started_at, datetime.UTC).isoformat()
    return f"Resumed after restart: started at {when}, outcome unknown; executing again"


class TaskActor(SafeActor):
    """Owns a task's options, next due time, queue flag, slots and runs in flight.

    When ticked, or when a slot frees, it sends the store's port a
    :class:`~protocols.contracts.CreateRun` (create the next run and record its start,
    one atomic step) for one free slot, which it holds meanwhile; on the answer it hands
    the run to that slot's RunnerActor, so nothing executes before its start is
    durable. It reports its next due time to the SchedulerActor whenever that changes,
    so only due tasks are ticked. Runs resumed on claim (from before a restart) take
    free slots first (a :class:`~protocols.contracts.StartRun` each); there is no limit
    on how many wait for a slot. A run the store has in progress whose outcome is
    already recorded (the process died before ``finish_run``) is completed, never
    executed again.

    A slot frees when the run's completion is durable (the reply to the runner's
    :class:`~protocols.contracts.CompleteRun`). A completion the store refuses for a
    reason of its own (locked, full, gone) keeps the slot busy and is retried on later
    ticks, waiting 1, 2, 4 ... up to ``MAX_RETRY_BACKOFF`` seconds of ``now`` between
    tries; a create or start that fails is tried again on the next tick.

    Released, it cancels its runs in flight and starts nothing; once the last one is
    recorded it reports :class:`Retired` and the SchedulerActor stops it. Claimed
    again before that (:class:`Reclaim`), it carries on with those runs still in
    their slots, and resumes only the store's runs that are not its own: one run
    never executes twice at once. If the store no longer knows the task, it says so
    once (:class:`Gone`) and the SchedulerActor releases it.
    """

    #: The actor spawned per busy slot (a seam for the kit's broken variants).
    runner_class: ClassVar[type[RunnerActor]] = RunnerActor

    # An idle claimed task is mostly this object: slots instead of an instance dict of
    # thirty-odd keys (pykka's own few attributes stay in the base class's dict).
    __slots__ = (
        "_adopting",
        "_bound_log",
        "_busy",
        "_cancel_on_start",
        "_cancelled",
        "_concurrency",
        "_creating",
        "_draining",
        "_epoch",
        "_extra_runners",
        "_force_report",
        "_free",
        "_gone",
        "_has_queue",
        "_metrics",
        "_next_due",
        "_now",
        "_released",
        "_reported",
        "_resume",
        "_retries",
        "_retry_at",
        "_retrying",
        "_runners",
        "_scheduler",
        "_script",
        "_script_line",
        "_slot_of",
        "_stale_runners",
        "_stalled",
        "_starting",
        "_svc",
        "_task",
        "_unadopted",
    )

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
        self._stale_runners: AbstractSet[int] = _NONE
        self._concurrency = task.options.concurrency
        self._busy: dict[int, int] = {}  # slot -> run id (_CREATING while being created)
        self._slot_of: dict[int, int] = {}  # run id -> slot
        self._free: list[int] = []  # heap of free slots below concurrency
        self._metrics: TaskMetrics | None = None
        self._cancelled: list[ActorRef[RunnerActor]] = []  # told Cancel since the last Flush
        self._released = False
        self._draining = False
        self._gone = False
        # The slot held for the CreateRun in flight (one run is asked for at a time).
        self._creating: int | None = None
        # Resumed runs whose StartRun is in flight, by id.
        self._starting: dict[int, QueuedRun] = {}
        # Runs cancelled (cancel_run) while their StartRun was in flight.
        self._cancel_on_start: AbstractSet[int] = _NONE
        # Completions the store refused, by run id: retried on ticks (slot kept busy).
        self._retrying: dict[int, CompleteRun] = {}
        self._retry_at: int | None = None  # when they are next sent (None: from next tick)
        self._retries = 0  # completions refused in a row
        # A tick came while a run was being asked for: the reply reports (forced if so).
        self._force_report = False
        # A create or start failed: nothing more is asked of the store until a tick.
        self._stalled = False
        # The ReadClaimState of a Reclaim is in flight: nothing starts until it is read.
        self._adopting = False
        # A Reclaim could not read the store's runs in progress: retried on each tick
        # (the task stays due until then, so it is ticked).
        self._unadopted = False
        self._script = ""
        self._script_line = ""
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
        self._stale_runners = set(self._busy) if self._busy else _NONE
        self._resize(task.options.concurrency)
        self._adopt_from_store()
        self._work()
        self._report(force=True)

    def _adopt_from_store(self) -> None:
        """Read the store's runs in progress and adopt them; on failure, retry next tick."""
        self._adopting = True
        self._unadopted = False
        self._submit(ReadClaimState(self._task.id))

    def _on_tick(self, message: Tick) -> None:
        self._advance(message)
        # A tick means the SchedulerActor holds the task as due with a free slot. A busy
        # task says it is busy, as of this tick, even if it said so before: that earlier
        # report may have been stale (sent before the clock moved), and without a fresh
        # one the task would be ticked every tick until a slot frees.
        force = message.queue_changed or len(self._busy) >= self._concurrency
        if self._asking():
            # The store's answer changes what there is to say: say it then, once.
            self._force_report = self._force_report or force
            return
        self._report(force=force)

    def _asking(self) -> bool:
        """A run is being asked of the store (created or started): its reply is due."""
        return self._creating is not None or bool(self._starting)

    def _advance(self, message: Tick) -> None:
        """A tick's work: the clock, the queue flag, store retries, then free slots filled."""
        self._now = max(self._now, message.now)
        if message.queue_changed:
            self._has_queue = True
        self._stalled = False
        if not self._released:
            if self._retrying:
                self._retry_completions()
            if self._unadopted and not self._adopting:
                self._adopt_from_store()
        self._work()

    def _retry_completions(self) -> None:
        """On a tick: send the completions the store refused again, once their wait is over.

        The wait starts at the first tick after the failure (the task's own clock may
        be stale when it fails), and doubles with each failure in a row.
        """
        if self._retry_at is None:
            self._retry_at = self._now + min(2 ** (self._retries - 1), MAX_RETRY_BACKOFF)
        if self._now < self._retry_at:
            return
        self._retry_at = None
        for op in list(self._retrying.values()):
            del self._retrying[op.run_id]
            self._submit(op)

    def _on_update(self, message: Update) -> None:
        self._task = message.task
        self._next_due = message.next_due
        self._has_queue = message.has_queue
        self._now = max(self._now, message.now)
        self._resize(message.task.options.concurrency)
        self._work()
        self._report(force=True)

    def _on_store_reply(self, message: StoreReply) -> None:
        self._result(message.op, message.result)
        self._work()
        if self._asking():
            return  # the next reply reports
        force, self._force_report = self._force_report, False
        self._report(force=force)

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
        # A completion waiting for its retry is given up: the store keeps the run in
        # progress, and the next claim resumes it (executed again, its log says so).
        for run_id in list(self._retrying):
            del self._retrying[run_id]
            del self._busy[self._slot_of.pop(run_id)]
        for slot, run_id in self._busy.items():
            if run_id == _CREATING or run_id in self._starting:
                continue  # recorded cancelled when the store's answer comes (_execute)
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
        run_id = message.run_id
        slot = self._slot_of.get(run_id)
        if slot is None or run_id in self._retrying:
            raise RunNotFound(
                self._task.id,
                run_id,
                f"run not found: run {run_id} of task {self._task.id!r} is not in flight",
            )
        runner = self._runner(slot)
        if run_id in self._starting:
            self._cancel_on_start = {*self._cancel_on_start, run_id}
        else:
            runner.tell(Cancel(run_id))
        return runner

    def _on_flush(self, message: Flush) -> tuple[ActorRef[RunnerActor], ...]:
        cancelled = tuple(self._cancelled)
        self._cancelled.clear()
        return cancelled

    def _on_in_flight(self, message: InFlight) -> int:
        """Runs executing. Runs waiting to be resumed do not count (draining never starts
        them), nor do completions waiting for a retry (they need ticks, not time)."""
        return len(self._busy) - len(self._retrying)

    # -- the store's replies --------------------------------------------------------

    def _submit(self, op: StoreOp) -> None:
        """Send ``op`` to the store's port; a result it has at once is handled at once."""
        result = self._svc.port.call(op, self.actor_ref)
        if result is not PENDING:
            self._result(op, result)

    def _result(self, op: StoreOp, result: object) -> None:
        """What the store answered to ``op`` (never starts more work itself)."""
        if isinstance(op, CompleteRun):
            self._completed(op, result)
        elif isinstance(op, CreateRun):
            self._created(op, result)
        elif isinstance(op, StartRun):
            self._started(op, result)
        elif isinstance(op, ReadClaimState):
            self._adopting = False
            if isinstance(result, ClaimState):
                if not self._released:
                    self._adopt(result.in_progress)
            else:
                self._unadopted = not self._released
                self._store_error(op, result)
        elif isinstance(op, ReadNextDue):
            if isinstance(result, int):
                self._next_due = result
            else:
                self._store_error(op, result)
        elif isinstance(result, Exception):  # FinishRun
            self._store_error(op, result)

    def _created(self, op: CreateRun, result: object) -> None:
        """The store's answer to the CreateRun in flight."""
        slot, self._creating = self._creating, None
        assert slot is not None
        if isinstance(result, RunCreation):
            run = result.created
            self._next_due = result.next_due
            self._has_queue = result.has_queue
            self._busy[slot] = run.run_id
            self._slot_of[run.run_id] = slot
            self._execute(slot, run)
            return
        del self._busy[slot]
        heapq.heappush(self._free, slot)
        if isinstance(result, RunNotDueYet):
            self._next_due = result.due_at
            self._has_queue = False
        else:
            self._stalled = True
            self._store_error(op, result)

    def _started(self, op: StartRun, result: object) -> None:
        run = self._starting.pop(op.run_id)
        if not isinstance(result, Exception):
            self._execute(self._slot_of[run.run_id], run)
            return
        self._free_slot(self._slot_of[run.run_id], run.run_id)
        self._cancel_on_start -= {run.run_id}
        self._store_error(op, result)
        if not isinstance(result, (TaskNotFound, RunNotFound)) and not self._released:
            self._resume.insert(0, run)
            self._stalled = True

    def _execute(self, slot: int, run: QueuedRun) -> None:
        """Hand a run whose start is durable to its slot's runner (or record it cancelled)."""
        if self._released or run.run_id in self._cancel_on_start:
            self._cancel_on_start -= {run.run_id}
            self._submit(
                CompleteRun(
                    self._task.id, run.run_id, self._svc.clock(), RunStatus.CANCELED, ("Canceled",)
                )
            )
            return
        self._runner(slot).tell(Execute(run))

    def _completed(self, op: CompleteRun, result: object) -> None:
        run_id = op.run_id
        slot = self._slot_of.get(run_id)
        if slot is None or self._busy.get(slot) != run_id:
            if isinstance(result, Exception):  # an abandoned run's completion
                self._store_error(op, result)
            return
        if not isinstance(result, Exception):
            self._retries = 0
        elif isinstance(result, ValueError):  # a status that is not terminal: our bug
            self._svc.metrics.error(INTERNAL_ERROR)
        else:
            self._store_error(op, result)
            # Not in progress, or the task is gone: nothing to retry. Released: given up.
            if not isinstance(result, (RunNotFound, TaskNotFound)) and not self._released:
                self._retries += 1
                self._retry_at = None  # set by the next tick
                self._retrying[run_id] = op
                return
        self._free_slot(slot, run_id)

    def _free_slot(self, slot: int, run_id: int) -> None:
        """The run in ``slot`` is recorded (or given up): the slot takes the next run."""
        del self._busy[slot]
        del self._slot_of[run_id]
        if self._released:
            self._retire(slot)
            if not self._busy:
                self._retired()
            return
        if slot in self._stale_runners:
            self._stale_runners -= {slot}
            self._retire(slot)
        if slot < len(self._runners):
            heapq.heappush(self._free, slot)
        else:
            self._retire(slot)
        if slot and not self._resume and not self._wants_run():
            # An idle task keeps the runner of slot 0 only: a periodic task reuses it
            # run after run, and a burst's extra runners do not outlive the burst.
            self._retire(slot)

    # -- work -----------------------------------------------------------------------

    def _adopt(self, running: Iterable[Run]) -> None:
        """Take the store's runs in progress that are not in flight here.

        A run whose outcome is recorded is completed (``finish_run``), never executed
        again; the others are resumed, in slot order, before any new run is created.
        """
        waiting = {run.run_id for run in self._resume}
        completed = False
        task_id = self._task.id
        for run in sorted(running, key=lambda r: (r.scheduled_for, r.id)):
            if run.id in self._slot_of or run.id in waiting:
                continue  # executing here (a run of the claim before a Reclaim)
            if run.status.is_terminal:
                completed = True
                self._submit(FinishRun(task_id, run.id))
                continue
            started = run.status is RunStatus.STARTED
            executions = max(run.executions, 1) if started else run.executions
            if started and executions >= self._svc.max_executions:
                self._abandon(run, executions)
                completed = True
                continue
            self._resume.append(
                QueuedRun(
                    task_id=task_id,
                    run_id=run.id,
                    scheduled_for=run.scheduled_for,
                    due_at=self._now,
                    requested_at=run.requested_at,
                    script=self._task.script,
                    resumed_from=(run.started_at or 0.0) if started else None,
                    execution=executions + 1,
                )
            )
        if completed:  # latest completed may have moved (read after those writes)
            self._submit(ReadNextDue(task_id))

    def _abandon(self, run: Run, executions: int) -> None:
        """Complete, failed, a run whose executions never completed (each time the
        process running it died): executing it again would likely kill this one too."""
        line = (
            f"Abandoned after {executions} executions whose outcome is unknown (the process "
            "running it died each time); not executed again"
        )
        self._submit(CompleteRun(run.task_id, run.id, self._svc.clock(), RunStatus.FAILED, (line,)))
        log_safely(
            self._log,
            self._errors,
            "error",
            "run_abandoned",
            run_id=run.id,
            scheduled_for=run.scheduled_for,
            executions=executions,
        )

    def _wants_run(self) -> bool:
        """The task has a run to create now (a manual one, or a slot due)."""
        return self._task.active and (self._has_queue or self._now >= self._next_due)

    def _work(self) -> None:
        """Fill free slots: resumed runs first, then whatever the store says is due.

        A slot is held from the moment its run is asked of the store, and one run at a
        time is asked for (created or started), so a store that answers later never
        over-fills the slots, resumed runs start in slot order even when one start
        fails, and no run is created while a resumed one may still need its slot.
        """
        if self._released or self._draining or self._gone or self._adopting:
            return
        task_id = self._task.id
        while (
            self._free
            and len(self._busy) < self._concurrency
            and not self._stalled
            and not self._starting
            and self._creating is None
        ):
            if self._resume:
                run = self._resume.pop(0)
                slot = heapq.heappop(self._free)
                self._busy[slot] = run.run_id
                self._slot_of[run.run_id] = slot
                self._starting[run.run_id] = run
                started = self._started_line(run.script)
                lines = (
                    (started,)
                    if run.resumed_from is None
                    else (_resumed_line(run.resumed_from), started)
                )
                self._submit(StartRun(task_id, run.run_id, self._svc.clock(), lines))
            elif self._wants_run():
                slot = self._creating = heapq.heappop(self._free)
                self._busy[slot] = _CREATING
                self._submit(
                    CreateRun(
                        task_id,
                        self._now,
                        self._svc.clock(),
                        (self._started_line(self._task.script),),
                    )
                )
            else:
                return

    def _started_line(self, script: str) -> str:
        """``Started task from script: "<script>"`` (the script quoted as Go's %q would)."""
        if script != self._script or not self._script_line:
            self._script = script
            self._script_line = f"Started task from script: {json.dumps(script)}"
        return self._script_line

    def _report(self, *, force: bool = False) -> None:
        """Tell the SchedulerActor when this task is next due, if that changed."""
        if self._released or self._gone:
            return
        active = self._task.active
        if active:
            next_due, has_queue = self._next_due, self._has_queue
        else:
            next_due, has_queue = NEVER, False
        # While the task is due (a backlog drains), its exact next due time does not
        # matter to the SchedulerActor: it ticks due tasks every tick. Reporting only
        # changes of "due now" or of a future due time saves a message per run. A due
        # task with every slot busy asks not to be ticked; it reports when one frees.
        busy = len(self._busy) >= self._concurrency and not self._retrying
        if self._unadopted or self._retrying or self._stalled:
            # Ticked until the store answers, active or not (resumed runs wait).
            next_due, active = min(next_due, self._now), True
        key = due_key(active, next_due, has_queue, self._now, busy)
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
        """The store no longer knows the task: say so once, and be released (a task
        released already, or draining for a stop, says nothing: its claim is ending)."""
        if self._gone or self._released or self._draining:
            return
        self._gone = True
        self._svc.metrics.error(NOT_FOUND)
        log_safely(self._log, self._errors, "warning", "task_not_found_releasing")
        self._scheduler.tell(Gone(self._task.id, self._epoch))

    def _store_error(self, op: StoreOp, result: object) -> None:
        """Count and log a failed store op (a task gone from the store: released)."""
        if isinstance(result, TaskNotFound):
            self._vanished()
            return
        self._svc.metrics.error(STORE_ERROR)
        log_safely(
            self._log,
            self._errors,
            "warning",
            "store_call_failed",
            call=type(op).__name__,
            error=str(result),
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
                port=svc.port,
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
        StoreReply: _on_store_reply,
        Drain: _on_drain,
        Release: _on_release,
    }
    _asks: ClassVar[Mapping[type, Handler]] = {
        CancelRun: _on_cancel_run,
        Flush: _on_flush,
        InFlight: _on_in_flight,
    }
