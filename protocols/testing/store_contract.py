"""The contract test suite every :class:`~protocols.TaskStore` must pass.

One suite, run against every backend (the way APScheduler 4 tests its data
stores). Subclass :class:`TaskStoreContract` in a test module (its name must
start with ``Test`` so pytest collects it) and say how to build a fresh, empty
store around a clock::

    from protocols import MemoryStore, TaskStore
    from protocols.testing.store_contract import TaskStoreContract

    class TestMemoryStore(TaskStoreContract):
        def make_store(self, clock):
            return MemoryStore(clock=clock)

``clock`` is a :class:`FakeClock`: the store must read the current time only
through it (for ``finished_at``, ``requested_at`` and the default
``latest_completed`` of ``add_task``). If building the store needs other
fixtures (a temporary directory, a database), override the ``store`` fixture
instead; it must use the ``clock`` fixture. ``close_store`` is called after each
test. For readable assertion failures, call
``pytest.register_assert_rewrite("protocols.testing.store_contract")`` before
importing this module (in a ``conftest.py``, or at the top of the test module).

The suite uses ``every`` schedules, whose slots are multiples of ``every``
seconds since the Unix epoch, and expects the store to compute slots and due
times with :func:`protocols.schedules.next_slot` and
:func:`protocols.schedules.due_time`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from protocols.contracts import TaskStore
from protocols.errors import (
    RunAlreadyQueued,
    RunNotDueYet,
    RunNotFinished,
    RunNotFound,
    TaskAlreadyExists,
    TaskNotFound,
)
from protocols.model import LogEntry, Run, RunStatus, Task, TaskStatus
from protocols.options import TaskOptions

__all__ = ["FakeClock", "TaskStoreContract", "make_task"]


class FakeClock:
    """A clock that moves only when told: call it for the time, as ``time.time``."""

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now`` (backwards too)."""
        with self._lock:
            self._now = float(now)

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` and return the new time."""
        with self._lock:
            self._now += seconds
            return self._now


def make_task(
    task_id: str = "t1",
    *,
    every: int = 10,
    offset: int = 0,
    script: str = "echo hi",
    status: TaskStatus = TaskStatus.ACTIVE,
    cron: str | None = None,
    timezone: str = "UTC",
) -> Task:
    """A task due ``offset`` seconds after each slot: every ``every`` seconds, or by ``cron``."""
    if cron is not None:
        options = TaskOptions(name=f"task {task_id}", cron=cron, offset=offset, timezone=timezone)
    else:
        options = TaskOptions(name=f"task {task_id}", every=every, offset=offset)
    return Task(id=task_id, options=options, status=status, script=script)


def _finish(store: TaskStore, task_id: str, run_id: int, status: RunStatus) -> Run:
    store.update_run_state(task_id, run_id, 0.0, status)
    return store.finish_run(task_id, run_id)


_UNKNOWN = "no-such-task"

_UNKNOWN_TASK_CALLS: list[object] = [
    pytest.param(lambda s: s.create_next_run(_UNKNOWN, 10**9), id="create_next_run"),
    pytest.param(lambda s: s.next_due_run(_UNKNOWN), id="next_due_run"),
    pytest.param(lambda s: s.currently_running(_UNKNOWN), id="currently_running"),
    pytest.param(lambda s: s.manual_runs(_UNKNOWN), id="manual_runs"),
    pytest.param(lambda s: s.finish_run(_UNKNOWN, 1), id="finish_run"),
    pytest.param(
        lambda s: s.update_run_state(_UNKNOWN, 1, 1.0, RunStatus.STARTED), id="update_run_state"
    ),
    pytest.param(lambda s: s.add_run_log(_UNKNOWN, 1, 1.0, "x"), id="add_run_log"),
    pytest.param(lambda s: s.update_task(make_task(_UNKNOWN)), id="update_task"),
    pytest.param(lambda s: s.remove_task(_UNKNOWN), id="remove_task"),
    pytest.param(lambda s: s.get_task(_UNKNOWN), id="get_task"),
    pytest.param(lambda s: s.force_run(_UNKNOWN, 100), id="force_run"),
    pytest.param(lambda s: s.retry_run(_UNKNOWN, 1), id="retry_run"),
    pytest.param(lambda s: s.find_runs(_UNKNOWN), id="find_runs"),
    pytest.param(lambda s: s.find_run(_UNKNOWN, 1), id="find_run"),
]

_UNKNOWN_RUN_CALLS: list[object] = [
    pytest.param(lambda s, r: s.finish_run("t1", r), id="finish_run"),
    pytest.param(
        lambda s, r: s.update_run_state("t1", r, 1.0, RunStatus.STARTED), id="update_run_state"
    ),
    pytest.param(lambda s, r: s.add_run_log("t1", r, 1.0, "x"), id="add_run_log"),
    pytest.param(lambda s, r: s.retry_run("t1", r), id="retry_run"),
    pytest.param(lambda s, r: s.find_run("t1", r), id="find_run"),
]


class TaskStoreContract:
    """The behaviour every :class:`~protocols.TaskStore` shares; subclass it to test a store."""

    # -- what a backend provides ------------------------------------------------------

    def make_store(self, clock: Callable[[], float]) -> TaskStore:
        """A new, empty store that reads the time from ``clock``."""
        raise NotImplementedError("subclasses of TaskStoreContract implement make_store")

    def close_store(self, store: TaskStore) -> None:
        """Release what ``make_store`` acquired (nothing by default)."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The store's clock, at 1000.0 to begin with."""
        return FakeClock(1_000.0)

    @pytest.fixture
    def store(self, clock: FakeClock) -> Iterator[TaskStore]:
        """A fresh store for each test."""
        store = self.make_store(clock)
        try:
            yield store
        finally:
            self.close_store(store)

    # -- the protocol -----------------------------------------------------------------

    def test_satisfies_task_store_protocol(self, store: TaskStore) -> None:
        """The store has every method of the TaskStore protocol."""
        assert isinstance(store, TaskStore)

    # -- tasks ------------------------------------------------------------------------

    def test_get_task_returns_added_task(self, store: TaskStore) -> None:
        """get_task returns the task as added."""
        task = make_task("t1", every=30, offset=5, script="run me")
        store.add_task(task, latest_completed=100)
        assert store.get_task("t1") == task

    def test_list_tasks_sorted_by_id(self, store: TaskStore) -> None:
        """list_tasks returns every task, sorted by id."""
        for task_id in ("b", "c", "a"):
            store.add_task(make_task(task_id), latest_completed=100)
        assert [task.id for task in store.list_tasks()] == ["a", "b", "c"]

    def test_list_tasks_empty(self, store: TaskStore) -> None:
        """A new store has no tasks."""
        assert store.list_tasks() == []

    def test_add_duplicate_task_raises(self, store: TaskStore) -> None:
        """Adding a task id twice raises TaskAlreadyExists and keeps the first task."""
        first = make_task("t1", script="first")
        store.add_task(first, latest_completed=100)
        with pytest.raises(TaskAlreadyExists):
            store.add_task(make_task("t1", script="second"), latest_completed=100)
        assert store.get_task("t1") == first

    def test_add_task_defaults_latest_completed_to_now(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """Without latest_completed, add_task starts from int(clock()): no earlier slot runs."""
        clock.set(1_005.7)
        store.add_task(make_task("t1", every=10))
        assert store.next_due_run("t1") == 1_010
        with pytest.raises(RunNotDueYet):
            store.create_next_run("t1", 1_009)
        assert store.create_next_run("t1", 1_010).created.scheduled_for == 1_010

    def test_update_task_replaces_task(self, store: TaskStore) -> None:
        """update_task stores the new task; the next run carries its script."""
        store.add_task(make_task("t1", script="old"), latest_completed=100)
        new = make_task("t1", script="new")
        store.update_task(new)
        assert store.get_task("t1") == new
        assert store.create_next_run("t1", 110).created.script == "new"

    def test_update_task_keeps_latest_completed_by_default(self, store: TaskStore) -> None:
        """update_task without latest_completed keeps it, so missed slots are caught up."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.update_task(make_task("t1", status=TaskStatus.INACTIVE))
        store.update_task(make_task("t1"))
        assert store.next_due_run("t1") == 110
        assert store.create_next_run("t1", 500).created.scheduled_for == 110

    def test_update_task_sets_latest_completed(self, store: TaskStore) -> None:
        """update_task with latest_completed moves the schedule's base."""
        store.add_task(make_task("t1"), latest_completed=100)
        assert store.next_due_run("t1") == 110
        store.update_task(make_task("t1"), latest_completed=500)
        assert store.next_due_run("t1") == 510
        with pytest.raises(RunNotDueYet):
            store.create_next_run("t1", 505)

    def test_update_task_never_moves_latest_completed_back(self, store: TaskStore) -> None:
        """A latest_completed earlier than the stored one is ignored: no slot runs twice."""
        store.add_task(make_task("t1", every=10, offset=-3), latest_completed=10)
        run = store.create_next_run("t1", 17).created  # slot 20, due at 17
        assert run.scheduled_for == 20
        store.finish_run("t1", run.run_id)
        store.update_task(make_task("t1", every=10, offset=-3), latest_completed=18)
        assert store.create_next_run("t1", 27).created.scheduled_for == 30

    def test_update_task_new_schedule_applies_from_base(self, store: TaskStore) -> None:
        """A changed interval takes effect from the current base."""
        store.add_task(make_task("t1", every=10), latest_completed=120)
        assert store.next_due_run("t1") == 130
        store.update_task(make_task("t1", every=60))
        assert store.next_due_run("t1") == 180

    def test_update_task_below_running_slot_keeps_base(self, store: TaskStore) -> None:
        """Lowering latest_completed cannot move the base behind a scheduled run in progress."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.create_next_run("t1", 120)
        store.create_next_run("t1", 120)
        store.update_task(make_task("t1"), latest_completed=50)
        assert store.next_due_run("t1") == 130

    def test_remove_task_drops_task_and_runs(self, store: TaskStore) -> None:
        """remove_task forgets the task and its runs; other tasks are untouched."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.add_task(make_task("t2"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.force_run("t1", 50)
        other = store.create_next_run("t2", 110).created
        store.remove_task("t1")
        with pytest.raises(TaskNotFound):
            store.get_task("t1")
        with pytest.raises(TaskNotFound):
            store.find_run("t1", run.run_id)
        assert [task.id for task in store.list_tasks()] == ["t2"]
        assert [r.id for r in store.currently_running("t2")] == [other.run_id]
        store.add_task(make_task("t1"), latest_completed=100)
        assert store.find_runs("t1") == []
        assert store.currently_running("t1") == []
        assert store.manual_runs("t1") == []

    # -- unknown ids ------------------------------------------------------------------

    @pytest.mark.parametrize("call", _UNKNOWN_TASK_CALLS)
    def test_unknown_task_raises_task_not_found(
        self, store: TaskStore, call: Callable[[TaskStore], object]
    ) -> None:
        """Every method given an unknown task id raises TaskNotFound (a LookupError)."""
        store.add_task(make_task("t1"), latest_completed=100)
        with pytest.raises(TaskNotFound) as info:
            call(store)
        assert isinstance(info.value, LookupError)

    @pytest.mark.parametrize("call", _UNKNOWN_RUN_CALLS)
    def test_unknown_run_raises_run_not_found(
        self, store: TaskStore, call: Callable[[TaskStore, int], object]
    ) -> None:
        """Every run method given an unknown run id of a known task raises RunNotFound."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        with pytest.raises(RunNotFound) as info:
            call(store, run.run_id + 1_000)
        assert isinstance(info.value, LookupError)

    @pytest.mark.parametrize("call", _UNKNOWN_RUN_CALLS)
    def test_run_of_another_task_raises_run_not_found(
        self, store: TaskStore, call: Callable[[TaskStore, int], object]
    ) -> None:
        """A run id that belongs to another task is unknown to this one."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.add_task(make_task("t2"), latest_completed=100)
        other = store.create_next_run("t2", 110).created
        _finish(store, "t2", other.run_id, RunStatus.SUCCESS)
        with pytest.raises(RunNotFound):
            call(store, other.run_id)

    # -- create_next_run: scheduled runs ----------------------------------------------

    def test_create_next_run_not_due_raises_with_due_at(self, store: TaskStore) -> None:
        """Before the next slot is due, create_next_run raises RunNotDueYet with due_at."""
        store.add_task(make_task("t1"), latest_completed=100)
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 109)
        assert info.value.due_at == 110
        assert store.currently_running("t1") == []
        assert store.find_runs("t1") == []

    def test_create_next_run_creates_due_run(self, store: TaskStore) -> None:
        """At its due time the run for the next slot is created with the task's script."""
        store.add_task(make_task("t1", script="do it"), latest_completed=100)
        creation = store.create_next_run("t1", 110)
        run = creation.created
        assert (run.task_id, run.scheduled_for, run.due_at) == ("t1", 110, 110)
        assert run.requested_at == 0
        assert not run.is_manual
        assert run.script == "do it"
        assert creation.next_due == 120
        assert creation.has_queue is False

    def test_created_run_is_in_progress_and_scheduled(self, store: TaskStore) -> None:
        """A created run is currently running, with status scheduled and no times yet."""
        store.add_task(make_task("t1"), latest_completed=100)
        created = store.create_next_run("t1", 110).created
        [running] = store.currently_running("t1")
        assert running.id == created.run_id
        assert running.task_id == "t1"
        assert running.status is RunStatus.SCHEDULED
        assert running.scheduled_for == 110
        assert running.requested_at == 0
        assert (running.started_at, running.finished_at, running.log) == (None, None, ())
        assert store.find_run("t1", created.run_id) == running

    def test_catch_up_one_run_per_slot_in_order(self, store: TaskStore) -> None:
        """Missed slots are created one per call, oldest first, then RunNotDueYet."""
        store.add_task(make_task("t1"), latest_completed=100)
        creations = [store.create_next_run("t1", 135) for _ in range(3)]
        assert [c.created.scheduled_for for c in creations] == [110, 120, 130]
        assert [c.created.due_at for c in creations] == [110, 120, 130]
        assert [c.next_due for c in creations] == [120, 130, 140]
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 135)
        assert info.value.due_at == 140
        assert [r.scheduled_for for r in store.currently_running("t1")] == [110, 120, 130]

    def test_offset_delays_due_time_not_slot(self, store: TaskStore) -> None:
        """With an offset the run is for the slot but due offset seconds later."""
        store.add_task(make_task("t1", offset=3), latest_completed=100)
        assert store.next_due_run("t1") == 113
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 112)
        assert info.value.due_at == 113
        creation = store.create_next_run("t1", 113)
        assert (creation.created.scheduled_for, creation.created.due_at) == (110, 113)
        assert creation.next_due == 123

    def test_negative_offset_makes_run_due_early(self, store: TaskStore) -> None:
        """A negative offset makes the run due before its slot."""
        store.add_task(make_task("t1", offset=-3), latest_completed=100)
        assert store.next_due_run("t1") == 107
        creation = store.create_next_run("t1", 107)
        assert (creation.created.scheduled_for, creation.created.due_at) == (110, 107)
        assert creation.next_due == 117

    def test_cron_schedule(self, store: TaskStore) -> None:
        """A cron task's runs are for its cron slots, caught up one per call."""
        store.add_task(make_task("t1", cron="0 * * * *", offset=30), latest_completed=3_000)
        assert store.next_due_run("t1") == 3_630
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 3_629)
        assert info.value.due_at == 3_630
        creations = [store.create_next_run("t1", 7_230) for _ in range(2)]
        assert [c.created.scheduled_for for c in creations] == [3_600, 7_200]
        assert [c.created.due_at for c in creations] == [3_630, 7_230]
        assert [c.next_due for c in creations] == [7_230, 10_830]

    def test_cron_schedule_in_time_zone(self, store: TaskStore) -> None:
        """A cron task is evaluated in its time zone (daily 09:00 in Paris, winter: 08:00 UTC)."""
        # 2024-01-15T00:00:00Z = 1705276800
        store.add_task(
            make_task("t1", cron="0 9 * * *", timezone="Europe/Paris"),
            latest_completed=1_705_276_800,
        )
        assert store.next_due_run("t1") == 1_705_276_800 + 8 * 3_600

    def test_next_due_run_counts_scheduled_runs_in_progress(self, store: TaskStore) -> None:
        """next_due_run is the slot after the latest scheduled run, finished or not."""
        store.add_task(make_task("t1"), latest_completed=100)
        assert store.next_due_run("t1") == 110
        store.create_next_run("t1", 200)
        assert store.next_due_run("t1") == 120
        store.create_next_run("t1", 200)
        assert store.next_due_run("t1") == 130

    def test_finish_advances_latest_completed(self, store: TaskStore) -> None:
        """Finishing scheduled runs keeps the latest completed slot, in any finishing order."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.create_next_run("t1", 120).created
        second = store.create_next_run("t1", 120).created
        _finish(store, "t1", second.run_id, RunStatus.SUCCESS)
        _finish(store, "t1", first.run_id, RunStatus.FAILED)
        assert store.currently_running("t1") == []
        assert store.next_due_run("t1") == 130
        assert store.create_next_run("t1", 130).created.scheduled_for == 130

    def test_failed_and_canceled_runs_also_complete_their_slot(self, store: TaskStore) -> None:
        """A finished run completes its slot whatever its status: no slot runs twice."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        _finish(store, "t1", run.run_id, RunStatus.CANCELED)
        assert store.create_next_run("t1", 120).created.scheduled_for == 120

    def test_run_ids_unique_and_increasing(self, store: TaskStore) -> None:
        """Run ids are unique across the store and increase in creation order."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.add_task(make_task("t2"), latest_completed=100)
        ids = [
            store.create_next_run("t1", 200).created.run_id,
            store.create_next_run("t2", 200).created.run_id,
            store.force_run("t1", 50).id,
            store.create_next_run("t2", 200).created.run_id,
            store.force_run("t2", 50).id,
            store.force_run("t1", 60).id,
        ]
        assert all(isinstance(run_id, int) for run_id in ids)
        assert ids == sorted(set(ids))

    # -- manual runs --------------------------------------------------------------------

    def test_force_run_queues_manual_run(self, store: TaskStore, clock: FakeClock) -> None:
        """force_run returns a scheduled run stamped with requested_at and queues it."""
        store.add_task(make_task("t1"), latest_completed=100)
        clock.set(1_234.9)
        run = store.force_run("t1", 50)
        assert (run.task_id, run.scheduled_for, run.requested_at) == ("t1", 50, 1_234)
        assert run.status is RunStatus.SCHEDULED
        assert (run.started_at, run.finished_at, run.log) == (None, None, ())
        assert store.manual_runs("t1") == [run]
        assert store.currently_running("t1") == []
        assert store.find_run("t1", run.id) == run

    def test_force_run_requested_at_never_zero(self, store: TaskStore, clock: FakeClock) -> None:
        """A manual run's requested_at is at least 1, even when the clock reads 0."""
        store.add_task(make_task("t1"), latest_completed=100)
        clock.set(0.0)
        run = store.force_run("t1", 50)
        assert run.requested_at >= 1
        created = store.create_next_run("t1", 100).created
        assert created.is_manual
        assert created.requested_at == run.requested_at

    def test_force_run_duplicate_queued_slot_raises(self, store: TaskStore) -> None:
        """Forcing a slot that already has a queued manual run raises RunAlreadyQueued."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.force_run("t1", 50)
        with pytest.raises(RunAlreadyQueued):
            store.force_run("t1", 50)
        assert store.manual_runs("t1") == [first]

    def test_force_run_same_slot_again_once_dequeued(self, store: TaskStore) -> None:
        """Once a manual run left the queue, its slot can be forced again."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.force_run("t1", 50)
        store.create_next_run("t1", 100)
        second = store.force_run("t1", 50)
        assert second.id != first.id
        assert [r.id for r in store.manual_runs("t1")] == [second.id]

    def test_force_run_slot_of_scheduled_run_allowed(self, store: TaskStore) -> None:
        """Forcing the slot of a scheduled run (in progress or finished) is allowed."""
        store.add_task(make_task("t1"), latest_completed=100)
        scheduled = store.create_next_run("t1", 110).created
        forced = store.force_run("t1", scheduled.scheduled_for)
        assert forced.scheduled_for == 110

    def test_manual_runs_first_fifo_whatever_now(self, store: TaskStore, clock: FakeClock) -> None:
        """Queued manual runs come out first, in FIFO order, even when nothing is due."""
        store.add_task(make_task("t1", script="s"), latest_completed=100)
        forced = []
        for slot in (70, 50, 60):
            clock.advance(1)
            forced.append(store.force_run("t1", slot))
        clock.set(5_000)
        creations = [store.create_next_run("t1", 105) for _ in range(3)]
        assert [c.created.run_id for c in creations] == [r.id for r in forced]
        assert [c.created.scheduled_for for c in creations] == [70, 50, 60]
        assert [c.created.due_at for c in creations] == [105, 105, 105]
        assert [c.created.requested_at for c in creations] == [1_001, 1_002, 1_003]
        assert [c.created.script for c in creations] == ["s", "s", "s"]
        assert [c.has_queue for c in creations] == [True, True, False]
        assert [c.next_due for c in creations] == [110, 110, 110]
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 105)
        assert info.value.due_at == 110

    def test_manual_runs_before_due_scheduled_run(self, store: TaskStore) -> None:
        """A queued manual run comes before a scheduled run that is already due."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.force_run("t1", 500)
        first = store.create_next_run("t1", 150)
        assert (first.created.scheduled_for, first.created.is_manual) == (500, True)
        assert first.next_due == 110
        second = store.create_next_run("t1", 150)
        assert (second.created.scheduled_for, second.created.is_manual) == (110, False)

    def test_manual_creation_next_due_counts_scheduled_in_progress(self, store: TaskStore) -> None:
        """next_due of a manual run's creation is the next scheduled slot's due time."""
        store.add_task(make_task("t1", offset=2), latest_completed=100)
        store.create_next_run("t1", 112)
        store.force_run("t1", 40)
        assert store.create_next_run("t1", 112).next_due == 122

    def test_dequeued_manual_run_is_in_progress(self, store: TaskStore) -> None:
        """A manual run taken off the queue leaves manual_runs and is currently running."""
        store.add_task(make_task("t1"), latest_completed=100)
        forced = store.force_run("t1", 50)
        created = store.create_next_run("t1", 100).created
        assert created.run_id == forced.id
        assert store.manual_runs("t1") == []
        [running] = store.currently_running("t1")
        assert running.id == forced.id
        assert running.status is RunStatus.SCHEDULED
        assert running.requested_at == forced.requested_at

    def test_manual_run_in_progress_does_not_move_base(self, store: TaskStore) -> None:
        """A future manual run in progress does not move the next scheduled slot."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.force_run("t1", 10_000)
        store.create_next_run("t1", 100)
        assert store.next_due_run("t1") == 110
        assert store.create_next_run("t1", 110).created.scheduled_for == 110

    @pytest.mark.parametrize("slot", [50, 10_000])
    def test_finished_manual_run_does_not_move_schedule(self, store: TaskStore, slot: int) -> None:
        """Finishing a manual run, past or future, leaves the schedule where it was."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.force_run("t1", slot)
        created = store.create_next_run("t1", 100).created
        _finish(store, "t1", created.run_id, RunStatus.SUCCESS)
        assert store.next_due_run("t1") == 110
        assert store.create_next_run("t1", 110).created.scheduled_for == 110

    def test_manual_runs_lists_queue_in_order(self, store: TaskStore) -> None:
        """manual_runs lists queued manual runs in queue order, all status scheduled."""
        store.add_task(make_task("t1"), latest_completed=100)
        forced = [store.force_run("t1", slot) for slot in (300, 100, 200)]
        listed = store.manual_runs("t1")
        assert listed == forced
        assert {run.status for run in listed} == {RunStatus.SCHEDULED}
        assert all(run.requested_at > 0 for run in listed)

    def test_currently_running_lists_scheduled_and_manual_by_id(self, store: TaskStore) -> None:
        """currently_running lists created, unfinished runs of both kinds, by id."""
        store.add_task(make_task("t1"), latest_completed=100)
        scheduled = store.create_next_run("t1", 120).created
        store.force_run("t1", 50)
        store.force_run("t1", 60)
        manual = store.create_next_run("t1", 120).created
        later = store.create_next_run("t1", 120).created
        running = store.currently_running("t1")
        assert [r.id for r in running] == [scheduled.run_id, manual.run_id, later.run_id]
        assert [r.requested_at > 0 for r in running] == [False, True, True]
        store.finish_run("t1", manual.run_id)
        assert [r.id for r in store.currently_running("t1")] == [scheduled.run_id, later.run_id]

    # -- retry_run ------------------------------------------------------------------------

    def test_retry_run_queues_copy_of_finished_run(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """retry_run queues a copy of a finished run for the same slot under a new id."""
        store.add_task(make_task("t1", script="again"), latest_completed=100)
        original = store.create_next_run("t1", 110).created
        store.add_run_log("t1", original.run_id, 1.0, "boom")
        finished = _finish(store, "t1", original.run_id, RunStatus.FAILED)
        clock.set(2_000.5)
        retry = store.retry_run("t1", original.run_id)
        assert retry.id > original.run_id
        assert (retry.task_id, retry.scheduled_for, retry.requested_at) == ("t1", 110, 2_000)
        assert retry.status is RunStatus.SCHEDULED
        assert (retry.started_at, retry.finished_at, retry.log) == (None, None, ())
        assert store.manual_runs("t1") == [retry]
        assert store.find_run("t1", original.run_id) == finished
        created = store.create_next_run("t1", 110).created
        assert (created.run_id, created.scheduled_for) == (retry.id, 110)
        assert (created.requested_at, created.script) == (2_000, "again")

    def test_retry_of_manual_run(self, store: TaskStore) -> None:
        """A finished manual run can be retried too."""
        store.add_task(make_task("t1"), latest_completed=100)
        forced = store.force_run("t1", 50)
        store.create_next_run("t1", 100)
        _finish(store, "t1", forced.id, RunStatus.SUCCESS)
        retry = store.retry_run("t1", forced.id)
        assert (retry.scheduled_for, retry.id != forced.id) == (50, True)

    def test_retry_run_does_not_move_schedule(self, store: TaskStore) -> None:
        """Running a retry of an old slot leaves the schedule where it was."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.create_next_run("t1", 120).created
        store.create_next_run("t1", 120)
        _finish(store, "t1", first.run_id, RunStatus.FAILED)
        retry = store.retry_run("t1", first.run_id)
        assert store.create_next_run("t1", 120).created.run_id == retry.id
        _finish(store, "t1", retry.id, RunStatus.SUCCESS)
        assert store.next_due_run("t1") == 130

    def test_retry_twice_while_queued_raises(self, store: TaskStore) -> None:
        """A second retry while the first copy waits raises RunAlreadyQueued."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        _finish(store, "t1", run.run_id, RunStatus.FAILED)
        store.retry_run("t1", run.run_id)
        with pytest.raises(RunAlreadyQueued):
            store.retry_run("t1", run.run_id)
        with pytest.raises(RunAlreadyQueued):
            store.force_run("t1", 110)
        assert len(store.manual_runs("t1")) == 1

    @pytest.mark.parametrize("status", [RunStatus.SCHEDULED, RunStatus.STARTED])
    def test_retry_of_run_in_progress_raises(self, store: TaskStore, status: RunStatus) -> None:
        """A run in progress that has not reached a terminal status cannot be retried."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 1.0, status)
        with pytest.raises(RunNotFinished):
            store.retry_run("t1", run.run_id)
        assert store.manual_runs("t1") == []

    def test_retry_of_queued_run_raises(self, store: TaskStore) -> None:
        """A manual run still waiting in the queue cannot be retried."""
        store.add_task(make_task("t1"), latest_completed=100)
        forced = store.force_run("t1", 50)
        with pytest.raises(RunNotFinished):
            store.retry_run("t1", forced.id)

    def test_retry_with_terminal_status_before_finish(self, store: TaskStore) -> None:
        """A run whose status is terminal can be retried before finish_run is called."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 1.0, RunStatus.CANCELED)
        assert store.retry_run("t1", run.run_id).scheduled_for == 110

    def test_retry_after_finish_without_terminal_status(self, store: TaskStore) -> None:
        """A run finished by finish_run can be retried whatever its recorded status."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 1.0, RunStatus.STARTED)
        store.finish_run("t1", run.run_id)
        assert store.retry_run("t1", run.run_id).scheduled_for == 110

    # -- finish_run -----------------------------------------------------------------------

    def test_finish_run_returns_run_with_finished_at(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """finish_run returns the run with its status, log, started_at and finished_at=clock()."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 111.5, RunStatus.STARTED)
        store.add_run_log("t1", run.run_id, 111.6, "working")
        store.update_run_state("t1", run.run_id, 112.0, RunStatus.SUCCESS)
        clock.set(1_500.25)
        finished = store.finish_run("t1", run.run_id)
        assert finished.id == run.run_id
        assert finished.task_id == "t1"
        assert finished.status is RunStatus.SUCCESS
        assert finished.scheduled_for == 110
        assert finished.started_at == 111.5
        assert finished.finished_at == 1_500.25
        assert finished.log == (LogEntry(when=111.6, message="working"),)
        assert store.find_run("t1", run.run_id) == finished
        assert store.currently_running("t1") == []

    def test_finish_run_twice_raises(self, store: TaskStore) -> None:
        """A run already finished is not in progress: finishing it again raises RunNotFound."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.finish_run("t1", run.run_id)
        with pytest.raises(RunNotFound):
            store.finish_run("t1", run.run_id)

    def test_finish_queued_manual_run_raises(self, store: TaskStore) -> None:
        """A manual run still in the queue is not in progress: finish_run raises RunNotFound."""
        store.add_task(make_task("t1"), latest_completed=100)
        forced = store.force_run("t1", 50)
        with pytest.raises(RunNotFound):
            store.finish_run("t1", forced.id)
        assert store.manual_runs("t1") == [forced]

    # -- run state and logs -----------------------------------------------------------------

    def test_update_run_state_started_sets_started_at(self, store: TaskStore) -> None:
        """Marking a run started records its status and started_at."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 110.25, RunStatus.STARTED)
        found = store.find_run("t1", run.run_id)
        assert (found.status, found.started_at, found.finished_at) == (
            RunStatus.STARTED,
            110.25,
            None,
        )
        [running] = store.currently_running("t1")
        assert running == found

    def test_update_run_state_other_status_keeps_started_at(self, store: TaskStore) -> None:
        """A terminal status leaves started_at as it was."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 110.25, RunStatus.STARTED)
        store.update_run_state("t1", run.run_id, 115.0, RunStatus.FAILED)
        found = store.find_run("t1", run.run_id)
        assert (found.status, found.started_at) == (RunStatus.FAILED, 110.25)

    def test_update_run_state_after_finish(self, store: TaskStore) -> None:
        """update_run_state works on a finished run."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.finish_run("t1", run.run_id)
        store.update_run_state("t1", run.run_id, 120.0, RunStatus.CANCELED)
        assert store.find_run("t1", run.run_id).status is RunStatus.CANCELED

    def test_run_log_kept_in_order(self, store: TaskStore) -> None:
        """add_run_log appends entries that find_run returns in order, after finish too."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.add_run_log("t1", run.run_id, 110.5, "one")
        store.add_run_log("t1", run.run_id, 110.5, "two")
        store.finish_run("t1", run.run_id)
        store.add_run_log("t1", run.run_id, 111.0, "three")
        assert store.find_run("t1", run.run_id).log == (
            LogEntry(when=110.5, message="one"),
            LogEntry(when=110.5, message="two"),
            LogEntry(when=111.0, message="three"),
        )

    def test_run_logs_are_per_run(self, store: TaskStore) -> None:
        """Log lines of one run do not show up in another."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.create_next_run("t1", 120).created
        second = store.create_next_run("t1", 120).created
        store.add_run_log("t1", first.run_id, 1.0, "first")
        assert store.find_run("t1", second.run_id).log == ()

    # -- history ----------------------------------------------------------------------------

    def test_find_runs_every_run_by_slot_then_id_descending(self, store: TaskStore) -> None:
        """find_runs lists queued, running and finished runs: scheduled_for, then id, descending."""
        store.add_task(make_task("t1"), latest_completed=100)
        r110 = store.create_next_run("t1", 120).created.run_id
        r120 = store.create_next_run("t1", 120).created.run_id
        store.finish_run("t1", r110)
        m115 = store.force_run("t1", 115).id
        m120 = store.force_run("t1", 120).id
        m10 = store.force_run("t1", 10).id
        store.create_next_run("t1", 120)
        runs = store.find_runs("t1")
        assert [(r.scheduled_for, r.id) for r in runs] == [
            (120, m120),
            (120, r120),
            (115, m115),
            (110, r110),
            (10, m10),
        ]
        assert all(r.task_id == "t1" for r in runs)

    def test_find_runs_only_of_that_task(self, store: TaskStore) -> None:
        """find_runs does not list other tasks' runs."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.add_task(make_task("t2"), latest_completed=100)
        store.create_next_run("t2", 110)
        assert store.find_runs("t1") == []

    # -- concurrency --------------------------------------------------------------------------

    def test_concurrent_callers_get_unique_runs(self, store: TaskStore) -> None:
        """Threads creating and finishing runs at once never share a run id or a slot."""
        tasks, per_task = 4, 50
        for index in range(tasks):
            store.add_task(make_task(f"c{index}"), latest_completed=0)
        created: dict[str, list[tuple[int, int]]] = {f"c{index}": [] for index in range(tasks)}
        errors: list[BaseException] = []
        barrier = threading.Barrier(tasks * 2)

        def work(task_id: str) -> None:
            try:
                barrier.wait()
                for _ in range(per_task):
                    run = store.create_next_run(task_id, 10**6).created
                    created[task_id].append((run.run_id, run.scheduled_for))
                    store.update_run_state(task_id, run.run_id, 1.0, RunStatus.SUCCESS)
                    store.finish_run(task_id, run.run_id)
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [
            threading.Thread(target=work, args=(f"c{index % tasks}",)) for index in range(tasks * 2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        all_ids = [run_id for runs in created.values() for run_id, _ in runs]
        assert len(all_ids) == len(set(all_ids)) == tasks * 2 * per_task
        for task_id, runs in created.items():
            slots = sorted(slot for _, slot in runs)
            assert slots == list(range(10, 10 * (2 * per_task + 1), 10))
            assert store.currently_running(task_id) == []
            assert store.next_due_run(task_id) == 10 * (2 * per_task + 1)
