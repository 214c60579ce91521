"""Promise, full_promise and PromiseTracker."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from protocols.contracts import RunPromise
from protocols.errors import RunCanceled
from protocols.executors import Promise, WaitOnlyPromise, full_promise
from protocols.executors.promise import PromiseTracker
from protocols.model import QueuedRun, RunResult

TIMEOUT = 10.0
RUN = QueuedRun(task_id="t1", run_id=7, scheduled_for=60, due_at=60, script="s")


def run_threads(n: int, fn: Callable[[int], None]) -> None:
    """Run fn(i) in n threads released together, and join them."""
    barrier = threading.Barrier(n)

    def target(i: int) -> None:
        barrier.wait(TIMEOUT)
        fn(i)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)


class Calls:
    """A callback that records the promises it was called with."""

    def __init__(self) -> None:
        self.promises: list[Promise] = []
        self.threads: list[int] = []

    def __call__(self, promise: Promise) -> None:
        self.promises.append(promise)
        self.threads.append(threading.get_ident())


def test_promise_satisfies_run_promise() -> None:
    """Promise has the RunPromise shape and keeps its run."""
    promise = Promise(RUN)
    assert isinstance(promise, RunPromise)
    assert promise.run is RUN
    assert "pending" in repr(promise)


def test_set_result_then_wait_returns_it_every_time() -> None:
    """wait returns the result given to set_result, the same object each call."""
    promise = Promise(RUN)
    result = RunResult(statistics={"n": 1})
    assert promise.set_result(result)
    assert promise.wait() is result
    assert promise.wait(0) is result
    assert promise.done()
    assert not promise.cancelled()


def test_first_completion_wins() -> None:
    """After a result, set_result, set_exception and cancel change nothing."""
    promise = Promise(RUN)
    first = RunResult()
    assert promise.set_result(first)
    assert not promise.set_result(RunResult(error=ValueError()))
    assert not promise.set_exception(OSError())
    promise.cancel()
    assert not promise.cancelled()
    assert promise.wait(0) is first


def test_set_exception_makes_wait_raise_it() -> None:
    """set_exception makes every wait raise that exception."""
    promise = Promise(RUN)
    error = OSError("gone")
    assert promise.set_exception(error)
    for _ in range(2):
        with pytest.raises(OSError, match="gone") as caught:
            promise.wait()
        assert caught.value is error
    assert promise.done()


def test_cancel_makes_wait_raise_run_canceled() -> None:
    """cancel makes wait raise RunCanceled and blocks later completions."""
    promise = Promise(RUN)
    promise.cancel()
    assert promise.cancelled()
    assert promise.done()
    assert not promise.set_result(RunResult())
    with pytest.raises(RunCanceled, match="run 7 of task 't1'"):
        promise.wait(0)


def test_wait_timeout_raises_builtin_timeout_error() -> None:
    """wait(timeout) on a pending promise raises TimeoutError."""
    promise = Promise(RUN)
    with pytest.raises(TimeoutError):
        promise.wait(0)
    with pytest.raises(TimeoutError):
        promise.wait(0.01)


def test_waiters_in_many_threads_all_wake() -> None:
    """Threads blocked in wait all get the result when it arrives."""
    promise = Promise(RUN)
    result = RunResult(statistics={"x": 1})
    got: list[RunResult] = []
    lock = threading.Lock()
    started = threading.Barrier(9)

    def waiter() -> None:
        started.wait(TIMEOUT)
        value = promise.wait(TIMEOUT)
        with lock:
            got.append(value)

    threads = [threading.Thread(target=waiter) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait(TIMEOUT)
    promise.set_result(result)
    for thread in threads:
        thread.join(TIMEOUT)
    assert got == [result] * 8
    assert all(value is result for value in got)


def test_callbacks_called_once_from_completing_thread() -> None:
    """Callbacks run once, in order, in the completing thread."""
    promise = Promise(RUN)
    first, second = Calls(), Calls()
    promise.add_done_callback(first)
    promise.add_done_callback(second)
    completer: list[int] = []

    def complete() -> None:
        completer.append(threading.get_ident())
        promise.set_result(RunResult())

    thread = threading.Thread(target=complete)
    thread.start()
    thread.join(TIMEOUT)
    promise.cancel()
    assert first.promises == [promise]
    assert second.promises == [promise]
    assert first.threads == completer


def test_callback_added_when_done_runs_at_once_in_caller() -> None:
    """A callback added to a done promise runs immediately in the caller's thread."""
    promise = Promise(RUN)
    promise.cancel()
    calls = Calls()
    promise.add_done_callback(calls)
    assert calls.promises == [promise]
    assert calls.threads == [threading.get_ident()]


def test_raising_callback_is_logged_and_does_not_propagate() -> None:
    """A callback that raises is logged; later callbacks still run; completion succeeds."""
    promise = Promise(RUN)

    def bad(_promise: Promise) -> None:
        raise RuntimeError("callback bug")

    calls = Calls()
    promise.add_done_callback(bad)
    promise.add_done_callback(calls)
    with capture_logs() as logs:
        assert promise.set_result(RunResult())
        promise.add_done_callback(bad)
    assert calls.promises == [promise]
    assert len(logs) == 2
    assert logs[0]["event"] == "run promise done callback raised"
    assert logs[0]["task_id"] == "t1"
    assert logs[0]["run_id"] == 7
    assert logs[0]["log_level"] == "error"


