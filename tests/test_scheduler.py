"""The Scheduler facade: lifecycle, every error path, resume, manual runs, robustness."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest
from prometheus_client import CollectorRegistry

from actors import Scheduler
from actors._base import Handler
from actors.scheduler_actor import SchedulerActor
from actors.task_actor import TaskActor
from protocols import (
    MemoryStore,
    QueuedRun,
    RunAlreadyQueued,
    RunCreation,
    RunNotFound,
    RunStatus,
    SchedulerError,
    SchedulerNotStarted,
    Task,
    TaskAlreadyClaimed,
    TaskNotClaimed,
    TaskNotFound,
    TaskOptions,
    TaskStatus,
)
from protocols.messages import Tick
from protocols.testing.manual import ManualExecutor
from tests.conftest import Harness


def _task(task_id: str = "t1", **options: Any) -> Task:
    options.setdefault("every", 1)
    return Task(id=task_id, options=TaskOptions(name=task_id, **options), script="job")


def _runtime_threads() -> set[threading.Thread]:
    """The live worker threads of every Scheduler's runtime (they are named tickactors-worker-N).

    Tests compare the set before and after, so a thread left by another test or started
    by a library cannot fail them, while a thread the runtime under test leaks does.
    """
    return {t for t in threading.enumerate() if t.name.startswith("tickactors-worker-")}


# -- lifecycle ----------------------------------------------------------------------------


def test_calls_before_start_raise_scheduler_not_started() -> None:
    """Every blocking call before start() raises SchedulerNotStarted."""
    scheduler = Scheduler(MemoryStore(), ManualExecutor(), now=5)
    with pytest.raises(SchedulerNotStarted):
        scheduler.claim_task(_task())
    with pytest.raises(SchedulerNotStarted):
        scheduler.claim_tasks([_task()])
    with pytest.raises(SchedulerNotStarted):
        scheduler.update_task(_task())
    with pytest.raises(SchedulerNotStarted):
        scheduler.release_task("t1")
    with pytest.raises(SchedulerNotStarted):
        scheduler.cancel_run("t1", 1)


def test_calls_after_stop_raise_and_start_again_is_refused() -> None:
    """After stop(), every blocking call raises SchedulerNotStarted and start() SchedulerError."""
    store = MemoryStore()
    store.add_task(_task(), latest_completed=5)
    scheduler = Scheduler(store, ManualExecutor(), now=5)
    scheduler.start()
    scheduler.claim_task(_task())
    scheduler.stop()
    with pytest.raises(SchedulerNotStarted):
        scheduler.claim_task(_task())
    with pytest.raises(SchedulerNotStarted):
        scheduler.claim_tasks([_task()])
    with pytest.raises(SchedulerNotStarted):
        scheduler.update_task(_task())
    with pytest.raises(SchedulerNotStarted):
        scheduler.release_task("t1")
    with pytest.raises(SchedulerNotStarted):
        scheduler.cancel_run("t1", 1)
    with pytest.raises(SchedulerError, match="runs once"):
        scheduler.start()


def test_stop_before_start_and_twice_does_nothing() -> None:
    """stop() before start() and a second stop() are no-ops; start() still works after the first."""
    store = MemoryStore()
    store.add_task(_task(), latest_completed=5)
    executor = ManualExecutor()
    scheduler = Scheduler(store, executor, now=5)
    scheduler.stop()
    scheduler.start()
    scheduler.claim_task(_task())
    scheduler.tick(6)
    assert scheduler.settle(30)
    assert [run.scheduled_for for run in executor.running()] == [6]
    scheduler.stop()
    scheduler.stop()
    assert scheduler.now() == 6
    assert [run.status for run in store.find_runs("t1")] == [RunStatus.CANCELED]


def test_context_manager_starts_and_stops() -> None:
    """`with Scheduler(...)` starts one worker thread and stops it, leaving no thread behind."""
    before = _runtime_threads()
    store = MemoryStore()
    store.add_task(_task(), latest_completed=5)
    executor = ManualExecutor()
    with Scheduler(store, executor, now=5) as scheduler:
        started = _runtime_threads() - before
        assert len(started) == 1
        scheduler.claim_task(_task())
        scheduler.tick(6)
        assert scheduler.settle(30)
        assert len(executor.running()) == 1
    assert [t for t in started if t.is_alive()] == []
    assert _runtime_threads() - before == set()
    assert executor.running() == []
    assert store.find_runs("t1")[0].status is RunStatus.CANCELED


def test_tick_before_start_and_after_stop_is_ignored() -> None:
    """A tick before start() or after stop() raises nothing, moves no clock and starts no run."""
    store = MemoryStore(clock=lambda: 1_000_000.0)
    task = _task()
    store.add_task(task, latest_completed=5)
    executor = ManualExecutor()
    scheduler = Scheduler(store, executor, now=5)
    scheduler.tick(100)
    scheduler.start()
    try:
        scheduler.claim_task(task)
        assert scheduler.settle(30)
        assert scheduler.now() == 5
        assert executor.executed == []
        scheduler.tick(6)
        assert scheduler.settle(30)
        assert [run.scheduled_for for run in executor.executed] == [6]
    finally:
        scheduler.stop()
    scheduler.tick(100)
    assert scheduler.settle(30)
    assert scheduler.now() == 6
    assert [run.scheduled_for for run in executor.executed] == [6]
    assert [(run.scheduled_for, run.status) for run in store.find_runs(task.id)] == [
        (6, RunStatus.CANCELED)
    ]
    assert store.next_due_run(task.id) == 7


def test_ticks_never_move_the_clock_backwards(harness: Harness) -> None:
    """A tick earlier than the last one is ignored: now() stays where it was, nothing runs."""
    task = harness.add_task(every=10, latest_completed=0)
    harness.scheduler.claim_task(task)
    harness.tick(10)
    assert harness.running() == [10]
    harness.tick(8)
    assert harness.scheduler.now() == 10
    harness.executor.succeed(harness.run_id(10))
    harness.tick(9)
    assert harness.scheduler.now() == 10
    assert harness.running() == []
    assert [run.scheduled_for for run in harness.executor.executed] == [10]


# -- errors -------------------------------------------------------------------------------


def test_claim_twice_is_task_already_claimed_and_counted(harness: Harness) -> None:
    """A second claim raises TaskAlreadyClaimed (before asking the store) and counts a failure."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    harness.store.remove_task(task.id)  # the store would now say TaskNotFound
    with pytest.raises(TaskAlreadyClaimed):
        harness.scheduler.claim_task(task)
    assert harness.metric("task_scheduler_claims_complete_total", {"status": "failure"}) == 1
    assert harness.metric("task_scheduler_claims_active") == 1


