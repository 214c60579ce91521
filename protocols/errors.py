"""The errors of tickactors: one root, :class:`SchedulerError`.

Errors that resemble a builtin also subclass it (``TaskNotFound`` is a
``LookupError``, ``InvalidTaskOptions`` a ``ValueError``), so callers can catch
either the precise class or the familiar builtin.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

__all__ = [
    "InvalidScript",
    "InvalidTaskOptions",
    "RunAlreadyQueued",
    "RunCanceled",
    "RunNotDueYet",
    "RunNotFinished",
    "RunNotFound",
    "SchedulerError",
    "SchedulerNotStarted",
    "SchedulerTimeout",
    "StoreError",
    "StoreLocked",
    "StoreTooNew",
    "TaskAlreadyClaimed",
    "TaskAlreadyExists",
    "TaskNotClaimed",
    "TaskNotFound",
]


class SchedulerError(Exception):
    """The root of every error tickactors raises on purpose."""


class RunCanceled(SchedulerError):
    """A run was cancelled before it produced a result."""

    def __init__(self, message: str = "run canceled") -> None:
        super().__init__(message)


class TaskNotClaimed(SchedulerError):
    """An operation needs a task this scheduler has claimed, and it has not."""

    def __init__(self, task_id: str = "", message: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(
            message
            or f"task not claimed: {task_id!r} is not claimed by this scheduler "
            "(claim it with claim_task first)"
        )


class TaskAlreadyClaimed(SchedulerError):
    """``claim_task`` was called for a task this scheduler already holds."""

    def __init__(self, task_id: str = "", message: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(
            message
            or f"task already claimed: {task_id!r} is already claimed by this scheduler "
            "(use update_task to change it)"
        )


class TaskNotFound(SchedulerError, LookupError):
    """The task is unknown to the store (or to the scheduler)."""

    def __init__(self, task_id: str = "", message: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(message or f"task not found: no task with id {task_id!r}")


class RunNotFound(SchedulerError, LookupError):
    """The run is unknown (or, for ``cancel_run``, not in flight)."""

    def __init__(
        self, task_id: str = "", run_id: int | None = None, message: str | None = None
    ) -> None:
        self.task_id = task_id
        self.run_id = run_id
        super().__init__(
            message or f"run not found: task {task_id!r} has no run with id {run_id!r}"
        )


class RunNotDueYet(SchedulerError):
    """``create_next_run`` was asked for a run before the next slot is due.

    ``due_at`` is the Unix second at which the next run becomes due.
    """

    def __init__(self, due_at: int, message: str | None = None) -> None:
        self.due_at = int(due_at)
        if message is None:
            when = datetime.datetime.fromtimestamp(self.due_at, datetime.UTC)
            message = f"run not due until {when.isoformat()} ({self.due_at})"
        super().__init__(message)


class RunAlreadyQueued(SchedulerError):
    """A manual run for the same slot is already waiting in the queue."""

    def __init__(
        self, task_id: str = "", scheduled_for: int | None = None, message: str | None = None
    ) -> None:
        self.task_id = task_id
        self.scheduled_for = scheduled_for
        super().__init__(
            message
            or f"run already queued: task {task_id!r} already has a manual run "
            f"for {scheduled_for!r} waiting"
        )


class RunNotFinished(SchedulerError, ValueError):
    """``retry_run`` was given a run that has not reached a terminal state."""

    def __init__(
        self, task_id: str = "", run_id: int | None = None, message: str | None = None
    ) -> None:
        self.task_id = task_id
        self.run_id = run_id
        super().__init__(
            message
            or f"run not finished: run {run_id!r} of task {task_id!r} is still in flight; "
            "only a finished run (success, failed or canceled) can be retried"
        )


class TaskAlreadyExists(SchedulerError, ValueError):
    """``add_task`` was given an id the store already holds."""

    def __init__(self, task_id: str = "", message: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(
            message
            or f"task already exists: the store already holds a task with id {task_id!r} "
            "(use update_task to change it)"
        )


class InvalidScript(SchedulerError, ValueError):
    """An executor cannot make sense of a run's script."""


class InvalidTaskOptions(SchedulerError, ValueError):
    """Task options are invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[str] | str) -> None:
        if isinstance(problems, str):
            problems = [problems]
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("invalid options: " + "; ".join(self.problems))


class SchedulerNotStarted(SchedulerError, RuntimeError):
    """The scheduler was never started, or has been stopped."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "scheduler not started: call start() first (a stopped scheduler cannot "
            "be restarted; create a new one on the same store)"
        )


class SchedulerTimeout(SchedulerError, TimeoutError):
    """A call to the scheduler got no answer in time (an actor is wedged or overloaded).

    ``call`` names the call, ``timeout`` the seconds waited.
    """

    def __init__(
        self, call: str = "", timeout: float | None = None, message: str | None = None
    ) -> None:
        self.call = call
        self.timeout = timeout
        super().__init__(
            message
            or f"scheduler timeout: {call} got no answer within {timeout} s; an actor is "
            "blocked (a store or executor call that does not return?) or the process is "
            "overloaded (raise Scheduler(call_timeout=...) if calls are legitimately slow)"
        )


class StoreError(SchedulerError, OSError):
    """A store could not read or write its database (locked, read-only, corrupt, full).

    ``path`` names the database; the message says what failed and what to check.
    Nothing already committed is lost: the scheduler counts the error
    (``error_type="store error"``) and retries on later ticks.
    """

    def __init__(self, path: str = "", message: str | None = None) -> None:
        self.path = path
        super().__init__(message or f"store error: {path}")


class StoreLocked(StoreError):
    """Another process holds the database for writing (one writer per database file).

    ``holder`` describes that process (pid, host, start time) as it recorded itself.
    """

    def __init__(self, path: str = "", holder: str = "", message: str | None = None) -> None:
        self.holder = holder
        super().__init__(
            path,
            message
            or f"store locked: {path} is already open for writing by another process "
            f"({holder or 'holder unknown'}); one scheduler writes a database file: stop "
            "it, or give this one another file (readers such as the CLI may open it with "
            "writer=False)",
        )


class StoreTooNew(StoreError):
    """The database was written by a newer tickactors (its schema version is unknown here)."""

    def __init__(
        self, path: str = "", found: int = 0, supported: int = 0, message: str | None = None
    ) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            message
            or f"store too new: {path} has schema version {found}, this tickactors knows "
            f"versions up to {supported}; upgrade tickactors (the file was not modified)",
        )
