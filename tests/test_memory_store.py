"""MemoryStore: the TaskStore contract suite, plus what only the memory store promises."""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

pytest.register_assert_rewrite("protocols.testing.store_contract")

from protocols import (  # noqa: E402
    LogEntry,
    MemoryStore,
    RunAlreadyQueued,
    RunNotDueYet,
    RunNotFound,
    RunStatus,
    TaskNotFound,
    TaskStore,
)
from protocols.testing.store_contract import (  # noqa: E402
    FakeClock,
    TaskStoreContract,
    make_task,
)


class TestMemoryStoreContract(TaskStoreContract):
    """The contract suite, run against MemoryStore."""

    def make_store(self, clock: Callable[[], float]) -> TaskStore:
        """A fresh MemoryStore on the suite's clock."""
        return MemoryStore(clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    """A controllable clock at 1000.0."""
    return FakeClock(1_000.0)


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    """A MemoryStore with one task t1, every 10 s, latest completed 100."""
    store = MemoryStore(clock=clock)
    store.add_task(make_task("t1"), latest_completed=100)
    return store


# -- what only MemoryStore promises (moved out of the contract suite) ----------------------


def test_run_ids_start_at_one(store: MemoryStore) -> None:
    """The first run id of a store is 1, then 2, 3..."""
    ids = [store.create_next_run("t1", 200).created.run_id for _ in range(3)]
    assert ids == [1, 2, 3]


def test_run_ids_increase_across_the_store_in_creation_order(store: MemoryStore) -> None:
    """Run ids increase by one per run created, scheduled or manual, whatever the task."""
    store.add_task(make_task("t2"), latest_completed=100)
    ids = [
        store.create_next_run("t1", 200).created.run_id,
        store.create_next_run("t2", 200).created.run_id,
        store.force_run("t1", 50).id,
        store.create_next_run("t2", 200).created.run_id,
        store.force_run("t2", 50).id,
        store.force_run("t1", 60).id,
    ]
    assert ids == [1, 2, 3, 4, 5, 6]
    first = store.create_next_run("t1", 200).created.run_id  # the manual run 3
    store.finish_run("t1", first)
    assert store.retry_run("t1", first).id == 7


def test_list_tasks_sorted_by_id(store: MemoryStore) -> None:
    """list_tasks returns every task sorted by id, whatever the order they were added in."""
    for task_id in ("b", "c", "a"):
        store.add_task(make_task(task_id), latest_completed=100)
    assert [task.id for task in store.list_tasks()] == ["a", "b", "c", "t1"]


def test_currently_running_sorted_by_id(store: MemoryStore) -> None:
    """currently_running lists scheduled and manual runs in progress by id."""
    scheduled = store.create_next_run("t1", 120).created
    store.force_run("t1", 50)
    store.force_run("t1", 60)
    manual = store.create_next_run("t1", 120).created
    later = store.create_next_run("t1", 120).created
    running = store.currently_running("t1")
    assert [r.id for r in running] == [scheduled.run_id, manual.run_id, later.run_id]
    store.finish_run("t1", manual.run_id)
    assert [r.id for r in store.currently_running("t1")] == [scheduled.run_id, later.run_id]


def test_remove_unknown_task_raises_task_not_found(store: MemoryStore) -> None:
    """remove_task of a task the store does not know raises TaskNotFound; t1 is kept."""
    with pytest.raises(TaskNotFound):
        store.remove_task("ghost")
    assert [task.id for task in store.list_tasks()] == ["t1"]


def test_manual_run_due_at_is_the_now_it_was_taken_at(store: MemoryStore) -> None:
    """A manual run's due_at is the now create_next_run was called with."""
    store.force_run("t1", 50)
    store.force_run("t1", 500)
    assert [store.create_next_run("t1", now).created.due_at for now in (7, 105)] == [7, 105]


def test_requested_at_truncates_the_clock(store: MemoryStore, clock: FakeClock) -> None:
    """requested_at is int(clock()) (1234.9 gives 1234), and 1 when the clock reads 0."""
    clock.set(1_234.9)
    assert store.force_run("t1", 50).requested_at == 1_234
    clock.set(0.0)
    assert store.force_run("t1", 60).requested_at == 1
    clock.set(2_000.5)
    run = store.create_next_run("t1", 100).created
    store.finish_run("t1", run.run_id)
    assert store.retry_run("t1", run.run_id).requested_at == 2_000


def test_finish_run_of_a_run_not_in_progress_raises_run_not_found(store: MemoryStore) -> None:
    """finish_run accepts only a run in progress: finished or still queued is RunNotFound."""
    run = store.create_next_run("t1", 110).created
    store.finish_run("t1", run.run_id)
    with pytest.raises(RunNotFound):
        store.finish_run("t1", run.run_id)
    forced = store.force_run("t1", 50)
    with pytest.raises(RunNotFound):
        store.finish_run("t1", forced.id)
    assert store.manual_runs("t1") == [forced]
    assert store.latest_completed("t1") == 110


def test_update_run_state_and_add_run_log_accept_a_finished_run(store: MemoryStore) -> None:
    """update_run_state and add_run_log also record on a run already finished."""
    run = store.create_next_run("t1", 110).created
    store.add_run_log("t1", run.run_id, 110.5, "one")
    store.finish_run("t1", run.run_id)
    store.update_run_state("t1", run.run_id, 120.0, RunStatus.CANCELED)
    store.add_run_log("t1", run.run_id, 121.0, "two")
    found = store.find_run("t1", run.run_id)
    assert found.status is RunStatus.CANCELED
    assert found.log == (LogEntry(when=110.5, message="one"), LogEntry(when=121.0, message="two"))


def test_update_run_state_and_add_run_log_accept_a_queued_run(store: MemoryStore) -> None:
    """update_run_state and add_run_log also record on a manual run still queued."""
    forced = store.force_run("t1", 50)
    store.update_run_state("t1", forced.id, 1.0, RunStatus.STARTED)
    store.add_run_log("t1", forced.id, 1.5, "early")
    [queued] = store.manual_runs("t1")
    assert (queued.status, queued.started_at) == (RunStatus.STARTED, 1.0)
    assert queued.log == (LogEntry(when=1.5, message="early"),)


def test_retry_of_a_run_with_terminal_status_before_finish(store: MemoryStore) -> None:
    """A run in progress whose status is terminal can be retried before finish_run."""
    run = store.create_next_run("t1", 110).created
    store.update_run_state("t1", run.run_id, 1.0, RunStatus.CANCELED)
    retry = store.retry_run("t1", run.run_id)
    assert (retry.scheduled_for, retry.id) == (110, run.run_id + 1)
    assert [r.id for r in store.manual_runs("t1")] == [retry.id]


def test_latest_completed_reads_the_stored_value(store: MemoryStore) -> None:
    """latest_completed follows finished scheduled runs only."""
    assert store.latest_completed("t1") == 100
    first = store.create_next_run("t1", 120).created
    second = store.create_next_run("t1", 120).created
    assert store.latest_completed("t1") == 100
    store.finish_run("t1", first.run_id)
    assert store.latest_completed("t1") == 110
    store.force_run("t1", 9_000)
    manual = store.create_next_run("t1", 120).created
    store.finish_run("t1", manual.run_id)
    assert store.latest_completed("t1") == 110
    store.finish_run("t1", second.run_id)
    assert store.latest_completed("t1") == 120


def test_add_task_default_latest_completed_truncates_clock(clock: FakeClock) -> None:
    """add_task without latest_completed stores int(clock())."""
    clock.set(1_234.99)
    store = MemoryStore(clock=clock)
    store.add_task(make_task("t1"))
    assert store.latest_completed("t1") == 1_234


def test_store_ignores_task_status(store: MemoryStore) -> None:
    """An inactive task still gets a run when asked: activity is the scheduler's call."""
    store.update_task(make_task("t1", status="inactive"))  # type: ignore[arg-type]
    assert store.create_next_run("t1", 110).created.scheduled_for == 110


def test_returned_objects_are_immutable(store: MemoryStore) -> None:
    """Tasks, runs, run creations and log entries returned cannot be changed."""
    creation = store.create_next_run("t1", 110)
    store.add_run_log("t1", creation.created.run_id, 1.0, "line")
    run = store.find_run("t1", creation.created.run_id)
    task = store.get_task("t1")
    for obj, field in [
        (creation, "has_queue"),
        (creation.created, "scheduled_for"),
        (run, "status"),
        (run.log[0], "message"),
        (task, "script"),
    ]:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(obj, field, None)
    assert isinstance(run.log, tuple)


def test_returned_runs_are_snapshots(store: MemoryStore) -> None:
    """A Run returned earlier does not change when the store's run does."""
    created = store.create_next_run("t1", 110).created
    before = store.find_run("t1", created.run_id)
    store.update_run_state("t1", created.run_id, 1.0, RunStatus.STARTED)
    store.add_run_log("t1", created.run_id, 1.0, "line")
    assert before.status is RunStatus.SCHEDULED
    assert before.log == ()
    assert store.find_run("t1", created.run_id).status is RunStatus.STARTED


def test_update_run_state_accepts_status_string(store: MemoryStore) -> None:
    """A status given as its string value is stored as the RunStatus member."""
    created = store.create_next_run("t1", 110).created
    store.update_run_state("t1", created.run_id, 2.0, "started")  # type: ignore[arg-type]
    run = store.find_run("t1", created.run_id)
    assert (run.status, run.started_at) == (RunStatus.STARTED, 2.0)


def test_max_finished_runs_drops_oldest_finished(clock: FakeClock) -> None:
    """With max_finished_runs, each task keeps only that many finished runs."""
    store = MemoryStore(clock=clock, max_finished_runs=2)
    store.add_task(make_task("t1"), latest_completed=100)
    ids = [store.create_next_run("t1", 200).created.run_id for _ in range(4)]
    for run_id in ids[:3]:
        store.finish_run("t1", run_id)
    assert [run.id for run in store.find_runs("t1")] == [ids[3], ids[2], ids[1]]
    assert store.find_run("t1", ids[3]).finished_at is None
    with pytest.raises(RunNotFound):
        store.find_run("t1", ids[0])  # dropped: unknown from then on
    assert store.latest_completed("t1") == 130


def test_max_finished_runs_must_not_be_negative() -> None:
    """A negative max_finished_runs is refused."""
    with pytest.raises(ValueError, match="max_finished_runs"):
        MemoryStore(max_finished_runs=-1)


def test_contended_single_task_threads(clock: FakeClock) -> None:
    """Threads racing on one task, with manual runs mixed in, never lose or repeat a slot."""
    store = MemoryStore(clock=clock)
    store.add_task(make_task("t1"), latest_completed=0)
    threads_count, per_thread = 6, 100
    barrier = threading.Barrier(threads_count)
    created: list[tuple[int, int, bool]] = []
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            for step in range(per_thread):
                if step % 10 == 0:
                    store.force_run("t1", -(index * per_thread + step + 1))
                run = store.create_next_run("t1", 10**6).created
                created.append((run.run_id, run.scheduled_for, run.is_manual))
                store.add_run_log("t1", run.run_id, 1.0, "x")
                store.update_run_state("t1", run.run_id, 1.0, RunStatus.SUCCESS)
                store.finish_run("t1", run.run_id)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({run_id for run_id, _, _ in created}) == len(created) == threads_count * per_thread
    scheduled = sorted(slot for _, slot, manual in created if not manual)
    assert scheduled == list(range(10, 10 * (len(scheduled) + 1), 10))
    manual = [slot for _, slot, is_manual in created if is_manual]
    assert len(manual) == threads_count * per_thread // 10
    assert store.latest_completed("t1") == scheduled[-1]
    assert store.currently_running("t1") == []
    assert store.manual_runs("t1") == []


class MemoryStoreModel(RuleBasedStateMachine):
    """Random sequences of store calls against a plain model of one every-10s task."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(1_000.0)
        self.store = MemoryStore(clock=self.clock)
        self.store.add_task(make_task("t1"), latest_completed=100)
        self.now = 100
        self.last_scheduled = 100
        self.queue: list[int] = []
        self.running: dict[int, bool] = {}
        self.finished: list[int] = []
        self.latest_completed = 100

    @rule(seconds=st.integers(min_value=0, max_value=35))
    def advance(self, seconds: int) -> None:
        """Time moves on."""
        self.now += seconds

    @rule()
    def create(self) -> None:
        """create_next_run takes the queue head, else the due slot, else refuses."""
        if self.queue:
            created = self.store.create_next_run("t1", self.now).created
            assert created.run_id == self.queue.pop(0)
            assert created.is_manual
            self.running[created.run_id] = True
        elif self.last_scheduled + 10 <= self.now:
            created = self.store.create_next_run("t1", self.now).created
            assert created.scheduled_for == self.last_scheduled + 10
            self.last_scheduled = created.scheduled_for
            self.running[created.run_id] = False
        else:
            with pytest.raises(RunNotDueYet):
                self.store.create_next_run("t1", self.now)

    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        """Finishing a run in progress; scheduled ones advance latest completed."""
        if not self.running:
            return
        run_id = data.draw(st.sampled_from(sorted(self.running)))
        manual = self.running.pop(run_id)
        run = self.store.finish_run("t1", run_id)
        if not manual:
            self.latest_completed = max(self.latest_completed, run.scheduled_for)
        self.finished.append(run_id)

    @rule(slot=st.integers(min_value=0, max_value=10_000))
    def force(self, slot: int) -> None:
        """force_run queues unless that slot already waits."""
        queued = {run.scheduled_for for run in self.store.manual_runs("t1")}
        if slot in queued:
            with pytest.raises(RunAlreadyQueued):
                self.store.force_run("t1", slot)
        else:
            self.queue.append(self.store.force_run("t1", slot).id)

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """retry_run of a finished run queues a copy unless its slot already waits."""
        if not self.finished:
            return
        run_id = data.draw(st.sampled_from(self.finished))
        slot = self.store.find_run("t1", run_id).scheduled_for
        if slot in {run.scheduled_for for run in self.store.manual_runs("t1")}:
            with pytest.raises(RunAlreadyQueued):
                self.store.retry_run("t1", run_id)
        else:
            self.queue.append(self.store.retry_run("t1", run_id).id)

    @invariant()
    def agrees_with_model(self) -> None:
        """Queue, running set, next due time and latest completed match the model."""
        assert [run.id for run in self.store.manual_runs("t1")] == self.queue
        assert [run.id for run in self.store.currently_running("t1")] == sorted(self.running)
        assert self.store.next_due_run("t1") == self.last_scheduled + 10
        assert self.store.latest_completed("t1") == self.latest_completed


TestMemoryStoreModel = MemoryStoreModel.TestCase
TestMemoryStoreModel.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, derandomize=True, database=None
)


def test_finished_runs_are_bounded_by_default(clock: FakeClock) -> None:
    """By default each task keeps the last DEFAULT_MAX_FINISHED_RUNS finished runs."""
    from protocols.stores.memory import DEFAULT_MAX_FINISHED_RUNS

    store = MemoryStore(clock=clock)
    store.add_task(make_task("t1", every=1), latest_completed=0)
    total = DEFAULT_MAX_FINISHED_RUNS + 5
    for now in range(1, total + 1):
        run = store.create_next_run("t1", now).created
        store.finish_run("t1", run.run_id)
    runs = store.find_runs("t1")
    assert len(runs) == DEFAULT_MAX_FINISHED_RUNS
    assert runs[-1].scheduled_for == 6