def test_claim_unknown_task_is_task_not_found_and_changes_nothing(harness: Harness) -> None:
    """Claiming a task the store does not know raises TaskNotFound; it is not claimed."""
    with pytest.raises(TaskNotFound):
        harness.scheduler.claim_task(_task("ghost"))
    assert harness.metric("task_scheduler_claims_complete_total", {"status": "failure"}) == 1
    assert harness.metric("task_scheduler_claims_active") == 0
    with pytest.raises(TaskNotClaimed):
        harness.scheduler.release_task("ghost")


def test_update_and_release_unclaimed_task_raise_task_not_claimed(harness: Harness) -> None:
    """update_task and release_task of an unclaimed task raise TaskNotClaimed."""
    harness.add_task()
    with pytest.raises(TaskNotClaimed):
        harness.scheduler.update_task(_task())
    with pytest.raises(TaskNotClaimed):
        harness.scheduler.release_task("t1")


def test_cancel_run_of_unclaimed_task_or_run_not_in_flight_raises(harness: Harness) -> None:
    """cancel_run: a task not claimed -> TaskNotFound, a run not in flight -> RunNotFound."""
    task = harness.add_task()
    with pytest.raises(TaskNotFound):
        harness.scheduler.cancel_run(task.id, 1)
    harness.scheduler.claim_task(task)
    with pytest.raises(RunNotFound):
        harness.scheduler.cancel_run(task.id, 12345)


