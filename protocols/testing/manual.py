"""ManualExecutor: the deterministic executor for tests; runs end when the test says so."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from protocols.errors import RunNotFound
from protocols.executors.promise import Promise
from protocols.model import QueuedRun, RunResult

__all__ = ["ManualExecutor"]


class ManualExecutor:
    """An :class:`~protocols.Executor` whose promises complete only when told to.

    ``execute`` records the run and returns a pending :class:`~protocols.Promise`.
    The test then settles it with :meth:`succeed`, :meth:`fail` (the result carries
    an error), :meth:`fail_wait` (``wait`` raises) or :meth:`cancel`; done callbacks
    run synchronously in the thread that calls those. :meth:`fail_next_execute`
    makes the next ``execute`` raise.

    It records every ``execute`` call (:attr:`executed`), the runs in flight
    (:meth:`running`, :meth:`promise`) and, per task, the most runs it ever had in
    flight at once (:attr:`max_in_flight`). :meth:`wait` blocks until nothing is in
    flight and the wait gate (:meth:`block_wait` / :meth:`release_wait`) is open.
    :meth:`wait_until` blocks until a predicate on the executor holds, woken by
    every change of state (no sleep-polling). Everything is thread-safe.

    Run ids must be unique among the runs in flight (``execute`` raises
    ``ValueError`` otherwise); stores hand out unique ids.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._executed: list[QueuedRun] = []
        self._promises: dict[int, Promise] = {}
        self._in_flight: dict[int, Promise] = {}
        self._per_task: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self._execute_errors: deque[BaseException] = deque()
        self._gate_open = True
        self._waiters = 0
        self._wait_calls = 0

    # -- the Executor contract ---------------------------------------------------------

    def execute(self, run: QueuedRun) -> Promise:
        """Record ``run`` and return its pending promise (or raise a queued error)."""
        with self._cond:
            self._executed.append(run)
            self._cond.notify_all()
            if self._execute_errors:
                raise self._execute_errors.popleft()
            if run.run_id in self._in_flight:
                raise ValueError(
                    f"ManualExecutor: run id {run.run_id} (task {run.task_id!r}) is already "
                    "in flight; run ids must be unique among runs in flight"
                )
            promise = Promise(run)
            self._promises[run.run_id] = promise
            self._in_flight[run.run_id] = promise
            count = self._per_task.get(run.task_id, 0) + 1
            self._per_task[run.task_id] = count
            if count > self._max_in_flight.get(run.task_id, 0):
                self._max_in_flight[run.task_id] = count
        # Registered first, so the executor's books are up to date before any callback
        # added by the caller runs.
        promise.add_done_callback(self._finished)
        return promise

    def wait(self, timeout: float | None = None) -> None:
        """Block until no run is in flight and the wait gate is open.

        Raises :class:`TimeoutError` if ``timeout`` seconds pass first.
        """
        with self._cond:
            self._wait_calls += 1
            self._waiters += 1
            self._cond.notify_all()
            try:
                if not self._cond.wait_for(self._wait_over, timeout):
                    raise TimeoutError(
                        f"ManualExecutor.wait: {len(self._in_flight)} runs in flight, "
                        f"gate {'open' if self._gate_open else 'closed'} after {timeout} s"
                    )
            finally:
                self._waiters -= 1
                self._cond.notify_all()

    # -- settling runs -----------------------------------------------------------------

    def succeed(self, run_id: int, statistics: Mapping[str, Any] | None = None) -> bool:
        """Complete the run successfully; ``False`` if its promise was already done."""
        return self._pending(run_id).set_result(RunResult(statistics=statistics or {}))

    def fail(self, run_id: int, error: BaseException | str, *, retryable: bool = False) -> bool:
        """Complete the run with ``RunResult(error=...)`` (a string becomes a RuntimeError)."""
        if isinstance(error, str):
            error = RuntimeError(error)
        return self._pending(run_id).set_result(RunResult(error=error, retryable=retryable))

    def fail_wait(self, run_id: int, error: BaseException) -> bool:
        """Make the run's ``wait`` raise ``error``."""
        return self._pending(run_id).set_exception(error)

    def cancel(self, run_id: int) -> bool:
        """Cancel the run's promise; ``False`` if it was already done."""
        promise = self._pending(run_id)
        if promise.done():
            return False
        promise.cancel()
        return promise.cancelled()

    def succeed_all(self, task_id: str | None = None) -> int:
        """Complete every run in flight (of ``task_id`` if given); return how many."""
        return sum(self.succeed(run.run_id) for run in self.running(task_id))

    def fail_next_execute(self, error: BaseException) -> None:
        """Make the next ``execute`` call raise ``error`` (calls queue up, in order)."""
        with self._cond:
            self._execute_errors.append(error)

    # -- the wait gate -----------------------------------------------------------------

    def block_wait(self) -> None:
        """Make :meth:`wait` block, even with nothing in flight, until released."""
        with self._cond:
            self._gate_open = False
            self._cond.notify_all()

    def release_wait(self) -> None:
        """Let :meth:`wait` return again once nothing is in flight."""
        with self._cond:
            self._gate_open = True
            self._cond.notify_all()

    # -- what happened -----------------------------------------------------------------

    @property
    def executed(self) -> list[QueuedRun]:
        """Every run passed to ``execute``, in call order (failed calls included)."""
        with self._cond:
            return list(self._executed)

    @property
    def max_in_flight(self) -> dict[str, int]:
        """Per task id, the most runs it had in flight at once."""
        with self._cond:
            return dict(self._max_in_flight)

    @property
    def waiters(self) -> int:
        """How many threads are blocked in :meth:`wait` right now."""
        with self._cond:
            return self._waiters

    @property
    def wait_calls(self) -> int:
        """How many times :meth:`wait` was called."""
        with self._cond:
            return self._wait_calls

    def running(self, task_id: str | None = None) -> list[QueuedRun]:
        """The runs in flight (of ``task_id`` if given), in the order they started."""
        with self._cond:
            return [
                p.run
                for p in self._in_flight.values()
                if task_id is None or p.run.task_id == task_id
            ]

    def promise(self, run_id: int) -> Promise:
        """The promise ``execute`` returned for ``run_id`` (in flight or done)."""
        with self._cond:
            try:
                return self._promises[run_id]
            except KeyError:
                raise RunNotFound(
                    run_id=run_id, message=f"ManualExecutor never executed run {run_id}"
                ) from None

    def wait_until(self, predicate: Callable[[ManualExecutor], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds; ``False`` if ``timeout`` passed first.

        The predicate is re-evaluated on every change of state (execute, a promise
        done, wait entered or left, gate changes), under the executor's lock, so it
        may call this executor's methods but must not block.
        """
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    # -- internals ---------------------------------------------------------------------

    def _pending(self, run_id: int) -> Promise:
        with self._cond:
            try:
                return self._in_flight[run_id]
            except KeyError:
                raise RunNotFound(
                    run_id=run_id, message=f"ManualExecutor has no run {run_id} in flight"
                ) from None

    def _wait_over(self) -> bool:
        return self._gate_open and not self._in_flight

    def _finished(self, promise: Promise) -> None:
        run = promise.run
        with self._cond:
            if self._in_flight.get(run.run_id) is promise:
                del self._in_flight[run.run_id]
                self._per_task[run.task_id] -= 1
            self._cond.notify_all()
