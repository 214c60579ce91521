"""Hostile test doubles: executors whose cancel is slow or raises, loggers and metrics that raise.

Production meets these: a remote job whose cancel completes later, a client library
whose ``cancel()`` raises, a log handler on a full disk, a metrics exporter that
breaks. A scheduler must survive them without running a run twice, jamming a slot,
or losing a record. The state machine
(:mod:`protocols.testing.state_machine`) and the regression tests drive them.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from protocols.contracts import RunPromise
from protocols.executors.promise import Promise
from protocols.model import QueuedRun, RunResult
from protocols.testing.manual import ManualExecutor

__all__ = [
    "CancelFailed",
    "CancelMode",
    "FailingLogger",
    "FailingMetrics",
    "HostileExecutor",
    "LogFailed",
    "MetricsFailed",
]


#: How often a waiting HostileExecutor completes cancels requested while it waits.
_WAIT_SLICE = 0.02


class CancelFailed(RuntimeError):
    """What a :class:`HostileExecutor` promise's ``cancel()`` raises in ``RAISE`` mode."""


class LogFailed(RuntimeError):
    """What a :class:`FailingLogger` raises."""


class MetricsFailed(RuntimeError):
    """What a :class:`FailingMetrics` task series raises."""


class CancelMode(enum.Enum):
    """How a :class:`HostileExecutor`'s promises answer ``cancel()``."""

    #: Cancelled at once (the promise completes in the cancelling thread).
    PROMPT = "prompt"
    #: Accepted; the promise completes (cancelled) only on :meth:`HostileExecutor.finish_cancels`
    #: or :meth:`HostileExecutor.wait`, like a remote job.
    SLOW = "slow"
    #: ``cancel()`` raises :class:`CancelFailed` and the run goes on.
    RAISE = "raise"


class _HostilePromise:
    """A :class:`~protocols.RunPromise` in front of a ManualExecutor's promise."""

    __slots__ = ("_executor", "_inner")

    def __init__(self, executor: HostileExecutor, inner: Promise) -> None:
        self._executor = executor
        self._inner = inner

    @property
    def run(self) -> QueuedRun:
        return self._inner.run

    def wait(self, timeout: float | None = None) -> RunResult:
        return self._inner.wait(timeout)

    def cancel(self) -> None:
        self._executor._cancel_requested(self._inner)

    def add_done_callback(self, fn: Callable[[RunPromise], None]) -> None:
        self._inner.add_done_callback(lambda _inner: fn(self))