def test_release_then_claim_again(harness: Harness) -> None:
    """A released task can be claimed again; the old claim's reports do not interfere."""
    task = harness.add_task(concurrency=2)
    harness.scheduler.claim_task(task)
    harness.tick(6)
    first = harness.run_id(6)
    harness.scheduler.release_task(task.id)
    assert harness.status(first) is RunStatus.CANCELED
    harness.scheduler.claim_task(task)
    harness.tick(7)
    assert harness.running() == [7]
    assert [run.scheduled_for for run in harness.executor.executed] == [6, 7]
    assert harness.metric("task_scheduler_claims_active") == 1


# -- manual runs ----------------------------------------------------------------------------


def test_force_run_on_claimed_task_is_picked_up(harness: Harness) -> None:
    """Scheduler.force_run queues the run and the task starts it without a tick."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    run = harness.scheduler.force_run(task.id, 100)
    harness.settle()
    assert harness.running() == [100]
    assert harness.run_id(100) == run.id
    assert run.requested_at != 0
    assert harness.scheduler.now() == 5


def test_force_run_waits_for_a_free_slot_and_refuses_a_duplicate(harness: Harness) -> None:
    """A manual run waits while the only slot is busy; forcing its slot again raises."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    first = harness.scheduler.force_run(task.id, 100)
    second = harness.scheduler.force_run(task.id, 200)
    harness.settle()
    assert harness.running() == [100]
    with pytest.raises(RunAlreadyQueued):
        harness.scheduler.force_run(task.id, 200)
    assert [run.id for run in harness.store.manual_runs(task.id)] == [second.id]
    harness.executor.succeed(first.id)
    harness.settle()
    assert harness.running() == [200]


def test_manual_runs_never_move_the_schedule(harness: Harness) -> None:
    """A manual run for a future slot does not skip scheduled slots (InfluxDB #23545)."""
    task = harness.add_task(concurrency=3)
    harness.scheduler.claim_task(task)
    harness.scheduler.force_run(task.id, 1_000)
    harness.settle()
    harness.executor.succeed(harness.run_id(1_000))
    harness.tick(7)
    assert harness.running() == [6, 7]


