"""The concrete :class:`~protocols.RunPromise`, and an adapter for wait-only promises.

:class:`Promise` is what the stock executors return. It is thread-safe and cheap:
one plain lock per promise, a :class:`threading.Condition` built only when some
thread actually blocks in :meth:`Promise.wait`, and no thread of its own. The
scheduler never blocks in ``wait``: it is told through
:meth:`Promise.add_done_callback`.

Executors complete a promise with :meth:`Promise.set_result` (the run produced a
:class:`~protocols.RunResult`, failed or not) or :meth:`Promise.set_exception`
(waiting itself fails: ``wait`` raises that exception), and learn about a cancel
through :meth:`Promise.on_cancel`. The first of set_result, set_exception and
cancel wins; the others return ``False`` (or do nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, cast, runtime_checkable

import structlog

from protocols.contracts import RunPromise
from protocols.errors import RunCanceled
from protocols.model import QueuedRun, RunResult

__all__ = ["Promise", "PromiseTracker", "WaitOnlyPromise", "full_promise"]

_log = structlog.get_logger(__name__)

# States, in order: everything from _RESULT on is "done".
_PENDING = 0
_RUNNING = 1
_RESULT = 2
_EXCEPTION = 3
_CANCELLED = 4

_STATE_NAMES = ("pending", "running", "finished", "failed to wait", "cancelled")


class Promise:
    """A thread-safe :class:`~protocols.RunPromise` that executors complete.

    - ``wait(timeout=None)`` blocks until the promise is done and returns the same
      :class:`~protocols.RunResult` on every call, from any number of threads;
      raises :class:`~protocols.errors.RunCanceled` once cancelled, the exception
      given to :meth:`set_exception` if there was one, and :class:`TimeoutError`
      when ``timeout`` seconds pass first.
    - ``cancel()`` is thread-safe and a no-op once the promise is done.
    - ``add_done_callback(fn)`` calls ``fn(promise)`` exactly once when the promise
      is done: at once in the caller's thread if it already is, otherwise in the
      thread that completes (or cancels) it. A callback that raises is logged and
      never propagates into the completing thread.
    """

    __slots__ = (
        "_callbacks",
        "_cancel_hooks",
        "_cond",
        "_exception",
        "_lock",
        "_result",
        "_state",
        "run",
    )

    def __init__(self, run: QueuedRun) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._cond: threading.Condition | None = None
        self._state = _PENDING
        self._result: RunResult | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Promise], None]] | None = None
        self._cancel_hooks: list[Callable[[Promise], None]] | None = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} task_id={self.run.task_id!r} run_id={self.run.run_id} "
            f"{_STATE_NAMES[self._state]}>"
        )

    # -- the RunPromise contract -------------------------------------------------------

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until done; return the result, or raise (see the class docstring)."""
        with self._lock:
            if self._state < _RESULT:
                if self._cond is None:
                    self._cond = threading.Condition(self._lock)
                if not self._cond.wait_for(self._is_done, timeout):
                    raise TimeoutError(
                        f"run {self.run.run_id} of task {self.run.task_id!r} "
                        f"did not finish within {timeout} s"
                    )
            state = self._state
            if state == _RESULT:
                return cast(RunResult, self._result)
            if state == _EXCEPTION:
                raise cast(BaseException, self._exception)
        raise RunCanceled(f"run {self.run.run_id} of task {self.run.task_id!r} was canceled")

    def cancel(self) -> None:
        """Cancel the promise unless it is done: cancel hooks run, then callbacks."""
        self._complete(_CANCELLED, None, None)

    def add_done_callback(self, fn: Callable[[Promise], None]) -> None:
        """Call ``fn(self)`` once when done; at once, in this thread, if already done."""
        with self._lock:
            if self._state < _RESULT:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        self._call(fn, "done callback")

    # -- the executor side -------------------------------------------------------------

    def set_result(self, result: RunResult) -> bool:
        """Complete with ``result``; ``False`` (and nothing changes) if already done."""
        return self._complete(_RESULT, result, None)

    def set_exception(self, exc: BaseException) -> bool:
        """Make ``wait`` raise ``exc``; ``False`` (and nothing changes) if already done."""
        return self._complete(_EXCEPTION, None, exc)

    def set_running(self) -> bool:
        """Mark a pending promise as started; ``False`` if it is not pending any more.

        An executor that queues work calls this just before starting it, and skips
        the work when it returns ``False`` (the promise was cancelled while queued).
        A running promise can still be cancelled.
        """
        with self._lock:
            if self._state == _PENDING:
                self._state = _RUNNING
                return True
            return False

    def on_cancel(self, fn: Callable[[Promise], None]) -> None:
        """Call ``fn(self)`` once if the promise is cancelled (at once if it already was).

        Hooks run in the cancelling thread before the done callbacks; they should be
        quick (send a signal, set a flag). They are dropped when the promise
        completes any other way.
        """
        with self._lock:
            state = self._state
            if state < _RESULT:
                if self._cancel_hooks is None:
                    self._cancel_hooks = [fn]
                else:
                    self._cancel_hooks.append(fn)
                return
        if state == _CANCELLED:
            self._call(fn, "cancel hook")

    def done(self) -> bool:
        """True once the promise has a result, an exception, or was cancelled."""
        return self._state >= _RESULT

    def cancelled(self) -> bool:
        """True if the promise was cancelled."""
        return self._state == _CANCELLED

    def running(self) -> bool:
        """True between :meth:`set_running` and completion."""
        return self._state == _RUNNING

    # -- internals ---------------------------------------------------------------------

    def _is_done(self) -> bool:
        return self._state >= _RESULT

    def _complete(self, state: int, result: RunResult | None, exc: BaseException | None) -> bool:
        with self._lock:
            if self._state >= _RESULT:
                return False
            self._state = state
            self._result = result
            self._exception = exc
            if self._cond is not None:
                self._cond.notify_all()
            callbacks, self._callbacks = self._callbacks, None
            hooks, self._cancel_hooks = self._cancel_hooks, None
        if hooks and state == _CANCELLED:
            for hook in hooks:
                self._call(hook, "cancel hook")
        if callbacks:
            for fn in callbacks:
                self._call(fn, "done callback")
        return True

    def _call(self, fn: Callable[[Promise], None], what: str) -> None:
        try:
            fn(self)
        except Exception:
            _log.exception(
                f"run promise {what} raised",
                task_id=self.run.task_id,
                run_id=self.run.run_id,
                callback=repr(fn),
            )


