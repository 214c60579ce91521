"""Stock :class:`~protocols.Executor` implementations and the promise they return."""

from __future__ import annotations

from protocols.executors.promise import Promise, PromiseTracker, WaitOnlyPromise, full_promise
from protocols.executors.routing import RoutingExecutor
from protocols.executors.subprocess import CommandFailed, SubprocessExecutor
from protocols.executors.threads import RunFunction, ThreadExecutor

__all__ = [
    "CommandFailed",
    "Promise",
    "PromiseTracker",
    "RoutingExecutor",
    "RunFunction",
    "SubprocessExecutor",
    "ThreadExecutor",
    "WaitOnlyPromise",
    "full_promise",
]