def test_concurrent_completions_pick_one_winner() -> None:
    """Of many threads racing to complete, exactly one wins and callbacks fire once."""
    for _ in range(50):
        promise = Promise(RUN)
        calls = Calls()
        promise.add_done_callback(calls)
        wins: list[int] = []

        def race(i: int, promise: Promise = promise, wins: list[int] = wins) -> None:
            if i % 3 == 0:
                won = promise.set_result(RunResult(statistics={"i": i}))
            elif i % 3 == 1:
                won = promise.set_exception(OSError(i))
            else:
                was_done = promise.done()
                promise.cancel()
                won = not was_done and promise.cancelled()
            if won:
                wins.append(i)

        run_threads(6, race)
        assert len(calls.promises) == 1
        assert len(wins) <= 1
        assert promise.done()


def test_on_cancel_hooks() -> None:
    """Cancel hooks run once on cancel, before callbacks; at once if already cancelled."""
    promise = Promise(RUN)
    order: list[str] = []
    promise.on_cancel(lambda p: order.append("hook"))
    promise.add_done_callback(lambda p: order.append("callback"))
    promise.cancel()
    promise.cancel()
    promise.on_cancel(lambda p: order.append("late hook"))
    assert order == ["hook", "callback", "late hook"]


def test_on_cancel_hooks_dropped_on_result() -> None:
    """Cancel hooks never run for a promise that completed otherwise."""
    promise = Promise(RUN)
    hooks: list[Promise] = []
    promise.on_cancel(hooks.append)
    promise.set_result(RunResult())
    promise.cancel()
    promise.on_cancel(hooks.append)
    assert hooks == []


def test_set_running() -> None:
    """set_running succeeds once on a pending promise; a running promise can be cancelled."""
    promise = Promise(RUN)
    assert promise.set_running()
    assert promise.running()
    assert not promise.set_running()
    promise.cancel()
    assert promise.cancelled()
    assert not promise.running()
    cancelled_first = Promise(RUN)
    cancelled_first.cancel()
    assert not cancelled_first.set_running()


class WaitOnly:
    """A wait-only promise backed by a Promise, counting cancel calls."""

    def __init__(self) -> None:
        self.inner = Promise(RUN)
        self.cancels = 0

    @property
    def run(self) -> QueuedRun:
        """The run."""
        return self.inner.run

    def wait(self, timeout: float | None = None) -> RunResult:
        """Wait on the backing promise."""
        return self.inner.wait(timeout)

    def cancel(self) -> None:
        """Cancel the backing promise."""
        self.cancels += 1
        self.inner.cancel()


def test_full_promise_returns_full_promises_unchanged() -> None:
    """full_promise returns a promise that already has add_done_callback as is."""
    promise = Promise(RUN)
    assert full_promise(promise) is promise


def test_full_promise_adapts_wait_only_result() -> None:
    """The adapter completes, and calls back, when the wrapped wait returns."""
    wait_only = WaitOnly()
    assert isinstance(wait_only, WaitOnlyPromise)
    adapted = full_promise(wait_only)
    assert isinstance(adapted, Promise)
    assert adapted.run is RUN
    called = threading.Event()
    adapted.add_done_callback(lambda p: called.set())
    result = RunResult(statistics={"a": 1})
    wait_only.inner.set_result(result)
    assert adapted.wait(TIMEOUT) is result
    assert called.wait(TIMEOUT)


def test_full_promise_adapts_wait_only_errors() -> None:
    """The adapter re-raises what the wrapped wait raises."""
    wait_only = WaitOnly()
    adapted = full_promise(wait_only)
    wait_only.inner.set_exception(OSError("lost"))
    with pytest.raises(OSError, match="lost"):
        adapted.wait(TIMEOUT)


def test_full_promise_adapts_wait_only_cancel() -> None:
    """The wrapped promise being cancelled cancels the adapter, and the other way round."""
    wait_only = WaitOnly()
    adapted = full_promise(wait_only)
    wait_only.inner.cancel()
    with pytest.raises(RunCanceled):
        adapted.wait(TIMEOUT)

    other = WaitOnly()
    adapted_other = full_promise(other)
    adapted_other.cancel()
    assert other.cancels == 1
    with pytest.raises(RunCanceled):
        adapted_other.wait(0)
    with pytest.raises(RunCanceled):
        other.wait(0)


def test_tracker_waits_for_every_promise() -> None:
    """PromiseTracker.wait returns True only once every tracked promise is done."""
    tracker = PromiseTracker()
    assert tracker.wait(0)
    promises = [Promise(RUN) for _ in range(3)]
    for promise in promises:
        tracker.track(promise)
    assert len(tracker) == 3
    assert not tracker.wait(0)
    promises[0].set_result(RunResult())
    promises[1].cancel()
    assert tracker.snapshot() == [promises[2]]
    done = threading.Event()

    def wait_then_set() -> None:
        if tracker.wait(TIMEOUT):
            done.set()

    thread = threading.Thread(target=wait_then_set)
    thread.start()
    promises[2].set_exception(OSError())
    assert done.wait(TIMEOUT)
    thread.join(TIMEOUT)
    assert len(tracker) == 0
    done_already = Promise(RUN)
    done_already.set_result(RunResult())
    tracker.track(done_already)
    assert tracker.wait(0)
