"""The store the machine's scheduler sees: a chain of wrappers around the real store.

:class:`ForwardingStore` forwards every :class:`~protocols.TaskStore` call to
``inner``; a wrapper overrides only the calls it changes. :class:`RecordingStore`
is the one the checks read: it records the control-service calls that change runs.
:meth:`SchedulerMachine.wrap_store` builds the chain (by default just the recorder);
put a hostile wrapper (one that raises transiently, say) *inside* the recorder, so
the recorder sees what the scheduler saw, or outside it to hide calls from it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final

import attrs

from protocols.contracts import StoreOp, TaskControlService, TaskStore
from protocols.errors import RunNotDueYet
from protocols.model import ClaimState, QueuedRun, Run, RunCreation, RunStatus, Task

__all__ = [
    "CREATE",
    "FINISH",
    "NOT_DUE",
    "STATE",
    "ForwardingStore",
    "RecordingStore",
    "StoreEvent",
    "Via",
    "unwrap_op",
]

CREATE: Final = "create"
NOT_DUE: Final = "not_due"
STATE: Final = "state"
FINISH: Final = "finish"


@attrs.frozen
class StoreEvent:
    """One call the scheduler made to the store's control service, in call order."""

    kind: str  # CREATE, NOT_DUE, STATE or FINISH
    task_id: str
    run_id: int = 0
    now: int = 0  # create_next_run's now
    run: QueuedRun | None = None  # CREATE: the run created
    due_at: int = 0  # NOT_DUE: when the next run is due
    status: RunStatus | None = None  # STATE: the status set


@attrs.frozen
class Via(StoreOp):
    """``op`` performed with the methods of ``via`` (a wrapper), whatever store applies it:
    the inner store's ``apply`` gives the transaction, the wrapper sees every call."""

    op: StoreOp
    via: TaskControlService

    def call(self, store: TaskControlService) -> object:
        return self.op.call(self.via)


def unwrap_op(op: StoreOp) -> StoreOp:
    """The op a chain of :class:`Via` wraps."""
    while isinstance(op, Via):
        op = op.op
    return op


class ForwardingStore:
    """A :class:`~protocols.TaskStore` that forwards every call to ``inner``.

    Subclass it to change a few calls (fail some, delay some, record some). ``apply``
    runs each op through this wrapper's methods inside the inner store's transaction.
    """

    def __init__(self, inner: TaskStore) -> None:
        self.inner = inner

    # -- the control service --------------------------------------------------------

    @property
    def does_io(self) -> bool:
        """The inner store's."""
        return self.inner.does_io

    def apply(self, ops: Sequence[StoreOp]) -> list[object]:
        """The inner store's transaction, each op calling this wrapper's methods."""
        return self.inner.apply([Via(op, self) for op in ops])

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        """The inner store's."""
        return self.inner.create_next_run(task_id, now)

    def update_run_state(self, task_id: str, run_id: int, when: float, status: RunStatus) -> None:
        """The inner store's."""
        self.inner.update_run_state(task_id, run_id, when, status)

    def finish_run(self, task_id: str, run_id: int) -> Run:
        """The inner store's."""
        return self.inner.finish_run(task_id, run_id)

    def next_due_run(self, task_id: str) -> int:
        """The inner store's."""
        return self.inner.next_due_run(task_id)

    def currently_running(self, task_id: str) -> list[Run]:
        """The inner store's."""
        return self.inner.currently_running(task_id)

    def manual_runs(self, task_id: str) -> list[Run]:
        """The inner store's."""
        return self.inner.manual_runs(task_id)

    def claim_state(self, task_id: str) -> ClaimState:
        """The inner store's."""
        return self.inner.claim_state(task_id)

    def add_run_log(self, task_id: str, run_id: int, when: float, message: str) -> None:
        """The inner store's."""
        self.inner.add_run_log(task_id, run_id, when, message)

    def start_run(self, task_id: str, run_id: int, when: float, lines: Sequence[str]) -> None:
        """The inner store's."""
        self.inner.start_run(task_id, run_id, when, lines)

    def complete_run(
        self, task_id: str, run_id: int, when: float, status: RunStatus, lines: Sequence[str]
    ) -> Run | None:
        """The inner store's."""
        return self.inner.complete_run(task_id, run_id, when, status, lines)

    # -- the rest of the store ------------------------------------------------------

    def add_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        """The inner store's."""
        self.inner.add_task(task, latest_completed=latest_completed)

    def update_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        """The inner store's."""
        self.inner.update_task(task, latest_completed=latest_completed)

    def remove_task(self, task_id: str) -> None:
        """The inner store's."""
        self.inner.remove_task(task_id)

    def get_task(self, task_id: str) -> Task:
        """The inner store's."""
        return self.inner.get_task(task_id)

    def list_tasks(self) -> list[Task]:
        """The inner store's."""
        return self.inner.list_tasks()

    def force_run(self, task_id: str, scheduled_for: int) -> Run:
        """The inner store's."""
        return self.inner.force_run(task_id, scheduled_for)

    def retry_run(self, task_id: str, run_id: int) -> Run:
        """The inner store's."""
        return self.inner.retry_run(task_id, run_id)

    def find_runs(self, task_id: str) -> list[Run]:
        """The inner store's."""
        return self.inner.find_runs(task_id)

    def find_run(self, task_id: str, run_id: int) -> Run:
        """The inner store's."""
        return self.inner.find_run(task_id, run_id)


class RecordingStore(ForwardingStore):
    """A :class:`~protocols.TaskStore` that forwards to ``inner`` and records the
    control-service calls that change runs (thread-safe)."""

    def __init__(self, inner: TaskStore) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self._events: list[StoreEvent] = []

    def take_events(self) -> list[StoreEvent]:
        """The events recorded since the last call, oldest first."""
        with self._lock:
            events, self._events = self._events, []
            return events

    def _record(self, event: StoreEvent) -> None:
        with self._lock:
            self._events.append(event)

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        """The inner store's, recorded (a RunNotDueYet too)."""
        try:
            created = self.inner.create_next_run(task_id, now)
        except RunNotDueYet as exc:
            self._record(StoreEvent(NOT_DUE, task_id, now=now, due_at=exc.due_at))
            raise
        run = created.created
        self._record(StoreEvent(CREATE, task_id, run.run_id, now=now, run=run))
        return created

    def update_run_state(self, task_id: str, run_id: int, when: float, status: RunStatus) -> None:
        """The inner store's, recorded."""
        self.inner.update_run_state(task_id, run_id, when, status)
        self._record(StoreEvent(STATE, task_id, run_id, status=RunStatus(status)))

    def finish_run(self, task_id: str, run_id: int) -> Run:
        """The inner store's, recorded."""
        run = self.inner.finish_run(task_id, run_id)
        self._record(StoreEvent(FINISH, task_id, run_id))
        return run

    def start_run(self, task_id: str, run_id: int, when: float, lines: Sequence[str]) -> None:
        """The inner store's, recorded as the state change to started."""
        self.inner.start_run(task_id, run_id, when, lines)
        self._record(StoreEvent(STATE, task_id, run_id, status=RunStatus.STARTED))

    def complete_run(
        self, task_id: str, run_id: int, when: float, status: RunStatus, lines: Sequence[str]
    ) -> Run | None:
        """The inner store's, recorded as the terminal state and the finish (when it
        finished the run: a completion of a finished run changes nothing)."""
        run = self.inner.complete_run(task_id, run_id, when, status, lines)
        if run is not None:
            self._record(StoreEvent(STATE, task_id, run_id, status=RunStatus(status)))
            self._record(StoreEvent(FINISH, task_id, run_id))
        return run
