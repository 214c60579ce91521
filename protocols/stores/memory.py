"""The in-memory :class:`~protocols.TaskStore`: the reference behaviour, in one process.

:class:`MemoryStore` keeps tasks, runs, the manual-run queues and each task's
latest completed slot in plain dicts behind one :class:`threading.RLock`, so it
may be called from any number of threads (the scheduler's actors call it from
several). Every method is O(1) in the number of tasks and runs, except the
listing ones (``list_tasks``, ``find_runs``, ``currently_running``,
``manual_runs``), which cost what they return.

Behaviour, in addition to :class:`~protocols.contracts.TaskStore`:

- Run ids are ``int``, unique across the whole store and increasing from 1.
- ``create_next_run`` takes manual runs first, FIFO, whatever ``now``; the
  returned run's ``due_at`` is that ``now``. Otherwise it creates the run for the
  slot after ``max(latest completed, scheduled_for of every scheduled run in
  progress)``: manual runs never move the schedule. Missed slots are created one
  per call, in order (catch-up).
- The store does not look at :attr:`~protocols.Task.status`: an inactive task
  still gets runs if asked. Whether to ask is the scheduler's decision.
- ``update_run_state`` and ``add_run_log`` accept any run the store knows
  (queued, in progress or finished); ``finish_run`` only a run in progress.
- ``retry_run`` accepts a run that has finished: its status is terminal, or
  ``finish_run`` was called for it.
- ``remove_task`` of an unknown task raises :class:`~protocols.TaskNotFound`.
- :meth:`MemoryStore.latest_completed` (not part of the contract) reads a
  task's latest completed slot.
- Each task keeps at most ``max_finished_runs`` finished runs (default 1,000),
  dropping the oldest finished first (a dropped run is unknown from then on), so a
  long-running service's memory stays bounded; ``None`` keeps every run until its
  task is removed. Queued and in-progress runs are always kept.

Every object returned is one of the frozen model classes, built on return, so
callers cannot change the store's state through them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from protocols.contracts import StoreOp, apply_ops
from protocols.errors import (
    RunAlreadyQueued,
    RunNotDueYet,
    RunNotFinished,
    RunNotFound,
    TaskAlreadyExists,
    TaskNotFound,
)
from protocols.model import ClaimState, LogEntry, QueuedRun, Run, RunCreation, RunStatus, Task
from protocols.options import TaskOptions
from protocols.schedules import due_time, next_slot

__all__ = ["DEFAULT_MAX_FINISHED_RUNS", "MemoryStore"]


def _terminal(status: RunStatus) -> RunStatus:
    """``status`` if terminal, else ValueError (complete_run's precondition)."""
    status = RunStatus(status)
    if not status.is_terminal:
        raise ValueError(
            f"complete_run needs a terminal status (success, failed or canceled), not "
            f"{status.value!r}"
        )
    return status


_STARTED = RunStatus.STARTED
_SCHEDULED = RunStatus.SCHEDULED


#: How many finished runs each task keeps by default.
DEFAULT_MAX_FINISHED_RUNS = 1_000


class _RunRecord:
    """The store's mutable copy of one run."""

    __slots__ = (
        "executions",
        "finished",
        "finished_at",
        "id",
        "log",
        "requested_at",
        "scheduled_for",
        "started_at",
        "status",
        "task_id",
    )

    def __init__(self, run_id: int, task_id: str, scheduled_for: int, requested_at: int) -> None:
        self.id = run_id
        self.task_id = task_id
        self.scheduled_for = scheduled_for
        self.requested_at = requested_at
        self.status = _SCHEDULED
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.finished = False
        self.executions = 0
        # (when, message) pairs: plain tuples, not LogEntry objects, so a finished run's
        # log (a tuple of them) is invisible to the garbage collector.
        self.log: list[tuple[float, str]] | tuple[tuple[float, str], ...] = []

    def freeze(self) -> Run:
        """An immutable snapshot of this run."""
        return Run(
            id=self.id,
            task_id=self.task_id,
            status=self.status,
            scheduled_for=self.scheduled_for,
            requested_at=self.requested_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            log=tuple([LogEntry(when, message) for when, message in self.log]),
            executions=self.executions,
        )

    def add_log(self, when: float, message: str) -> None:
        """Append a log line (also after the run finished)."""
        log = self.log
        if isinstance(log, tuple):
            log = self.log = list(log)
        log.append((when, message))


class _TaskRecord:
    """The store's state for one task."""

    __slots__ = (
        "base",
        "cached_base",
        "cached_options",
        "cached_slot",
        "finished",
        "in_progress",
        "latest_completed",
        "queue",
        "queued_slots",
        "runs",
        "task",
    )

    def __init__(self, task: Task, latest_completed: int) -> None:
        self.task = task
        self.latest_completed = latest_completed
        # max(latest_completed, scheduled_for of every scheduled run in progress):
        # the instant after which the next slot is looked for.
        self.base = latest_completed
        self.runs: dict[int, _RunRecord] = {}
        self.in_progress: dict[int, _RunRecord] = {}
        self.queue: deque[_RunRecord] = deque()
        self.queued_slots: set[int] = set()
        self.finished: deque[int] = deque()
        # next_slot(cached_options, cached_base): a cron slot costs far more than a dict look-up.
        self.cached_base = latest_completed
        self.cached_options: TaskOptions | None = None
        self.cached_slot = 0

    def next_slot(self) -> int:
        """The first slot after ``base`` under the task's current options."""
        options = self.task.options
        if self.cached_options is not options or self.cached_base != self.base:
            self.cached_slot = next_slot(options, self.base)
            self.cached_base = self.base
            self.cached_options = options
        return self.cached_slot

    def recompute_base(self) -> None:
        base = self.latest_completed
        for record in self.in_progress.values():
            if not record.requested_at and record.scheduled_for > base:
                base = record.scheduled_for
        self.base = base


class MemoryStore:
    """The in-memory :class:`~protocols.TaskStore` (thread-safe).

    ``clock`` gives the current time in Unix seconds: it stamps ``finished_at``,
    ``requested_at`` and the default ``latest_completed`` of ``add_task``.
    ``max_finished_runs`` caps how many finished runs each task keeps (default
    1,000; ``None``: all of them).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        max_finished_runs: int | None = DEFAULT_MAX_FINISHED_RUNS,
    ) -> None:
        if max_finished_runs is not None and max_finished_runs < 0:
            raise ValueError(f"max_finished_runs must be >= 0 or None, not {max_finished_runs}")
        self._clock = clock
        self._max_finished = max_finished_runs
        self._lock = threading.RLock()
        self._tasks: dict[str, _TaskRecord] = {}
        self._ids = itertools.count(1)

    # -- helpers (call with the lock held) ---------------------------------------------

    def _task(self, task_id: str) -> _TaskRecord:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    def _run(self, task_id: str, run_id: int) -> _RunRecord:
        try:
            return self._task(task_id).runs[run_id]
        except KeyError:
            raise RunNotFound(task_id, run_id) from None

    def _requested_now(self) -> int:
        # requested_at marks a run as manual, so it is never 0.
        return max(1, int(self._clock()))

    def _enqueue(self, record: _TaskRecord, scheduled_for: int) -> Run:
        task_id = record.task.id
        if scheduled_for in record.queued_slots:
            raise RunAlreadyQueued(task_id, scheduled_for)
        run = _RunRecord(next(self._ids), task_id, scheduled_for, self._requested_now())
        record.runs[run.id] = run
        record.queue.append(run)
        record.queued_slots.add(scheduled_for)
        return run.freeze()

    # -- task management ---------------------------------------------------------------

    def add_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        """Add ``task``; ``latest_completed=None`` means now (no catch-up of earlier slots)."""
        with self._lock:
            if task.id in self._tasks:
                raise TaskAlreadyExists(task.id)
            if latest_completed is None:
                latest_completed = int(self._clock())
            self._tasks[task.id] = _TaskRecord(task, int(latest_completed))

    def update_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        """Replace the stored task; ``latest_completed`` only ever moves forward.

        ``None`` keeps the stored value (missed slots are caught up); a time earlier
        than the stored value is ignored, so passing "now" to skip a backlog can never
        make a slot that already ran run again (with a negative offset, a slot can be
        later than now). To run a past slot again, use :meth:`force_run`.
        """
        with self._lock:
            record = self._task(task.id)
            record.task = task
            if latest_completed is not None and latest_completed > record.latest_completed:
                record.latest_completed = int(latest_completed)
                record.recompute_base()

    def remove_task(self, task_id: str) -> None:
        """Drop the task and all its runs."""
        with self._lock:
            if self._tasks.pop(task_id, None) is None:
                raise TaskNotFound(task_id)

    def get_task(self, task_id: str) -> Task:
        """The stored task."""
        with self._lock:
            return self._task(task_id).task

    def list_tasks(self) -> list[Task]:
        """Every task, by id."""
        with self._lock:
            return [self._tasks[task_id].task for task_id in sorted(self._tasks)]

    def latest_completed(self, task_id: str) -> int:
        """The latest completed scheduled slot of the task (not part of the contract)."""
        with self._lock:
            return self._task(task_id).latest_completed

    # -- the control service (the scheduler's hot path) --------------------------------

    #: Never blocks on I/O: the scheduler calls it inline, without a store actor.
    does_io = False

    def apply(self, ops: Sequence[StoreOp]) -> list[object]:
        """The ops in order, under one lock hold; each op's result or exception."""
        with self._lock:
            return apply_ops(self, ops)

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        """The next manual run, else the run for the next slot if due by ``now``."""
        with self._lock:
            record = self._task(task_id)
            task = record.task
            options = task.options
            if record.queue:
                run = record.queue.popleft()
                record.queued_slots.discard(run.scheduled_for)
                record.in_progress[run.id] = run
                return RunCreation(
                    created=QueuedRun(
                        task_id=task_id,
                        run_id=run.id,
                        scheduled_for=run.scheduled_for,
                        due_at=now,
                        requested_at=run.requested_at,
                        script=task.script,
                    ),
                    next_due=due_time(options, record.next_slot()),
                    has_queue=bool(record.queue),
                )
            slot = record.next_slot()
            due = due_time(options, slot)
            if due > now:
                raise RunNotDueYet(due)
            following = next_slot(options, slot)  # before any change, in case it raises
            run = _RunRecord(next(self._ids), task_id, slot, 0)
            record.runs[run.id] = run
            record.in_progress[run.id] = run
            record.base = record.cached_base = slot
            record.cached_slot = following
            return RunCreation(
                created=QueuedRun(
                    task_id=task_id,
                    run_id=run.id,
                    scheduled_for=slot,
                    due_at=due,
                    requested_at=0,
                    script=task.script,
                ),
                next_due=due_time(options, following),
                has_queue=False,
            )

    def next_due_run(self, task_id: str) -> int:
        """The due time (offset included) of the task's next scheduled slot."""
        with self._lock:
            record = self._task(task_id)
            return due_time(record.task.options, record.next_slot())

    def currently_running(self, task_id: str) -> list[Run]:
        """Runs created by ``create_next_run`` and not finished, scheduled and manual, by id."""
        with self._lock:
            in_progress = self._task(task_id).in_progress
            return [in_progress[run_id].freeze() for run_id in sorted(in_progress)]

    def manual_runs(self, task_id: str) -> list[Run]:
        """Manual runs waiting in the queue, in queue order."""
        with self._lock:
            return [run.freeze() for run in self._task(task_id).queue]

    def claim_state(self, task_id: str) -> ClaimState:
        """Next due, whether a queue waits, and the runs in progress by start, at once."""
        with self._lock:
            record = self._task(task_id)
            unstarted: list[Run] = []
            started: list[Run] = []
            for run_id in sorted(record.in_progress):
                run = record.in_progress[run_id]
                (unstarted if run.status is _SCHEDULED else started).append(run.freeze())
            return ClaimState(
                next_due=due_time(record.task.options, record.next_slot()),
                has_queue=bool(record.queue),
                unstarted=tuple(unstarted),
                started=tuple(started),
            )

    def finish_run(self, task_id: str, run_id: int) -> Run:
        """Take the run out of the in-progress set; scheduled runs advance latest completed."""
        with self._lock:
            return self._finish(self._task(task_id), run_id)

    def _finish(self, record: _TaskRecord, run_id: int) -> Run:
        """finish_run under the lock (complete_run's last part too)."""
        run = record.in_progress.pop(run_id, None)
        if run is None:
            raise RunNotFound(record.task.id, run_id)
        run.finished = True
        run.finished_at = self._clock()
        run.log = tuple(run.log)
        if not run.requested_at and run.scheduled_for > record.latest_completed:
            record.latest_completed = run.scheduled_for
        if self._max_finished is not None:
            finished = record.finished
            finished.append(run_id)
            while len(finished) > self._max_finished:
                del record.runs[finished.popleft()]
        return run.freeze()

    def update_run_state(self, task_id: str, run_id: int, when: float, status: RunStatus) -> None:
        """Set the run's status; ``STARTED`` also sets ``started_at``."""
        status = RunStatus(status)
        with self._lock:
            run = self._run(task_id, run_id)
            run.status = status
            if status is _STARTED:
                run.started_at = when

    def add_run_log(self, task_id: str, run_id: int, when: float, message: str) -> None:
        """Append a line to the run's log."""
        entry = (float(when), str(message))
        with self._lock:
            self._run(task_id, run_id).add_log(*entry)

    def start_run(self, task_id: str, run_id: int, when: float, lines: Sequence[str]) -> None:
        """Status started, ``started_at``, and the lines, in one step (one lock hold)."""
        when = float(when)
        entries = [(when, str(line)) for line in lines]
        with self._lock:
            run = self._in_progress(task_id, run_id)
            run.status = _STARTED
            run.started_at = when
            run.executions += 1
            for entry in entries:
                run.add_log(*entry)

    def complete_run(
        self, task_id: str, run_id: int, when: float, status: RunStatus, lines: Sequence[str]
    ) -> Run | None:
        """The lines, the terminal status and the finish, in one step; None if finished."""
        status = _terminal(status)
        when = float(when)
        entries = [(when, str(line)) for line in lines]
        with self._lock:
            record = self._task(task_id)
            run = record.runs.get(run_id)
            if run is not None and run.finished:
                return None
            run = self._in_progress(task_id, run_id)
            for entry in entries:
                run.add_log(*entry)
            run.status = status
            return self._finish(record, run_id)

    def _in_progress(self, task_id: str, run_id: int) -> _RunRecord:
        run = self._task(task_id).in_progress.get(run_id)
        if run is None:
            self._run(task_id, run_id)  # RunNotFound for a run never created
            raise RunNotFound(
                task_id,
                run_id,
                f"run not found: run {run_id} of task {task_id!r} is not in progress",
            )
        return run

    # -- manual runs and run history ---------------------------------------------------

    def force_run(self, task_id: str, scheduled_for: int) -> Run:
        """Queue a manual run for ``scheduled_for``."""
        with self._lock:
            return self._enqueue(self._task(task_id), int(scheduled_for))

    def retry_run(self, task_id: str, run_id: int) -> Run:
        """Queue a copy of a finished run (same ``scheduled_for``) under a new id."""
        with self._lock:
            record = self._task(task_id)
            run = self._run(task_id, run_id)
            if not (run.finished or run.status.is_terminal):
                raise RunNotFinished(task_id, run_id)
            return self._enqueue(record, run.scheduled_for)

    def find_runs(self, task_id: str) -> list[Run]:
        """Every run the store keeps for the task, by ``scheduled_for`` then id, descending."""
        with self._lock:
            runs = sorted(
                self._task(task_id).runs.values(),
                key=lambda run: (run.scheduled_for, run.id),
                reverse=True,
            )
            return [run.freeze() for run in runs]

    def find_run(self, task_id: str, run_id: int) -> Run:
        """One run, with its log."""
        with self._lock:
            return self._run(task_id, run_id).freeze()
