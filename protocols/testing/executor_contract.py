"""ExecutorContract: the Executor / RunPromise contract as a pytest class to subclass.

Usage, in a test module::

    class TestMyExecutor(ExecutorContract):
        def make_executor(self) -> Executor:
            return MyExecutor()

        def succeed_script(self) -> str:
            return "true"

        def fail_script(self) -> str:
            return "false"

        def hang_script(self) -> str:
            return "sleep 600"  # must end when the run is cancelled

An executor whose outcome is not decided by the script (a test double) overrides
:meth:`ExecutorContract.drive` to settle each run right after ``execute``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from protocols.contracts import Executor, RunPromise
from protocols.errors import RunCanceled
from protocols.model import QueuedRun, RunResult

__all__ = ["ExecutorContract"]

_run_ids = itertools.count(1)


class _Recorder:
    """A done callback that counts its calls and remembers the calling threads."""

    def __init__(self) -> None:
        self.calls: list[RunPromise] = []
        self.threads: list[int] = []
        self.called = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, promise: RunPromise) -> None:
        with self._lock:
            self.calls.append(promise)
            self.threads.append(threading.get_ident())
        self.called.set()


class ExecutorContract:
    """What every :class:`~protocols.Executor` and its promises must do.

    Subclasses implement :meth:`make_executor` and the three scripts, and may
    override :meth:`close_executor` (teardown), :meth:`drive` and :attr:`timeout`.
    """

    timeout: ClassVar[float] = 10.0
    """Upper bound, in seconds, for anything the tests expect to happen."""

    # -- what a subclass provides ------------------------------------------------------

    def make_executor(self) -> Executor:
        """A fresh executor for one test."""
        raise NotImplementedError

    def close_executor(self, executor: Executor) -> None:
        """Release what :meth:`make_executor` made (runs still hanging included)."""

    def succeed_script(self) -> str:
        """A script whose run succeeds quickly."""
        raise NotImplementedError

    def fail_script(self) -> str:
        """A script whose run completes with ``RunResult.error`` set."""
        raise NotImplementedError

    def hang_script(self) -> str:
        """A script whose run does not finish until it is cancelled."""
        raise NotImplementedError

    def drive(self, executor: Executor, promise: RunPromise) -> None:
        """Called right after each ``execute``: settle the run if the executor needs it."""

    # -- helpers -----------------------------------------------------------------------

    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        """The executor under test, closed after the test."""
        executor = self.make_executor()
        try:
            yield executor
        finally:
            self.close_executor(executor)

    def start(self, executor: Executor, script: str, task_id: str = "contract") -> RunPromise:
        """Execute a new run of ``script`` and drive it."""
        run = QueuedRun(
            task_id=task_id, run_id=next(_run_ids), scheduled_for=60, due_at=60, script=script
        )
        promise = executor.execute(run)
        self.drive(executor, promise)
        return promise

    def _in_threads(self, n: int, fn: Callable[[], object]) -> list[object]:
        """Call ``fn`` in ``n`` threads at once; return what each returned or raised."""
        outcomes: list[object] = [None] * n
        barrier = threading.Barrier(n)

        def target(i: int) -> None:
            barrier.wait(self.timeout)
            try:
                outcomes[i] = fn()
            except BaseException as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout)
        assert not any(t.is_alive() for t in threads), "a thread did not finish in time"
        return outcomes

    # -- the contract ------------------------------------------------------------------

    def test_promise_is_a_run_promise_for_the_run(self, executor: Executor) -> None:
        """execute returns a RunPromise whose run is the run executed."""
        promise = self.start(executor, self.succeed_script())
        assert isinstance(promise, RunPromise)
        assert promise.run.script == self.succeed_script()
        assert promise.run.task_id == "contract"
        promise.wait(self.timeout)

    def test_success_resolves_without_error(self, executor: Executor) -> None:
        """A succeeding run resolves to a RunResult with no error."""
        result = self.start(executor, self.succeed_script()).wait(self.timeout)
        assert isinstance(result, RunResult)
        assert result.error is None

    def test_failure_resolves_with_error(self, executor: Executor) -> None:
        """A failing run resolves (wait returns) to a RunResult carrying the error."""
        result = self.start(executor, self.fail_script()).wait(self.timeout)
        assert isinstance(result.error, BaseException)

    def test_wait_returns_the_same_result_every_time(self, executor: Executor) -> None:
        """Repeated waits return equal results."""
        promise = self.start(executor, self.succeed_script())
        first = promise.wait(self.timeout)
        assert promise.wait(self.timeout) == first
        assert promise.wait(0) == first

    def test_wait_from_many_threads_returns_the_same_result(self, executor: Executor) -> None:
        """Threads waiting at once all get the same result."""
        promise = self.start(executor, self.fail_script())
        outcomes = self._in_threads(8, lambda: promise.wait(self.timeout))
        first = outcomes[0]
        assert isinstance(first, RunResult)
        assert first.error is not None
        assert all(outcome == first for outcome in outcomes)

    def test_wait_times_out_with_timeout_error(self, executor: Executor) -> None:
        """wait(timeout) on a run still going raises the builtin TimeoutError."""
        promise = self.start(executor, self.hang_script())
        with pytest.raises(TimeoutError):
            promise.wait(0.05)
        with pytest.raises(TimeoutError):
            promise.wait(0)
        promise.cancel()

    def test_cancel_makes_wait_raise_run_canceled(self, executor: Executor) -> None:
        """After cancel, every wait raises RunCanceled."""
        promise = self.start(executor, self.hang_script())
        promise.cancel()
        with pytest.raises(RunCanceled):
            promise.wait(self.timeout)
        with pytest.raises(RunCanceled):
            promise.wait(self.timeout)

    def test_cancel_wakes_every_waiting_thread(self, executor: Executor) -> None:
        """Threads blocked in wait all raise RunCanceled when the run is cancelled."""
        promise = self.start(executor, self.hang_script())
        waiting = threading.Barrier(5)

        def wait_after_barrier() -> object:
            waiting.wait(self.timeout)
            return promise.wait(self.timeout)

        results: list[list[object]] = []
        runner = threading.Thread(
            target=lambda: results.append(self._in_threads(4, wait_after_barrier))
        )
        runner.start()
        waiting.wait(self.timeout)
        promise.cancel()
        runner.join(self.timeout)
        assert not runner.is_alive()
        assert len(results[0]) == 4
        assert all(isinstance(outcome, RunCanceled) for outcome in results[0])

    def test_cancel_calls_callbacks_exactly_once(self, executor: Executor) -> None:
        """A callback added before cancel fires once, however often cancel is called."""
        promise = self.start(executor, self.hang_script())
        recorder = _Recorder()
        promise.add_done_callback(recorder)
        self._in_threads(4, promise.cancel)
        promise.cancel()
        assert recorder.called.wait(self.timeout)
        with pytest.raises(RunCanceled):
            promise.wait(self.timeout)
        assert recorder.calls == [promise]

    def test_callback_fires_once_on_completion(self, executor: Executor) -> None:
        """A callback added right after execute fires exactly once, with the promise."""
        promise = self.start(executor, self.succeed_script())
        recorder = _Recorder()
        promise.add_done_callback(recorder)
        promise.wait(self.timeout)
        assert recorder.called.wait(self.timeout)
        promise.cancel()
        assert recorder.calls == [promise]

    def test_callback_added_after_completion_fires_at_once(self, executor: Executor) -> None:
        """A callback added to a finished promise runs immediately, in the caller's thread."""
        promise = self.start(executor, self.succeed_script())
        promise.wait(self.timeout)
        recorder = _Recorder()
        promise.add_done_callback(recorder)
        assert recorder.calls == [promise]
        assert recorder.threads == [threading.get_ident()]

    def test_callback_added_after_cancel_fires_at_once(self, executor: Executor) -> None:
        """A callback added to a cancelled promise runs immediately, in the caller's thread."""
        promise = self.start(executor, self.hang_script())
        promise.cancel()
        with pytest.raises(RunCanceled):
            promise.wait(self.timeout)
        recorder = _Recorder()
        promise.add_done_callback(recorder)
        assert recorder.calls == [promise]
        assert recorder.threads == [threading.get_ident()]

    def test_cancel_after_completion_is_a_no_op(self, executor: Executor) -> None:
        """Cancelling a finished promise changes nothing."""
        promise = self.start(executor, self.succeed_script())
        result = promise.wait(self.timeout)
        promise.cancel()
        assert promise.wait(self.timeout) == result
        assert result.error is None

    def test_executor_wait_with_nothing_in_flight_returns(self, executor: Executor) -> None:
        """executor.wait() returns at once when nothing was executed."""
        outcome = self._in_threads(1, executor.wait)
        assert outcome == [None]

    def test_executor_wait_blocks_until_every_promise_is_done(self, executor: Executor) -> None:
        """executor.wait() returns only once every promise it created is done."""
        finished = [self.start(executor, self.succeed_script()) for _ in range(3)]
        failed = self.start(executor, self.fail_script())
        hanging = self.start(executor, self.hang_script())
        returned = threading.Event()

        def wait_for_executor() -> None:
            executor.wait()
            returned.set()

        waiter = threading.Thread(target=wait_for_executor)
        waiter.start()
        for promise in [*finished, failed]:
            promise.wait(self.timeout)
        assert not returned.wait(0.1), "executor.wait() returned with a run still in flight"
        hanging.cancel()
        assert returned.wait(self.timeout), "executor.wait() did not return after the last run"
        waiter.join(self.timeout)