def test_retry_run_queues_a_copy(harness: Harness) -> None:
    """retry_run of a finished run starts a copy under a new id for the same slot."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    harness.tick(6)
    first = harness.run_id(6)
    harness.executor.fail(first, "boom")
    harness.settle()
    retried = harness.scheduler.retry_run(task.id, first)
    harness.settle()
    assert retried.id != first
    assert harness.executor.running(task.id)[0].run_id == retried.id
    assert harness.running() == [6]


def test_manual_run_waits_while_task_inactive(harness: Harness) -> None:
    """An inactive task does not serve its queue until it is made active again."""
    task = harness.add_task(status=TaskStatus.INACTIVE)
    harness.scheduler.claim_task(task)
    harness.scheduler.force_run(task.id, 3)
    harness.settle()
    assert harness.running() == []
    active = Task(id=task.id, options=task.options, script=task.script)
    harness.store.update_task(active)
    harness.scheduler.update_task(active)
    harness.settle()
    assert harness.running() == [3]


# -- resume, concurrency, updates ----------------------------------------------------------


def test_claim_resumes_runs_in_progress_beyond_the_slots() -> None:
    """Runs left in progress by a crash are resumed on claim, all of them, slot by slot."""
    store = MemoryStore()
    task = _task(concurrency=2)
    store.add_task(task, latest_completed=0)
    created = [store.create_next_run(task.id, 10).created for _ in range(3)]
    executor = ManualExecutor()
    with Scheduler(store, executor, now=10) as scheduler:
        scheduler.claim_task(task)
        assert scheduler.settle(30)
        resumed = executor.running(task.id)
        assert [r.run_id for r in resumed] == [created[0].run_id, created[1].run_id]
        assert [r.scheduled_for for r in resumed] == [1, 2]
        executor.succeed(created[0].run_id)
        assert scheduler.settle(30)
        assert [r.run_id for r in executor.running(task.id)] == [
            created[1].run_id,
            created[2].run_id,
        ]
        assert executor.max_in_flight[task.id] == 2


def test_a_resumed_started_run_is_executed_again_and_its_log_says_so() -> None:
    """A run left started by a dead process runs again, knows it (resumed_from), and its
    log says when it first started; a run never started is resumed without that line."""
    store = MemoryStore()
    task = _task(concurrency=2)
    store.add_task(task, latest_completed=0)
    started, created = (store.create_next_run(task.id, 10).created for _ in range(2))
    store.update_run_state(task.id, started.run_id, 7.5, RunStatus.STARTED)
    executor = ManualExecutor()
    with Scheduler(store, executor, now=10) as scheduler:
        scheduler.claim_task(task)
        assert scheduler.settle(30)
        by_id = {run.run_id: run for run in executor.running(task.id)}
        assert by_id[started.run_id].resumed_from == 7.5
        assert by_id[created.run_id].resumed_from is None
        log = [entry.message for entry in store.find_run(task.id, started.run_id).log]
        assert log[0] == (
            "Resumed after restart: started at 1970-01-01T00:00:07.500000+00:00, "
            "outcome unknown; executing again"
        )
        assert log[1].startswith("Started task from script")
        fresh = [entry.message for entry in store.find_run(task.id, created.run_id).log]
        assert not any(line.startswith("Resumed") for line in fresh)


def test_a_run_whose_executions_never_complete_is_abandoned_not_executed_again() -> None:
    """A run found started after max_executions executions whose outcome is unknown (a
    job that kills its process each time) is completed failed, saying why; one below
    the bound is executed again, numbered."""
    store = MemoryStore()
    task = _task(concurrency=2)
    store.add_task(task, latest_completed=0)
    poison, again = (store.create_next_run(task.id, 10).created for _ in range(2))
    for _ in range(3):
        store.start_run(task.id, poison.run_id, 1.0, ["started"])
    store.start_run(task.id, again.run_id, 2.0, ["started"])
    executor = ManualExecutor()
    with Scheduler(store, executor, now=10, max_executions=3) as scheduler:
        scheduler.claim_task(task)
        assert scheduler.settle(30)
        resumed = executor.executed[0]  # then the next slot takes the freed slot
        assert (resumed.run_id, resumed.execution) == (again.run_id, 2)
        assert poison.run_id not in {r.run_id for r in executor.executed}
        abandoned = store.find_run(task.id, poison.run_id)
        assert abandoned.status is RunStatus.FAILED
        assert abandoned.log[-1].message.startswith("Abandoned after 3 executions")
        assert poison.run_id not in {r.id for r in store.currently_running(task.id)}
    with pytest.raises(ValueError, match="max_executions"):
        Scheduler(store, executor, max_executions=0)


def test_shrinking_concurrency_cancels_nothing_and_is_honoured(harness: Harness) -> None:
    """Lowering concurrency lets runs in flight finish, and no new run starts above the limit."""
    task = harness.add_task(concurrency=3, latest_completed=2)
    harness.scheduler.claim_task(task)
    harness.settle()
    assert harness.running() == [3, 4, 5]
    smaller = _task(concurrency=1)
    harness.store.update_task(smaller)
    harness.scheduler.update_task(smaller)
    harness.tick(7)
    assert harness.running() == [3, 4, 5]
    harness.executor.succeed(harness.run_id(3))
    harness.settle()
    assert harness.running() == [4, 5]
    harness.executor.succeed(harness.run_id(4))
    harness.executor.succeed(harness.run_id(5))
    harness.settle()
    assert harness.running() == [6]
    assert harness.executor.max_in_flight[task.id] == 3


def test_deactivating_stops_new_runs(harness: Harness) -> None:
    """An active task updated to inactive creates no further runs."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    harness.tick(6)
    inactive = Task(id=task.id, options=task.options, status=TaskStatus.INACTIVE, script="job")
    harness.store.update_task(inactive)
    harness.scheduler.update_task(inactive)
    harness.executor.succeed(harness.run_id(6))
    harness.tick(9)
    assert harness.running() == []
    assert len(harness.executor.executed) == 1


