"""Stock :class:`~protocols.Executor` implementations and the promise they return."""

from __future__ import annotations

from protocols.executors.promise import Promise, WaitOnlyPromise, full_promise
from protocols.executors.subprocess import SubprocessExecutor
from protocols.executors.threads import ThreadExecutor

__all__ = ["Promise", "SubprocessExecutor", "ThreadExecutor", "WaitOnlyPromise", "full_promise"]
