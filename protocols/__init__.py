"""tickactors' boundary with the outside world.

The data model, the contracts a store and an executor satisfy, the errors,
schedule arithmetic, and the stock stores and executors. Nothing here imports
``actors``.
"""

from __future__ import annotations

from protocols.contracts import Executor, RunPromise, TaskControlService, TaskStore
from protocols.errors import (
    InvalidScript,
    InvalidTaskOptions,
    RunAlreadyQueued,
    RunCanceled,
    RunNotDueYet,
    RunNotFinished,
    RunNotFound,
    SchedulerError,
    SchedulerNotStarted,
    SchedulerTimeout,
    StoreError,
    StoreLocked,
    StoreTooNew,
    TaskAlreadyClaimed,
    TaskAlreadyExists,
    TaskNotClaimed,
    TaskNotFound,
)
from protocols.executors import (
    CommandFailed,
    Promise,
    SubprocessExecutor,
    ThreadExecutor,
    WaitOnlyPromise,
    full_promise,
)
from protocols.model import (
    ClaimState,
    LogEntry,
    QueuedRun,
    Run,
    RunCreation,
    RunResult,
    RunStatus,
    Task,
    TaskStatus,
)
from protocols.options import TaskOptions
from protocols.stores import MemoryStore, SQLiteStore

__all__ = [
    "ClaimState",
    "CommandFailed",
    "Executor",
    "InvalidScript",
    "InvalidTaskOptions",
    "LogEntry",
    "MemoryStore",
    "Promise",
    "QueuedRun",
    "Run",
    "RunAlreadyQueued",
    "RunCanceled",
    "RunCreation",
    "RunNotDueYet",
    "RunNotFinished",
    "RunNotFound",
    "RunPromise",
    "RunResult",
    "RunStatus",
    "SchedulerError",
    "SchedulerNotStarted",
    "SchedulerTimeout",
    "SQLiteStore",
    "StoreError",
    "StoreLocked",
    "StoreTooNew",
    "SubprocessExecutor",
    "Task",
    "TaskAlreadyClaimed",
    "TaskAlreadyExists",
    "TaskControlService",
    "TaskNotClaimed",
    "TaskNotFound",
    "TaskOptions",
    "TaskStatus",
    "TaskStore",
    "ThreadExecutor",
    "WaitOnlyPromise",
    "full_promise",
]