def test_finished_run_immediately_takes_the_next_due_one(harness: Harness) -> None:
    """When a run ends (even failed), the slot takes the next due run without waiting for a tick."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    harness.tick(8)
    assert harness.running() == [6]
    harness.executor.fail(harness.run_id(6), "boom")
    harness.settle()
    assert harness.running() == [7]
    harness.executor.succeed(harness.run_id(7))
    harness.settle()
    assert harness.running() == [8]


# -- scale and robustness -------------------------------------------------------------------


class _CountingStore(MemoryStore):
    """A MemoryStore that records every create_next_run call, as (task_id, now)."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: 1_000_000.0)
        self._creates_lock = threading.Lock()
        self._creates: list[tuple[str, int]] = []

    @property
    def creates(self) -> list[tuple[str, int]]:
        """The create_next_run calls so far, in call order."""
        with self._creates_lock:
            return list(self._creates)

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        with self._creates_lock:
            self._creates.append((task_id, now))
        return super().create_next_run(task_id, now)


class _FlakyStore(_CountingStore):
    """A counting MemoryStore whose chosen methods raise while ``broken`` holds their names."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()

    def _check(self, name: str) -> None:
        if name in self.broken:
            raise OSError(f"{name} is down")

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        self._check("create_next_run")
        return super().create_next_run(task_id, now)

    def update_run_state(self, *args: Any) -> None:
        self._check("update_run_state")
        super().update_run_state(*args)

    def finish_run(self, task_id: str, run_id: int) -> Any:
        self._check("finish_run")
        return super().finish_run(task_id, run_id)

    def start_run(self, *args: Any) -> None:
        self._check("start_run")
        super().start_run(*args)

    def complete_run(self, *args: Any) -> Any:
        self._check("complete_run")
        return super().complete_run(*args)


class _StoreHarness(Harness):
    """A Harness whose scheduler runs on the store given (a MemoryStore subclass)."""

    def __init__(self, store: _CountingStore) -> None:
        self.store: _CountingStore = store
        self.executor = ManualExecutor()
        self.registry = CollectorRegistry()
        self.scheduler = Scheduler(self.store, self.executor, now=5, registry=self.registry)


@pytest.fixture
def make_store_harness() -> Iterator[Callable[[_CountingStore], _StoreHarness]]:
    """A factory of started harnesses on a given store, all stopped at teardown."""
    made: list[_StoreHarness] = []

    def make(store: _CountingStore) -> _StoreHarness:
        h = _StoreHarness(store)
        h.scheduler.start()
        made.append(h)
        return h

    yield make
    for h in made:
        h.executor.release_wait()
        h.scheduler.stop()


def test_ticks_with_nothing_due_cost_no_store_call(
    make_store_harness: Callable[[_CountingStore], _StoreHarness],
) -> None:
    """With 10,000 claimed tasks none of which is due, ticks ask the store for no run."""
    h = make_store_harness(_CountingStore())
    for i in range(10_000):
        task = h.add_task(f"t{i}", every=3600, latest_completed=5)
        h.scheduler.claim_task(task)
    h.settle()
    h.tick(6)
    h.tick(3599)
    assert h.store.creates == []
    h.tick(3600)
    assert sorted(h.store.creates) == sorted((f"t{i}", 3600) for i in range(10_000))
    assert len(h.executor.running()) == 10_000


def test_runs_in_flight_hold_no_thread_each(harness: Harness) -> None:
    """A hundred runs in flight add no runtime thread: runners wait on callbacks, not in wait()."""
    before = _runtime_threads()
    assert before  # the harness's worker: the filter does see the runtime's threads
    task = harness.add_task(concurrency=100, latest_completed=0)
    harness.scheduler.claim_task(task)
    harness.tick(100)
    assert len(harness.executor.running()) == 100
    assert _runtime_threads() - before == set()


def test_store_failures_are_counted_and_the_scheduler_goes_on() -> None:
    """A store that raises never kills an actor: a failed create is counted and tried
    again on the next tick; a failed completion keeps its slot busy and is retried on
    later ticks (1, 2, 4 ... seconds apart) until it is recorded, the run never
    executed twice."""
    store = _FlakyStore()
    executor = ManualExecutor()
    registry = CollectorRegistry()
    task = _task()
    store.add_task(task, latest_completed=5)

    def errors() -> float | None:
        return registry.get_sample_value(
            "task_scheduler_errors_counter_total", {"error_type": "store error"}
        )

    with Scheduler(store, executor, now=5, registry=registry) as scheduler:

        def tick(now: int) -> None:
            scheduler.tick(now)
            assert scheduler.settle(30)

        scheduler.claim_task(task)
        store.broken = {"create_next_run"}
        tick(6)
        assert executor.executed == []
        assert errors() == 1

        store.broken = {"complete_run"}
        tick(7)
        assert [r.scheduled_for for r in executor.running()] == [6]
        executor.succeed(executor.running()[0].run_id)
        assert scheduler.settle(30)
        assert errors() == 2
        # The completion is not recorded: the slot stays busy, nothing else starts.
        assert executor.running() == []
        (in_progress,) = store.currently_running("t1")
        assert (in_progress.scheduled_for, in_progress.status) == (6, RunStatus.STARTED)
        tick(8)  # the wait starts at the first tick after the failure: 1 s
        assert errors() == 2
        tick(9)  # the first retry: fails again
        assert errors() == 3
        tick(10)  # the next waits 2 s
        tick(11)
        assert errors() == 3

        store.broken = set()
        tick(12)  # recorded; the freed slot takes slot 7 at once
        assert errors() == 3
        assert store.find_run("t1", in_progress.id).status is RunStatus.SUCCESS
        assert [r.scheduled_for for r in executor.running()] == [7]
        assert [r.scheduled_for for r in executor.executed] == [6, 7]


def test_execute_raising_fails_the_run_and_counts_an_error(harness: Harness) -> None:
    """An executor whose execute raises fails the run with the reason; the slot is freed."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    harness.executor.fail_next_execute(ValueError("no such script"))
    harness.tick(6)
    (run,) = harness.store.find_runs(task.id)
    assert run.status is RunStatus.FAILED
    assert run.log[-1].message == "Run failed to begin execution: no such script"
    errors = harness.metric("task_scheduler_errors_counter_total", {"error_type": "internal error"})
    assert errors == 1
    harness.tick(7)
    assert harness.running() == [7]


