"""The data model: immutable attrs classes shared by stores, executors and actors.

Times used for scheduling are ``int`` Unix seconds (UTC); times recorded about
what happened (``started_at``, log lines) are ``float`` Unix seconds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from protocols.options import TaskOptions

__all__ = [
    "ClaimState",
    "LogEntry",
    "QueuedRun",
    "Run",
    "RunCreation",
    "RunResult",
    "RunStatus",
    "Task",
    "TaskStatus",
]


class TaskStatus(str, enum.Enum):
    """Whether a task creates runs."""

    ACTIVE = "active"
    INACTIVE = "inactive"


class RunStatus(str, enum.Enum):
    """A run goes scheduled -> started -> one of success, failed, canceled."""

    SCHEDULED = "scheduled"
    STARTED = "started"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        """True for success, failed and canceled."""
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED})


@attrs.frozen
class Task:
    """A task: what to run (``script``) and when (``options``)."""

    id: str
    options: TaskOptions
    status: TaskStatus = attrs.field(default=TaskStatus.ACTIVE, converter=TaskStatus)
    script: str = ""

    @property
    def active(self) -> bool:
        """True when the task creates runs."""
        return self.status is TaskStatus.ACTIVE


@attrs.frozen
class QueuedRun:
    """A run that has an id but has not necessarily started.

    ``scheduled_for`` is the slot the run is for; ``due_at`` when it became due;
    ``requested_at`` is non-zero for manual runs; ``script`` is the task's script.
    ``resumed_from`` is set (to the ``started_at`` the store holds) when the run was
    started before, by a process that is gone, with its outcome unknown: it is being
    executed again, and its log says so. ``execution`` numbers the executions of the
    run (1 for the first): with the run id it names this execution (a job can use it
    to act idempotently).
    """

    task_id: str
    run_id: int
    scheduled_for: int
    due_at: int
    requested_at: int = 0
    script: str = ""
    resumed_from: float | None = None
    execution: int = 1

    @property
    def is_manual(self) -> bool:
        """True for a run queued by ``force_run`` or ``retry_run``."""
        return self.requested_at != 0


@attrs.frozen
class RunCreation:
    """What ``create_next_run`` returns: the run, the next due time, whether a queue waits."""

    created: QueuedRun
    next_due: int
    has_queue: bool


@attrs.frozen
class LogEntry:
    """One line of a run's log."""

    when: float
    message: str


def _log_tuple(value: Iterable[LogEntry]) -> tuple[LogEntry, ...]:
    return tuple(value)


@attrs.frozen
class Run:
    """A run as the store records it.

    ``executions``: how many times ``start_run`` started it (more than one: it was
    executed again after the process running it died).
    """

    id: int
    task_id: str
    status: RunStatus = attrs.field(converter=RunStatus)
    scheduled_for: int
    requested_at: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    log: tuple[LogEntry, ...] = attrs.field(default=(), converter=_log_tuple)
    executions: int = 0


def _freeze_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen
class RunResult:
    """What a :class:`~protocols.RunPromise` resolves to.

    ``error`` is set when the run failed; ``statistics`` is logged as one JSON line
    on success.
    """

    error: BaseException | None = None
    retryable: bool = False
    statistics: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_mapping, hash=False)


@attrs.frozen
class ClaimState:
    """What a scheduler reads of a task when it claims it (``claim_state``), in one call.

    ``next_due``: the due time of the next scheduled slot; ``has_queue``: whether
    manual runs wait; ``unstarted``: runs in progress never started (status
    scheduled), and ``started``: the other runs in progress (started, or with an
    outcome recorded by a process that died before finishing them), each by id.
    """

    next_due: int
    has_queue: bool
    unstarted: tuple[Run, ...] = ()
    started: tuple[Run, ...] = ()

    @property
    def in_progress(self) -> tuple[Run, ...]:
        """Every run in progress: never started, then started."""
        return self.unstarted + self.started
