"""ManualExecutor: the executor contract, and its test controls."""

from __future__ import annotations

import threading
import time

import pytest

from protocols.contracts import Executor, RunPromise
from protocols.errors import RunCanceled, RunNotFound
from protocols.model import QueuedRun, RunResult
from protocols.testing.executor_contract import ExecutorContract
from protocols.testing.hostile import CancelFailed, CancelMode, HostileExecutor
from protocols.testing.manual import ManualExecutor

TIMEOUT = 10.0


def make_run(run_id: int, task_id: str = "t1") -> QueuedRun:
    """A run of ``task_id`` with the given id."""
    return QueuedRun(task_id=task_id, run_id=run_id, scheduled_for=60, due_at=60, script="x")


class TestManualExecutorContract(ExecutorContract):
    """ManualExecutor, settled by drive() according to the script."""

    def make_executor(self) -> Executor:
        """A fresh ManualExecutor."""
        return ManualExecutor()

    def succeed_script(self) -> str:
        """Settled with succeed()."""
        return "succeed"

    def fail_script(self) -> str:
        """Settled with fail()."""
        return "fail"

    def hang_script(self) -> str:
        """Left pending."""
        return "hang"

    def drive(self, executor: Executor, promise: RunPromise) -> None:
        """Settle the run as its script says."""
        assert isinstance(executor, ManualExecutor)
        if promise.run.script == "succeed":
            executor.succeed(promise.run.run_id, {"rows": 1})
        elif promise.run.script == "fail":
            executor.fail(promise.run.run_id, ValueError("boom"))


def wait_in_thread(ex: ManualExecutor) -> tuple[threading.Thread, threading.Event]:
    """Start a thread calling ex.wait(); the event is set when it returns."""
    returned = threading.Event()

    def target() -> None:
        ex.wait()
        returned.set()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, returned


@pytest.fixture
def ex() -> ManualExecutor:
    """A fresh ManualExecutor."""
    return ManualExecutor()


def test_promises_stay_pending_until_told(ex: ManualExecutor) -> None:
    """A promise is pending until succeed() is called."""
    promise = ex.execute(make_run(1))
    with pytest.raises(TimeoutError):
        promise.wait(0)
    assert ex.succeed(1, {"rows": 3})
    assert promise.wait(0) == RunResult(statistics={"rows": 3})


def test_fail_sets_result_error(ex: ManualExecutor) -> None:
    """fail() resolves the promise to a result carrying the error."""
    promise = ex.execute(make_run(1))
    error = ValueError("bad")
    ex.fail(1, error)
    assert promise.wait(0).error is error


def test_fail_accepts_a_message(ex: ManualExecutor) -> None:
    """fail() with a string makes a RuntimeError of it."""
    promise = ex.execute(make_run(1))
    ex.fail(1, "broken")
    error = promise.wait(0).error
    assert isinstance(error, RuntimeError)
    assert str(error) == "broken"


def test_fail_wait_makes_wait_raise(ex: ManualExecutor) -> None:
    """fail_wait() makes every wait raise the error."""
    promise = ex.execute(make_run(1))
    error = OSError("lost")
    ex.fail_wait(1, error)
    for _ in range(2):
        with pytest.raises(OSError, match="lost") as caught:
            promise.wait(0)
        assert caught.value is error


def test_cancel_cancels_the_promise(ex: ManualExecutor) -> None:
    """cancel(run_id) cancels the promise and takes the run out of flight."""
    promise = ex.execute(make_run(1))
    assert ex.cancel(1)
    with pytest.raises(RunCanceled):
        promise.wait(0)
    assert ex.running() == []


def test_settling_twice_raises_run_not_found(ex: ManualExecutor) -> None:
    """A run no longer in flight cannot be settled again."""
    ex.execute(make_run(1))
    ex.succeed(1)
    with pytest.raises(RunNotFound):
        ex.succeed(1)
    with pytest.raises(RunNotFound):
        ex.cancel(1)


def test_fail_next_execute_raises_once(ex: ManualExecutor) -> None:
    """fail_next_execute() makes only the next execute raise, and the call is recorded."""
    ex.fail_next_execute(ConnectionError("down"))
    with pytest.raises(ConnectionError, match="down"):
        ex.execute(make_run(1))
    promise = ex.execute(make_run(2))
    assert [run.run_id for run in ex.executed] == [1, 2]
    assert ex.running() == [promise.run]


def test_duplicate_run_id_in_flight_is_refused(ex: ManualExecutor) -> None:
    """Executing a run id already in flight raises ValueError."""
    ex.execute(make_run(1))
    with pytest.raises(ValueError, match="already in flight"):
        ex.execute(make_run(1, task_id="other"))