def test_offset_delays_the_due_time(harness: Harness) -> None:
    """A run is for its slot but due at slot + offset."""
    task = harness.add_task(every=10, offset=3, latest_completed=0)
    harness.scheduler.claim_task(task)
    harness.tick(12)
    assert harness.running() == []
    harness.tick(13)
    assert harness.running() == [10]
    (queued,) = harness.executor.running()
    assert isinstance(queued, QueuedRun)
    assert queued.due_at == 13
    assert queued.script == "job"


def test_claim_tasks_claims_in_bulk_and_returns_the_refusals(harness: Harness) -> None:
    """claim_tasks claims every task it can and returns the others with their errors."""
    first = harness.add_task("a", latest_completed=4)
    second = harness.add_task("b")
    harness.scheduler.claim_task(second)
    failures = harness.scheduler.claim_tasks([first, second, _task("ghost")])
    assert sorted(failures) == ["b", "ghost"]
    assert isinstance(failures["b"], TaskAlreadyClaimed)
    assert isinstance(failures["ghost"], TaskNotFound)
    harness.settle()
    assert harness.running("a") == [5]
    assert harness.metric("task_scheduler_claims_active") == 2
    assert harness.metric("task_scheduler_claims_complete_total", {"status": "failure"}) == 2


def test_an_idle_task_keeps_one_runner(harness: Harness) -> None:
    """Runners exist for busy slots: once a task goes idle only slot 0's runner remains."""
    runtime = harness.scheduler._runtime
    assert runtime is not None
    task = harness.add_task(concurrency=3, latest_completed=2)
    harness.scheduler.claim_task(task)
    harness.settle()
    busy = runtime.actor_count
    assert harness.running() == [3, 4, 5]
    harness.executor.succeed_all()
    harness.settle()
    assert harness.running() == []
    assert runtime.actor_count == busy - 2