@runtime_checkable
class WaitOnlyPromise(Protocol):
    """A promise that can only be waited on and cancelled (no ``add_done_callback``).

    :func:`full_promise` turns one into a :class:`~protocols.RunPromise`.
    """

    @property
    def run(self) -> QueuedRun: ...

    def wait(self, timeout: float | None = None) -> RunResult: ...

    def cancel(self) -> None: ...


class _WaitAdapter(Promise):
    """A :class:`Promise` completed by a thread blocked in the wrapped promise's ``wait``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: WaitOnlyPromise) -> None:
        super().__init__(inner.run)
        self._inner = inner
        self.on_cancel(_cancel_inner)
        threading.Thread(
            target=self._wait_inner,
            name=f"tickactors-promise-{inner.run.task_id}-{inner.run.run_id}",
            daemon=True,
        ).start()

    def _wait_inner(self) -> None:
        try:
            result = self._inner.wait()
        except RunCanceled:
            self.cancel()
        except BaseException as exc:
            self.set_exception(exc)
        else:
            self.set_result(result)


def _cancel_inner(promise: Promise) -> None:
    cast(_WaitAdapter, promise)._inner.cancel()


def full_promise(promise: RunPromise | WaitOnlyPromise) -> RunPromise:
    """Return ``promise`` itself if it has ``add_done_callback``, else an adapter.

    The adapter is a :class:`Promise` completed when ``promise.wait()`` returns
    (result), raises :class:`~protocols.errors.RunCanceled` (cancelled) or raises
    anything else (``wait`` raises it too); cancelling the adapter cancels
    ``promise``. It costs one daemon thread per run in flight, blocked in
    ``promise.wait()``: fine for tens or hundreds of concurrent runs; an executor
    meant for thousands should implement ``add_done_callback`` itself.
    """
    if callable(getattr(promise, "add_done_callback", None)):
        return cast(RunPromise, promise)
    return _WaitAdapter(promise)


class PromiseTracker:
    """The promises an executor created that are not done yet; ``wait`` for none left.

    A promise leaves the tracker from its done callback, so tracking costs one
    callback and one short lock per run.
    """

    __slots__ = ("_cond", "_live")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._live: set[Promise] = set()

    def __len__(self) -> int:
        return len(self._live)

    def track(self, promise: Promise) -> None:
        """Count ``promise`` until it is done."""
        with self._cond:
            self._live.add(promise)
        promise.add_done_callback(self._discard)

    def snapshot(self) -> list[Promise]:
        """The promises not done yet."""
        with self._cond:
            return list(self._live)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no tracked promise is pending; ``False`` if ``timeout`` passed."""
        with self._cond:
            return self._cond.wait_for(self._empty, timeout)

    def _empty(self) -> bool:
        return not self._live

    def _discard(self, promise: Promise) -> None:
        with self._cond:
            self._live.discard(promise)
            if not self._live:
                self._cond.notify_all()