class HostileExecutor(ManualExecutor):
    """A :class:`~protocols.testing.manual.ManualExecutor` whose cancel can be slow or raise.

    :attr:`cancel_mode` (a :class:`CancelMode`, ``PROMPT`` by default) decides what a
    promise's ``cancel()`` does when it is called. Slow cancels wait in
    :attr:`pending_cancels` until :meth:`finish_cancels`. :meth:`wait`, as a remote
    executor's would, first completes every pending cancel and cancels the runs whose
    ``cancel()`` raised (the job noticed in the end), so a scheduler's ``stop()``
    ends. :attr:`cancel_calls` counts ``cancel()`` calls by run id; :attr:`overlapping`
    lists every run ``execute`` was called for while that run was still in flight (one
    run executing twice at once; ``execute`` then raises, as a ManualExecutor's does).
    """

    def __init__(self, cancel_mode: CancelMode = CancelMode.PROMPT) -> None:
        super().__init__()
        self.cancel_mode = cancel_mode
        self._lock = threading.Lock()
        self._slow: dict[int, Promise] = {}
        self._refused: dict[int, Promise] = {}
        self.cancel_calls: dict[int, int] = {}
        self.overlapping: list[QueuedRun] = []

    def execute(self, run: QueuedRun) -> Any:
        """The ManualExecutor's promise, behind a hostile ``cancel()``."""
        if any(r.run_id == run.run_id for r in self.running()):
            self.overlapping.append(run)  # list.append is atomic: no lock needed
        return _HostilePromise(self, super().execute(run))

    @property
    def pending_cancels(self) -> list[int]:
        """Run ids whose slow cancel was accepted and has not completed."""
        with self._lock:
            return [run_id for run_id, p in self._slow.items() if not p.done()]

    def finish_cancels(self, run_ids: Iterable[int] | None = None) -> int:
        """Complete slow cancels (all, or those of ``run_ids``); how many completed."""
        with self._lock:
            chosen = list(self._slow) if run_ids is None else list(run_ids)
            promises = [self._slow.pop(run_id) for run_id in chosen if run_id in self._slow]
        done = 0
        for promise in promises:
            if not promise.done():
                promise.cancel()
                done += 1
        return done

    def wait(self, timeout: float | None = None) -> None:
        """Complete pending and refused cancels, then wait as a ManualExecutor does.

        Cancels requested while it waits (a scheduler's stop cancels runs and waits
        at once, and its runners may call ``cancel()`` a moment later) are completed
        too, within ``_WAIT_SLICE`` seconds: a remote job that noticed in the end.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._wait_calls += 1
            self._waiters += 1
            self._cond.notify_all()
        try:
            while True:
                self._complete_requested_cancels()
                with self._cond:
                    if deadline is None:
                        slice_ = _WAIT_SLICE
                    else:
                        slice_ = min(_WAIT_SLICE, max(0.0, deadline - time.monotonic()))
                    if self._cond.wait_for(self._wait_over, slice_):
                        return
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"HostileExecutor.wait: {len(self._in_flight)} runs in flight "
                            f"after {timeout} s"
                        )
        finally:
            with self._cond:
                self._waiters -= 1
                self._cond.notify_all()

    def _complete_requested_cancels(self) -> None:
        self.finish_cancels()
        with self._lock:
            refused, self._refused = list(self._refused.values()), {}
        for promise in refused:
            promise.cancel()

    def _cancel_requested(self, inner: Promise) -> None:
        run_id = inner.run.run_id
        mode = self.cancel_mode
        with self._lock:
            self.cancel_calls[run_id] = self.cancel_calls.get(run_id, 0) + 1
            if mode is CancelMode.SLOW:
                self._slow[run_id] = inner
            elif mode is CancelMode.RAISE:
                self._refused[run_id] = inner
        if mode is CancelMode.PROMPT:
            inner.cancel()
        elif mode is CancelMode.RAISE:
            raise CancelFailed(f"cancel of run {run_id} failed (HostileExecutor)")


class FailingLogger:
    """A structlog-shaped logger that raises :class:`LogFailed` for chosen events.

    ``events``: the event names that raise (``None``: every event). ``bind`` returns
    the same logger, so the failures reach every actor. :attr:`calls` counts the
    calls per event, :attr:`failures` the ones that raised.
    """

    def __init__(self, events: Iterable[str] | None = None, *, enabled: bool = True) -> None:
        self.events = None if events is None else frozenset(events)
        self.enabled = enabled
        self._lock = threading.Condition()
        self.calls: dict[str, int] = {}
        self.failures = 0

    def wait_for(self, event: str, timeout: float, *, count: int = 1) -> bool:
        """Block until ``event`` was logged ``count`` times in all; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self.calls.get(event, 0) >= count, timeout)

    def bind(self, **_: Any) -> FailingLogger:
        return self

    def _log(self, event: str = "", *_: Any, **__: Any) -> None:
        with self._lock:
            self.calls[event] = self.calls.get(event, 0) + 1
            fail = self.enabled and (self.events is None or event in self.events)
            if fail:
                self.failures += 1
            self._lock.notify_all()
        if fail:
            raise LogFailed(f"log handler failed for {event!r} (FailingLogger)")

    debug = info = warning = error = exception = critical = msg = _log


class FailingMetrics:
    """A scheduler's metrics object whose per-task run updates raise while enabled.

    It wraps ``inner`` (anything with ``for_task(task_id)``, e.g. tickactors'
    ``SchedulerMetrics``) and delegates everything to it. The series ``for_task``
    returns update as ``inner``'s do, then raise :class:`MetricsFailed` from
    ``start_run`` and ``finish_run`` while :attr:`enabled`: the values stay right,
    and a scheduler must still record the run, free its slot and count the failure.
    :attr:`failures` counts the updates that raised.
    """

    def __init__(self, inner: Any, *, enabled: bool = True) -> None:
        self._inner = inner
        self.enabled = enabled
        self.failures = 0
        self._lock = threading.Lock()

    def for_task(self, task_id: str) -> _FailingTaskMetrics:
        return _FailingTaskMetrics(self, self._inner.for_task(task_id))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _maybe_fail(self, update: str) -> None:
        with self._lock:
            if not self.enabled:
                return
            self.failures += 1
        raise MetricsFailed(f"metric update {update} failed (FailingMetrics)")


class _FailingTaskMetrics:
    """One task's series, in front of the wrapped metrics object's."""

    __slots__ = ("_inner", "_owner")

    def __init__(self, owner: FailingMetrics, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    def start_run(self, *args: Any) -> None:
        self._inner.start_run(*args)
        self._owner._maybe_fail("start_run")

    def finish_run(self, *args: Any) -> None:
        self._inner.finish_run(*args)
        self._owner._maybe_fail("finish_run")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
