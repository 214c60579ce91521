"""The contracts: what the scheduler needs from a store and an executor.

Each is a :class:`typing.Protocol`, so any object of the right shape plugs in; no
inheritance is needed. Pre- and post-conditions are documented once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from protocols.model import ClaimState, QueuedRun, Run, RunCreation, RunResult, RunStatus, Task

__all__ = [
    "CompleteRun",
    "CreateRun",
    "Executor",
    "FinishRun",
    "ReadClaimState",
    "ReadNextDue",
    "RunPromise",
    "StartRun",
    "StoreOp",
    "TaskControlService",
    "TaskStore",
    "apply_ops",
]


@runtime_checkable
class RunPromise(Protocol):
    """A run in progress whose result is not known yet.

    - ``wait(timeout)`` blocks until the result is in and returns it; it may be
      called from several threads and every call returns the same result. It
      raises :class:`~protocols.errors.RunCanceled` once the promise was cancelled,
      and :class:`TimeoutError` if ``timeout`` seconds pass first.
    - ``cancel()`` is thread-safe and a no-op once the result is in.
    - ``add_done_callback(fn)`` calls ``fn(promise)`` exactly once when the promise
      completes or is cancelled: at once (in the caller's thread) if it already has,
      otherwise from whichever thread completes it.
    """

    @property
    def run(self) -> QueuedRun: ...

    def wait(self, timeout: float | None = None) -> RunResult: ...

    def cancel(self) -> None: ...

    def add_done_callback(self, fn: Callable[[RunPromise], None]) -> None: ...


@runtime_checkable
class Executor(Protocol):
    """Starts runs.

    - ``execute(run)`` begins the run and returns its promise without waiting for
      it. It may raise: the scheduler then fails the run with
      ``Run failed to begin execution: <error>``.
    - ``wait()`` blocks until every promise this executor created has finished.
    """

    def execute(self, run: QueuedRun) -> RunPromise: ...

    def wait(self) -> None: ...


@runtime_checkable
class TaskControlService(Protocol):
    """What the scheduler asks of a store while it runs tasks.

    - ``create_next_run(task_id, now)``: manual runs first, FIFO, whatever ``now``;
      otherwise the run for the next slot after ``latest`` (the latest completed
      scheduled slot or the latest scheduled run in progress) if its due time
      (slot + offset) is ``<= now``, else :class:`~protocols.errors.RunNotDueYet`
      with ``due_at``. The returned run is recorded as in progress, status
      scheduled, and carries the task's script; a scheduled run has
      ``requested_at`` 0 and ``due_at`` its due time. Of the returned
      :class:`~protocols.model.RunCreation`, ``next_due`` is the due time of the
      next scheduled slot (what ``next_due_run`` returns after the call) and
      ``has_queue`` whether manual runs still wait.
    - ``next_due_run(task_id)``: the due time of the next slot.
    - ``currently_running(task_id)``: runs created and not finished, in no
      particular order.
    - ``manual_runs(task_id)``: manual runs waiting in the queue, in order.
    - ``claim_state(task_id)``: what a claim needs, read at one instant (one
      transaction): ``next_due`` as ``next_due_run`` says, ``has_queue`` whether
      ``manual_runs`` is not empty (without building the runs), and the runs of
      ``currently_running`` split into ``unstarted`` (status scheduled) and
      ``started`` (any other status), each by id.
    - ``finish_run(task_id, run_id)`` of a run in progress: the run leaves the
      in-progress set; for a scheduled (not manual) run, whatever its status,
      latest completed becomes ``max(latest completed, scheduled_for)``. Returns
      the finished run, ``finished_at`` the current time.
    - ``update_run_state(task_id, run_id, when, status)`` of a run in progress:
      sets its status; ``STARTED`` also sets ``started_at`` to ``when``, other
      statuses leave it.
    - ``add_run_log(task_id, run_id, when, message)`` of a run in progress: appends
      a line to its log, which ``find_run`` returns in order.
    - ``start_run(task_id, run_id, when, lines)`` of a run in progress, in one atomic
      step: status ``STARTED``, ``started_at`` ``when``, ``lines`` appended to its log
      (at ``when``), and its ``executions`` count up by one. A crash leaves all of it
      or none.
    - ``complete_run(task_id, run_id, when, status, lines)`` of a run in progress, in
      one atomic step: ``lines`` appended (at ``when``), the terminal ``status`` set,
      and the run finished as by ``finish_run`` (out of the in-progress set, latest
      completed advanced for a scheduled run, ``finished_at`` the current time);
      returns the finished run. Idempotent: a run already finished is left as it is
      and ``None`` returned, so a retried completion doubles nothing. A ``status``
      that is not terminal raises :class:`ValueError`; a run never created or still
      queued, :class:`~protocols.errors.RunNotFound`.

    - ``apply(ops)``: the :class:`StoreOp` ``ops``, in order, in one transaction
      (group commit). Each op is atomic on its own: all of its writes or none. The
      result has one entry per op: what the op returned, or the exception it raised
      (one failing op fails no other). If ``apply`` itself raises (the commit
      failed), none of the ops took effect. :func:`apply_ops` is the reference
      implementation for a store whose calls need no transaction of their own.
    - ``does_io``: True if calls may block on disk or network I/O. The scheduler
      then reaches the store through its store actor (a thread of its own that
      batches ops with ``apply``); otherwise it calls ``apply`` inline.

    The scheduler's run path is two ops: :class:`CreateRun` (``create_next_run``
    and ``start_run`` as one atomic step: nothing executes before its start is
    durable) and :class:`CompleteRun`; :class:`StartRun` starts a run resumed after
    a restart. A run whose status a dead process recorded as terminal without
    finishing it is completed on claim with ``finish_run``.

    Run ids are ``int`` and unique across the store. Unknown tasks raise
    :class:`~protocols.errors.TaskNotFound`, unknown runs (a run id is known only
    to its own task) :class:`~protocols.errors.RunNotFound`. The scheduler calls a
    store from several threads at once; a store must be safe for that.
    """

    def create_next_run(self, task_id: str, now: int) -> RunCreation: ...

    def next_due_run(self, task_id: str) -> int: ...

    def currently_running(self, task_id: str) -> list[Run]: ...

    def manual_runs(self, task_id: str) -> list[Run]: ...

    def claim_state(self, task_id: str) -> ClaimState: ...

    def finish_run(self, task_id: str, run_id: int) -> Run: ...

    def update_run_state(
        self, task_id: str, run_id: int, when: float, status: RunStatus
    ) -> None: ...

    def add_run_log(self, task_id: str, run_id: int, when: float, message: str) -> None: ...

    def start_run(self, task_id: str, run_id: int, when: float, lines: Sequence[str]) -> None: ...

    def complete_run(
        self, task_id: str, run_id: int, when: float, status: RunStatus, lines: Sequence[str]
    ) -> Run | None: ...

    def apply(self, ops: Sequence[StoreOp]) -> list[object]: ...

    @property
    def does_io(self) -> bool: ...


@runtime_checkable
class TaskStore(TaskControlService, Protocol):
    """A :class:`TaskControlService` plus task and run management.

    - ``add_task(task, latest_completed=None)``: ``None`` means the current time
      (no catch-up of earlier slots). A task id already taken raises
      :class:`~protocols.errors.TaskAlreadyExists` and the stored task is kept.
    - ``update_task(task, latest_completed=None)``: replaces the stored task (later
      runs carry its script and follow its schedule from the current base).
      ``None`` keeps the stored latest completed, so missed slots are caught up on
      re-activation unless the caller passes the current time; a later time moves
      it forward, an earlier one is ignored: latest completed never moves
      backwards (no slot runs twice).
    - ``remove_task(task_id)``: forgets the task and all its runs.
    - ``get_task(task_id)``: the task as last added or updated (an equal object).
    - ``list_tasks()``: every task, in no particular order.
    - ``force_run(task_id, scheduled_for)``: queue a manual run for that slot, status
      scheduled, ``requested_at`` the current time in whole seconds but never 0 (a
      non-zero ``requested_at`` marks a manual run);
      :class:`~protocols.errors.RunAlreadyQueued` if one for the same slot waits.
    - ``retry_run(task_id, run_id)``: queue a copy (same slot, queued as by
      ``force_run``) of a run ``finish_run`` has finished, under a new id. A run
      still queued, or in progress with a non-terminal status, raises
      :class:`~protocols.errors.RunNotFinished`.
    - ``find_runs(task_id)``: every run (queued, in progress, finished), by
      ``scheduled_for`` then id, descending.
    - ``find_run(task_id, run_id)``: one run, with its log.

    Every method but ``add_task`` and ``remove_task`` raises
    :class:`~protocols.errors.TaskNotFound` for an unknown task id (what
    ``remove_task`` does with one is the store's choice).

    A store that outlives its process (a file, a database) keeps across a restart
    (closed and opened again on the same file) every task, its latest completed
    slot, every run with its status and log, the runs in progress and the manual
    queue in order; the schedule continues after the last slot created, and run
    ids are never handed out again while the store holds them. A store kept in one
    process's memory survives no restart and promises this only while it lives.
    """

    def add_task(self, task: Task, *, latest_completed: int | None = None) -> None: ...

    def update_task(self, task: Task, *, latest_completed: int | None = None) -> None: ...

    def remove_task(self, task_id: str) -> None: ...

    def get_task(self, task_id: str) -> Task: ...

    def list_tasks(self) -> list[Task]: ...

    def force_run(self, task_id: str, scheduled_for: int) -> Run: ...

    def retry_run(self, task_id: str, run_id: int) -> Run: ...

    def find_runs(self, task_id: str) -> list[Run]: ...

    def find_run(self, task_id: str, run_id: int) -> Run: ...


# -- store ops: the run path's transitions, as data, so they can be batched ----------------


class StoreOp:
    """One atomic store transition, applied by ``TaskControlService.apply``.

    Ops are plain data (a store actor batches them from many actors into one
    transaction); :meth:`call` performs the op with the store's own methods. A store
    may apply an op its own way (fewer statements) as long as the effect and the
    result are the ones :meth:`call` gives.
    """

    __slots__ = ()

    def call(self, store: TaskControlService) -> object:
        raise NotImplementedError


@attrs.frozen
class CreateRun(StoreOp):
    """``create_next_run(task_id, now)`` then ``start_run`` of the run created, at ``when``
    with ``lines``: one atomic step. Returns the :class:`RunCreation` (its run started)."""

    task_id: str
    now: int
    when: float
    lines: tuple[str, ...]

    def call(self, store: TaskControlService) -> RunCreation:
        created = store.create_next_run(self.task_id, self.now)
        store.start_run(self.task_id, created.created.run_id, self.when, self.lines)
        return created


@attrs.frozen
class StartRun(StoreOp):
    """``start_run``: a run resumed after a restart is started again."""

    task_id: str
    run_id: int
    when: float
    lines: tuple[str, ...]

    def call(self, store: TaskControlService) -> None:
        store.start_run(self.task_id, self.run_id, self.when, self.lines)


@attrs.frozen
class CompleteRun(StoreOp):
    """``complete_run``: the outcome, lines and finish of a run. Returns True if this
    completed the run, False if it was finished already (so a retry doubles nothing)."""

    task_id: str
    run_id: int
    when: float
    status: RunStatus
    lines: tuple[str, ...]

    def call(self, store: TaskControlService) -> bool:
        done = store.complete_run(self.task_id, self.run_id, self.when, self.status, self.lines)
        return done is not None


@attrs.frozen
class FinishRun(StoreOp):
    """``finish_run``: a run whose outcome a dead process recorded leaves the in-progress set."""

    task_id: str
    run_id: int

    def call(self, store: TaskControlService) -> Run:
        return store.finish_run(self.task_id, self.run_id)


@attrs.frozen
class ReadClaimState(StoreOp):
    """``claim_state``: next due, queue and runs in progress, read in order with the writes."""

    task_id: str

    def call(self, store: TaskControlService) -> ClaimState:
        return store.claim_state(self.task_id)


@attrs.frozen
class ReadNextDue(StoreOp):
    """``next_due_run``."""

    task_id: str

    def call(self, store: TaskControlService) -> int:
        return store.next_due_run(self.task_id)


def apply_ops(store: TaskControlService, ops: Sequence[StoreOp]) -> list[Any]:
    """Each op's result, or the exception it raised, in order (no transaction of its own)."""
    results: list[Any] = []
    for op in ops:
        try:
            results.append(op.call(store))
        except Exception as exc:
            results.append(exc)
    return results