def test_run_log_lines_of_a_success_without_statistics(harness: Harness) -> None:
    """A success without statistics logs the start and the completion, no empty JSON line."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    harness.tick(6)
    run_id = harness.run_id(6)
    harness.executor.succeed(run_id)
    harness.settle()
    messages = [entry.message for entry in harness.find(run_id).log]
    assert messages == ['Started task from script: "job"', "Completed successfully"]


def test_a_busy_due_task_is_not_ticked_until_a_slot_frees(
    make_store_harness: Callable[[_CountingStore], _StoreHarness],
) -> None:
    """A task whose every slot is busy hears no tick, and is told the time once a slot frees."""
    h = make_store_harness(_CountingStore())
    task = h.add_task()
    h.scheduler.claim_task(task)
    h.tick(6)
    assert h.running() == [6]
    for now in range(7, 30):
        h.tick(now)
    assert h.store.creates == [("t1", 6)]
    h.executor.succeed(h.run_id(6))
    h.settle()
    assert h.running() == [7]
    h.executor.succeed(h.run_id(7))
    h.settle()
    assert h.running() == [8]
    # Run 7 was asked for with now=7: tick 7 (which found the slot busy) was the last the
    # task heard, none of 8..29 reached it. Run 8 with now=29: told the time on freeing.
    assert h.store.creates == [("t1", 6), ("t1", 7), ("t1", 29)]


def test_a_failing_handler_or_an_unknown_message_never_kills_an_actor(
    make_store_harness: Callable[[_CountingStore], _StoreHarness],
) -> None:
    """A handler that raises is logged and counted; an unknown message is dropped; both go on."""
    store = _FlakyStore()
    h = make_store_harness(store)
    task = h.add_task()
    h.scheduler.claim_task(task)
    actor = h.scheduler._actor  # no public way to send an actor a message nobody knows
    assert actor is not None
    actor.tell(object())
    actor.tell(Tick(None))  # type: ignore[arg-type]  # the Tick handler fails on None
    h.tick(6)
    errors = h.metric("task_scheduler_errors_counter_total", {"error_type": "internal error"})
    assert errors == 1
    assert h.running() == [6]  # both actors went on
    assert store.creates == [("t1", 6)]


def _drain_signalling_scheduler(drained: threading.Event) -> type[Scheduler]:
    """A Scheduler whose TaskActors set ``drained`` once they have handled Drain.

    It goes through the actor-class seams (Scheduler.scheduler_actor_class,
    SchedulerActor.task_actor_class): a subclass extends its own dispatch table, nothing
    shared is patched.
    """
    from protocols.messages import Drain

    def on_drain(actor: TaskActor, message: Drain) -> None:
        TaskActor._tells[Drain](actor, message)
        drained.set()

    class SignallingTaskActor(TaskActor):
        _tells: ClassVar[Mapping[type, Handler]] = {**TaskActor._tells, Drain: on_drain}

    class SignallingSchedulerActor(SchedulerActor):
        task_actor_class = SignallingTaskActor

    class SignallingScheduler(Scheduler):
        scheduler_actor_class = SignallingSchedulerActor

    return SignallingScheduler


def test_stop_with_grace_lets_runs_finish_and_starts_none() -> None:
    """stop(grace=...) starts no new run, and a run that finishes within the grace succeeds."""
    drained = threading.Event()
    harness = Harness()
    harness.scheduler = _drain_signalling_scheduler(drained)(
        harness.store, harness.executor, now=5, registry=harness.registry
    )
    harness.scheduler.start()
    try:
        task = harness.add_task()
        harness.scheduler.claim_task(task)
        harness.tick(8)
        assert harness.running() == [6]
        run_id = harness.run_id(6)

        stopper = threading.Thread(target=harness.scheduler.stop, kwargs={"grace": 60.0})
        stopper.start()
        assert drained.wait(30)
        harness.executor.succeed(run_id)
        stopper.join(timeout=60)
        assert not stopper.is_alive()

        assert harness.status(run_id) is RunStatus.SUCCESS
        assert [run.scheduled_for for run in harness.executor.executed] == [6]
        assert harness.store.currently_running(task.id) == []
    finally:
        harness.executor.release_wait()
        harness.scheduler.stop()
