"""ThreadExecutor: runs Python functions named by the run's script in a thread pool."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, TypeAlias, cast

from protocols.errors import InvalidScript, SchedulerError
from protocols.executors.promise import Promise, PromiseTracker
from protocols.model import QueuedRun, RunResult

__all__ = ["RunFunction", "ThreadExecutor"]

RunFunction: TypeAlias = Callable[[QueuedRun], "Mapping[str, Any] | None"]
"""What a ThreadExecutor runs: takes the run, may return a mapping of statistics."""

_DEFAULT_WORKERS = min(32, (os.cpu_count() or 1) + 4)

_EXPECTED = (
    "expected a 'module:function' reference (such as 'mypackage.jobs:nightly') "
    "or a name registered with ThreadExecutor(functions=...) or ThreadExecutor.register()"
)


class ThreadExecutor:
    """Runs each run's ``script`` as a Python function in a pool of threads.

    The script is a name registered with ``functions=`` or :meth:`register`
    (checked first), or a ``module:function`` reference (``module:Class.method``
    works too) resolved with :mod:`importlib` and cached. :meth:`execute` raises
    :class:`~protocols.errors.InvalidScript` when the script resolves to nothing
    callable.

    The function is called with the :class:`~protocols.QueuedRun`. A returned
    mapping becomes ``RunResult.statistics``, ``None`` means no statistics, and
    anything else fails the run with a :class:`TypeError`; an exception it raises
    becomes ``RunResult(error=exc)``.

    Cancelling a run that has not started yet means it never starts. Cancelling a
    running one cancels its promise at once (``wait`` raises
    :class:`~protocols.errors.RunCanceled`), but the function carries on until it
    returns: Python threads cannot be killed, so a function that may run long
    should be written to stop on its own. Its late result is discarded.
    :meth:`busy` lists the runs whose functions have not returned yet.

    The pool's threads are not daemon threads: the interpreter waits for every
    function still running when it exits. A process that must exit anyway (the
    daemon, see :mod:`actors.daemon`) bounds ``shutdown(timeout=...)`` and then
    ends with :func:`os._exit`.
    """

    def __init__(
        self,
        max_workers: int = _DEFAULT_WORKERS,
        *,
        functions: Mapping[str, RunFunction] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="tickactors-run")
        self._lock = threading.Lock()
        self._functions: dict[str, RunFunction] = dict(functions or {})
        self._resolved: dict[str, RunFunction] = {}
        self._tracker = PromiseTracker()
        self._closed = False
        self._calls: dict[Future[None], QueuedRun] = {}  # functions not returned yet

    def __enter__(self) -> ThreadExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(cancel=True)

    def register(self, name: str, fn: RunFunction) -> None:
        """Make the script ``name`` run ``fn`` (replacing any earlier registration)."""
        if not callable(fn):
            raise TypeError(f"cannot register {name!r}: {fn!r} is not callable")
        with self._lock:
            self._functions[name] = fn

    def resolve(self, script: str) -> RunFunction:
        """The function a script names; raises ``InvalidScript`` if there is none."""
        fn = self._functions.get(script)
        if fn is None:
            fn = self._resolved.get(script)
        if fn is None:
            fn = _import_function(script)
            with self._lock:
                self._resolved[script] = fn
        return fn

    def execute(self, run: QueuedRun) -> Promise:
        """Queue ``run`` on the pool and return its promise."""
        if self._closed:
            raise SchedulerError("ThreadExecutor is shut down: it takes no new runs")
        fn = self.resolve(run.script)
        promise = Promise(run)
        try:
            future = self._pool.submit(_call, fn, promise)
        except RuntimeError as exc:  # the pool was shut down meanwhile
            raise SchedulerError(f"ThreadExecutor is shut down: {exc}") from exc

        def drop_queued(_promise: Promise) -> None:
            future.cancel()  # a no-op once the function started

        with self._lock:
            self._calls[future] = run
        future.add_done_callback(self._call_done)
        promise.on_cancel(drop_queued)
        self._tracker.track(promise)
        return promise

    def _call_done(self, future: Future[None]) -> None:
        with self._lock:
            self._calls.pop(future, None)

    def busy(self) -> list[QueuedRun]:
        """The runs whose functions have not returned yet: queued or running, cancelled or not."""
        with self._lock:
            return list(self._calls.values())

    def wait(self, timeout: float | None = None) -> None:
        """Block until every promise this executor created is done.

        A cancelled run's promise is done at once even if its function is still
        running (see the class docstring). Raises :class:`TimeoutError` if
        ``timeout`` seconds pass first.
        """
        if not self._tracker.wait(timeout):
            raise TimeoutError(f"{len(self._tracker)} runs still in flight after {timeout} s")

    def shutdown(
        self, wait: bool = True, *, cancel: bool = False, timeout: float | None = None
    ) -> None:
        """Take no new runs; optionally cancel the runs in flight; optionally wait.

        ``wait=True`` waits for the pool's threads to finish, including functions
        still running after their run was cancelled: for ever, or at most
        ``timeout`` seconds, after which it raises :class:`TimeoutError` naming the
        runs still running (see :meth:`busy`; their threads carry on).
        """
        self._closed = True
        if cancel:
            for promise in self._tracker.snapshot():
                promise.cancel()
        if not wait or timeout is None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel)
            return
        self._pool.shutdown(wait=False, cancel_futures=cancel)
        with self._lock:
            calls = list(self._calls)
        _done, running = wait_futures(calls, timeout)
        if running:
            with self._lock:
                runs = [self._calls[f] for f in running if f in self._calls]
            if runs:
                names = ", ".join(f"{run.task_id!r} run {run.run_id}" for run in runs)
                raise TimeoutError(
                    f"{len(runs)} run functions still running after {timeout} s: {names}"
                )
        self._pool.shutdown(wait=True)  # every function returned: the threads end now


def _call(fn: RunFunction, promise: Promise) -> None:
    if not promise.set_running():
        return  # cancelled while queued: never runs
    try:
        stats: object = fn(promise.run)
    except BaseException as exc:
        promise.set_result(RunResult(error=exc))
        return
    if stats is None:
        promise.set_result(RunResult())
    elif isinstance(stats, Mapping):
        promise.set_result(RunResult(statistics=stats))
    else:
        promise.set_result(
            RunResult(
                error=TypeError(
                    f"{promise.run.script} returned {type(stats).__name__}: "
                    "a run function returns a mapping of statistics or None"
                )
            )
        )


def _invalid(script: str, reason: str) -> InvalidScript:
    return InvalidScript(f"invalid script {script!r} for ThreadExecutor: {reason}; {_EXPECTED}")


def _import_function(script: str) -> RunFunction:
    module_name, sep, attr_path = script.strip().partition(":")
    if not sep or not module_name or not attr_path:
        raise _invalid(script, "not a registered name")
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:
        raise _invalid(script, f"cannot import module {module_name!r} ({exc})") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise _invalid(script, f"{module_name!r} has no attribute {attr_path!r}") from exc
    if not callable(obj):
        raise _invalid(script, f"{attr_path!r} in {module_name!r} is not callable")
    return cast(RunFunction, obj)