def test_callbacks_run_in_the_settling_thread(ex: ManualExecutor) -> None:
    """Done callbacks run synchronously in the thread calling succeed()."""
    promise = ex.execute(make_run(1))
    seen: list[tuple[int, list[QueuedRun]]] = []
    promise.add_done_callback(lambda p: seen.append((threading.get_ident(), ex.running())))
    ex.succeed(1)
    assert seen == [(threading.get_ident(), [])]


def test_running_and_promise_lookups(ex: ManualExecutor) -> None:
    """running() filters by task; promise() finds in-flight and finished runs."""
    p1 = ex.execute(make_run(1, "a"))
    p2 = ex.execute(make_run(2, "b"))
    p3 = ex.execute(make_run(3, "a"))
    assert ex.running() == [p1.run, p2.run, p3.run]
    assert ex.running("a") == [p1.run, p3.run]
    ex.succeed(1)
    assert ex.running("a") == [p3.run]
    assert ex.promise(1) is p1
    assert ex.promise(2) is p2
    with pytest.raises(RunNotFound):
        ex.promise(99)


def test_max_in_flight_per_task(ex: ManualExecutor) -> None:
    """max_in_flight keeps the peak number of concurrent runs of each task."""
    ex.execute(make_run(1, "a"))
    ex.execute(make_run(2, "a"))
    ex.execute(make_run(3, "b"))
    ex.succeed(1)
    ex.execute(make_run(4, "a"))
    ex.succeed_all("a")
    ex.execute(make_run(5, "a"))
    assert ex.max_in_flight == {"a": 2, "b": 1}
    assert ex.succeed_all() == 2
    assert ex.running() == []


def test_wait_blocks_until_runs_finish(ex: ManualExecutor) -> None:
    """wait() blocks while a run is in flight and returns once it is done."""
    ex.execute(make_run(1))
    waiter, returned = wait_in_thread(ex)
    assert ex.wait_until(lambda e: e.waiters == 1, TIMEOUT)
    assert not returned.is_set()
    ex.succeed(1)
    assert returned.wait(TIMEOUT)
    waiter.join(TIMEOUT)
    assert ex.wait_calls == 1


def test_wait_gate_holds_wait_until_released(ex: ManualExecutor) -> None:
    """block_wait() holds wait() even with nothing in flight, until release_wait()."""
    ex.block_wait()
    with pytest.raises(TimeoutError):
        ex.wait(0)
    waiter, returned = wait_in_thread(ex)
    assert ex.wait_until(lambda e: e.waiters == 1, TIMEOUT)
    assert not returned.is_set()
    ex.release_wait()
    assert returned.wait(TIMEOUT)
    waiter.join(TIMEOUT)
    assert ex.waiters == 0


def test_wait_until_is_woken_by_execute(ex: ManualExecutor) -> None:
    """wait_until() returns True as soon as another thread's execute satisfies it."""
    thread = threading.Thread(target=lambda: ex.execute(make_run(7, "late")))
    thread.start()
    assert ex.wait_until(lambda e: bool(e.running("late")), TIMEOUT)
    thread.join(TIMEOUT)


def test_wait_until_times_out(ex: ManualExecutor) -> None:
    """wait_until() returns False when the predicate never holds."""
    assert not ex.wait_until(lambda e: bool(e.running()), 0.01)


def test_concurrent_executes_and_settles(ex: ManualExecutor) -> None:
    """Many threads executing and settling keep the books straight."""
    n = 50

    def work(base: int) -> None:
        for i in range(n):
            run_id = base * 1000 + i
            ex.execute(make_run(run_id, f"t{base}"))
            ex.succeed(run_id)

    threads = [threading.Thread(target=work, args=(b,)) for b in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert len(ex.executed) == 4 * n
    assert ex.running() == []
    assert ex.max_in_flight == {f"t{b}": 1 for b in range(4)}
    ex.wait(TIMEOUT)


@pytest.mark.parametrize("mode", [CancelMode.SLOW, CancelMode.RAISE])
def test_hostile_wait_completes_cancels_requested_while_it_waits(mode: CancelMode) -> None:
    """HostileExecutor.wait() returns once a cancel requested during the wait completes:
    a scheduler's stop cancels and waits at once, its runners cancel a moment later."""
    executor = HostileExecutor(mode)
    promise = executor.execute(QueuedRun(task_id="t1", run_id=1, scheduled_for=10, due_at=10))
    waiter = threading.Thread(target=executor.wait, kwargs={"timeout": 30.0})
    waiter.start()
    deadline = time.monotonic() + 30.0
    while executor.waiters == 0:  # bounded: until the waiter is inside wait()
        assert time.monotonic() < deadline, "wait() was never entered"
        time.sleep(0.001)
    try:
        promise.cancel()
    except CancelFailed:
        assert mode is CancelMode.RAISE
    waiter.join(30.0)
    assert not waiter.is_alive(), "wait() never returned: a cancel requested while waiting"
    with pytest.raises(RunCanceled):
        promise.wait(0)
