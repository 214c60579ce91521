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

Each test checks a statement of :class:`~protocols.contracts.TaskStore` (its
docstring names it) and nothing beyond: behaviour that only one store promises
(MemoryStore's sorted ``list_tasks`` or increasing run ids, say) belongs in that
store's own tests.

The suite uses ``every`` schedules, whose slots are multiples of ``every``
seconds since the Unix epoch, and expects the store to compute slots and due
times with :func:`protocols.schedules.next_slot` and
:func:`protocols.schedules.due_time`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from protocols.contracts import (
    CompleteRun,
    CreateRun,
    FinishRun,
    ReadClaimState,
    ReadNextDue,
    StartRun,
    TaskStore,
)
from protocols.errors import (
    RunAlreadyQueued,
    RunNotDueYet,
    RunNotFinished,
    RunNotFound,
    TaskAlreadyExists,
    TaskNotFound,
)
from protocols.model import ClaimState, LogEntry, Run, RunCreation, RunStatus, Task, TaskStatus
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
    pytest.param(lambda s: s.claim_state(_UNKNOWN), id="claim_state"),
    pytest.param(lambda s: s.start_run(_UNKNOWN, 1, 1.0, ()), id="start_run"),
    pytest.param(
        lambda s: s.complete_run(_UNKNOWN, 1, 1.0, RunStatus.SUCCESS, ()), id="complete_run"
    ),
    pytest.param(lambda s: s.finish_run(_UNKNOWN, 1), id="finish_run"),
    pytest.param(
        lambda s: s.update_run_state(_UNKNOWN, 1, 1.0, RunStatus.STARTED), id="update_run_state"
    ),
    pytest.param(lambda s: s.add_run_log(_UNKNOWN, 1, 1.0, "x"), id="add_run_log"),
    pytest.param(lambda s: s.update_task(make_task(_UNKNOWN)), id="update_task"),
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
    pytest.param(lambda s, r: s.start_run("t1", r, 1.0, ()), id="start_run"),
    pytest.param(
        lambda s, r: s.complete_run("t1", r, 1.0, RunStatus.SUCCESS, ()), id="complete_run"
    ),
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

    def reopen_store(self, store: TaskStore, clock: Callable[[], float]) -> TaskStore:
        """Close ``store`` and open it again on the same file or database, as a process
        that restarts would; the suite then uses (and finally closes) the new one.

        The default returns ``store`` itself: a store that lives in one process's
        memory has nothing to reopen (and survives no restart).
        """
        return store

    def reopen(self, store: TaskStore, clock: Callable[[], float]) -> TaskStore:
        """:meth:`reopen_store`, remembering the new store so the fixture closes it."""
        reopened = self.reopen_store(store, clock)
        self._opened.append(reopened)
        return reopened

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The store's clock, at 1000.0 to begin with."""
        return FakeClock(1_000.0)

    @pytest.fixture
    def store(self, clock: FakeClock) -> Iterator[TaskStore]:
        """A fresh store for each test."""
        store = self.make_store(clock)
        self._opened: list[TaskStore] = [store]
        try:
            yield store
        finally:
            self.close_store(self._opened[-1])

    # -- the protocol -----------------------------------------------------------------

    def test_satisfies_task_store_protocol(self, store: TaskStore) -> None:
        """TaskStore: the store has every method of the protocol."""
        assert isinstance(store, TaskStore)

    # -- tasks ------------------------------------------------------------------------

    def test_get_task_returns_added_task(self, store: TaskStore) -> None:
        """get_task: the task as last added (an equal object)."""
        task = make_task("t1", every=30, offset=5, script="run me")
        store.add_task(task, latest_completed=100)
        assert store.get_task("t1") == task

    def test_list_tasks_returns_every_task(self, store: TaskStore) -> None:
        """list_tasks: every task, in no particular order."""
        tasks = {task_id: make_task(task_id, script=task_id) for task_id in ("b", "c", "a")}
        for task in tasks.values():
            store.add_task(task, latest_completed=100)
        listed = store.list_tasks()
        assert len(listed) == 3
        assert {task.id: task for task in listed} == tasks

    def test_list_tasks_empty(self, store: TaskStore) -> None:
        """list_tasks: every task; make_store's new store has none."""
        assert store.list_tasks() == []

    def test_add_duplicate_task_raises(self, store: TaskStore) -> None:
        """add_task: a task id already taken raises TaskAlreadyExists; the stored task is kept."""
        first = make_task("t1", script="first")
        store.add_task(first, latest_completed=100)
        with pytest.raises(TaskAlreadyExists):
            store.add_task(make_task("t1", script="second"), latest_completed=100)
        assert store.get_task("t1") == first

    def test_add_task_defaults_latest_completed_to_now(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """add_task: latest_completed None means the current time (no catch-up of earlier slots)."""
        clock.set(1_005.7)
        store.add_task(make_task("t1", every=10))
        assert store.next_due_run("t1") == 1_010
        with pytest.raises(RunNotDueYet):
            store.create_next_run("t1", 1_009)
        assert store.create_next_run("t1", 1_010).created.scheduled_for == 1_010

    def test_update_task_replaces_task(self, store: TaskStore) -> None:
        """update_task: replaces the stored task; later runs carry its script."""
        store.add_task(make_task("t1", script="old"), latest_completed=100)
        new = make_task("t1", script="new")
        store.update_task(new)
        assert store.get_task("t1") == new
        assert store.create_next_run("t1", 110).created.script == "new"

    def test_update_task_keeps_latest_completed_by_default(self, store: TaskStore) -> None:
        """update_task: None keeps the stored latest completed, so missed slots are caught up."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.update_task(make_task("t1", status=TaskStatus.INACTIVE))
        store.update_task(make_task("t1"))
        assert store.next_due_run("t1") == 110
        assert store.create_next_run("t1", 500).created.scheduled_for == 110

    def test_update_task_sets_latest_completed(self, store: TaskStore) -> None:
        """update_task: a later latest_completed moves latest completed forward."""
        store.add_task(make_task("t1"), latest_completed=100)
        assert store.next_due_run("t1") == 110
        store.update_task(make_task("t1"), latest_completed=500)
        assert store.next_due_run("t1") == 510
        with pytest.raises(RunNotDueYet):
            store.create_next_run("t1", 505)

    def test_update_task_never_moves_latest_completed_back(self, store: TaskStore) -> None:
        """update_task: an earlier latest_completed is ignored; no slot runs twice."""
        store.add_task(make_task("t1", every=10, offset=-3), latest_completed=10)
        run = store.create_next_run("t1", 17).created  # slot 20, due at 17
        assert run.scheduled_for == 20
        store.finish_run("t1", run.run_id)
        store.update_task(make_task("t1", every=10, offset=-3), latest_completed=18)
        assert store.create_next_run("t1", 27).created.scheduled_for == 30

    def test_update_task_new_schedule_applies_from_base(self, store: TaskStore) -> None:
        """update_task: later runs follow the new schedule from the current base."""
        store.add_task(make_task("t1", every=10), latest_completed=120)
        assert store.next_due_run("t1") == 130
        store.update_task(make_task("t1", every=60))
        assert store.next_due_run("t1") == 180

    def test_update_task_below_running_slot_keeps_base(self, store: TaskStore) -> None:
        """create_next_run: latest counts scheduled runs in progress, whatever update_task says."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.create_next_run("t1", 120)
        store.create_next_run("t1", 120)
        store.update_task(make_task("t1"), latest_completed=50)
        assert store.next_due_run("t1") == 130

    def test_remove_task_drops_task_and_runs(self, store: TaskStore) -> None:
        """remove_task: forgets the task and all its runs (and only its own)."""
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
        assert [r.id for r in store.find_runs("t2")] == [other.run_id]
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
        """Every method but add_task and remove_task raises TaskNotFound for an unknown task."""
        store.add_task(make_task("t1"), latest_completed=100)
        with pytest.raises(TaskNotFound) as info:
            call(store)
        assert isinstance(info.value, LookupError)

    @pytest.mark.parametrize("call", _UNKNOWN_RUN_CALLS)
    def test_unknown_run_raises_run_not_found(
        self, store: TaskStore, call: Callable[[TaskStore, int], object]
    ) -> None:
        """Unknown runs raise RunNotFound (a LookupError)."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        with pytest.raises(RunNotFound) as info:
            call(store, run.run_id + 1_000)
        assert isinstance(info.value, LookupError)

    @pytest.mark.parametrize("call", _UNKNOWN_RUN_CALLS)
    def test_run_of_another_task_raises_run_not_found(
        self, store: TaskStore, call: Callable[[TaskStore, int], object]
    ) -> None:
        """Unknown runs raise RunNotFound: a run id is known only to its own task."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.add_task(make_task("t2"), latest_completed=100)
        other = store.create_next_run("t2", 110).created
        _finish(store, "t2", other.run_id, RunStatus.SUCCESS)
        with pytest.raises(RunNotFound):
            call(store, other.run_id)

    # -- create_next_run: scheduled runs ----------------------------------------------

    def test_create_next_run_not_due_raises_with_due_at(self, store: TaskStore) -> None:
        """create_next_run: before the due time, RunNotDueYet with due_at; nothing is recorded."""
        store.add_task(make_task("t1"), latest_completed=100)
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 109)
        assert info.value.due_at == 110
        assert store.currently_running("t1") == []
        assert store.find_runs("t1") == []

    def test_create_next_run_creates_due_run(self, store: TaskStore) -> None:
        """create_next_run: the next slot's run once due, its script, next_due and has_queue."""
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
        """create_next_run: the returned run is recorded as in progress, status scheduled."""
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
        """create_next_run: the slot after latest, so missed slots come one per call, in order."""
        store.add_task(make_task("t1"), latest_completed=100)
        creations = [store.create_next_run("t1", 135) for _ in range(3)]
        assert [c.created.scheduled_for for c in creations] == [110, 120, 130]
        assert [c.created.due_at for c in creations] == [110, 120, 130]
        assert [c.next_due for c in creations] == [120, 130, 140]
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 135)
        assert info.value.due_at == 140
        assert sorted(r.scheduled_for for r in store.currently_running("t1")) == [110, 120, 130]

    def test_offset_delays_due_time_not_slot(self, store: TaskStore) -> None:
        """create_next_run: a run is for its slot but due at slot + offset."""
        store.add_task(make_task("t1", offset=3), latest_completed=100)
        assert store.next_due_run("t1") == 113
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 112)
        assert info.value.due_at == 113
        creation = store.create_next_run("t1", 113)
        assert (creation.created.scheduled_for, creation.created.due_at) == (110, 113)
        assert creation.next_due == 123

    def test_negative_offset_makes_run_due_early(self, store: TaskStore) -> None:
        """create_next_run: due at slot + offset, a negative offset too."""
        store.add_task(make_task("t1", offset=-3), latest_completed=100)
        assert store.next_due_run("t1") == 107
        creation = store.create_next_run("t1", 107)
        assert (creation.created.scheduled_for, creation.created.due_at) == (110, 107)
        assert creation.next_due == 117

    def test_cron_schedule(self, store: TaskStore) -> None:
        """create_next_run: a cron task's runs are for its cron slots, one per call."""
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
        """next_due_run: a cron task's slots are in its time zone (09:00 Paris is 08:00 UTC)."""
        # 2024-01-15T00:00:00Z = 1705276800
        store.add_task(
            make_task("t1", cron="0 9 * * *", timezone="Europe/Paris"),
            latest_completed=1_705_276_800,
        )
        assert store.next_due_run("t1") == 1_705_276_800 + 8 * 3_600

    def test_next_due_run_counts_scheduled_runs_in_progress(self, store: TaskStore) -> None:
        """next_due_run: the due time of the slot after latest, runs in progress included."""
        store.add_task(make_task("t1"), latest_completed=100)
        assert store.next_due_run("t1") == 110
        store.create_next_run("t1", 200)
        assert store.next_due_run("t1") == 120
        store.create_next_run("t1", 200)
        assert store.next_due_run("t1") == 130

    def test_finish_advances_latest_completed(self, store: TaskStore) -> None:
        """finish_run: latest completed becomes max(latest completed, scheduled_for)."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.create_next_run("t1", 120).created
        second = store.create_next_run("t1", 120).created
        _finish(store, "t1", second.run_id, RunStatus.SUCCESS)
        _finish(store, "t1", first.run_id, RunStatus.FAILED)
        assert store.currently_running("t1") == []
        assert store.next_due_run("t1") == 130
        assert store.create_next_run("t1", 130).created.scheduled_for == 130

    def test_failed_and_canceled_runs_also_complete_their_slot(self, store: TaskStore) -> None:
        """finish_run: a scheduled run completes its slot whatever its status."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        _finish(store, "t1", run.run_id, RunStatus.CANCELED)
        assert store.create_next_run("t1", 120).created.scheduled_for == 120

    def test_run_ids_are_ints_unique_across_the_store(self, store: TaskStore) -> None:
        """Run ids are int and unique across the store (scheduled and manual, every task)."""
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
        assert len(set(ids)) == len(ids)

    # -- manual runs --------------------------------------------------------------------

    def test_force_run_queues_manual_run(self, store: TaskStore, clock: FakeClock) -> None:
        """force_run: queues a manual run, status scheduled, requested_at the current time."""
        store.add_task(make_task("t1"), latest_completed=100)
        clock.set(1_234.0)
        run = store.force_run("t1", 50)
        assert (run.task_id, run.scheduled_for, run.requested_at) == ("t1", 50, 1_234)
        assert run.status is RunStatus.SCHEDULED
        assert (run.started_at, run.finished_at, run.log) == (None, None, ())
        assert store.manual_runs("t1") == [run]
        assert store.currently_running("t1") == []
        assert store.find_run("t1", run.id) == run

    def test_force_run_requested_at_never_zero(self, store: TaskStore, clock: FakeClock) -> None:
        """force_run: requested_at is never 0, even when the clock reads 0."""
        store.add_task(make_task("t1"), latest_completed=100)
        clock.set(0.0)
        run = store.force_run("t1", 50)
        assert run.requested_at != 0
        created = store.create_next_run("t1", 100).created
        assert created.is_manual
        assert created.requested_at == run.requested_at

    def test_force_run_duplicate_queued_slot_raises(self, store: TaskStore) -> None:
        """force_run: RunAlreadyQueued if a manual run for the same slot waits."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.force_run("t1", 50)
        with pytest.raises(RunAlreadyQueued):
            store.force_run("t1", 50)
        assert store.manual_runs("t1") == [first]

    def test_force_run_same_slot_again_once_dequeued(self, store: TaskStore) -> None:
        """force_run: RunAlreadyQueued only while a run for the slot waits, not once dequeued."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.force_run("t1", 50)
        store.create_next_run("t1", 100)
        second = store.force_run("t1", 50)
        assert second.id != first.id
        assert [r.id for r in store.manual_runs("t1")] == [second.id]

    def test_force_run_slot_of_scheduled_run_allowed(self, store: TaskStore) -> None:
        """force_run: only a waiting manual run blocks its slot, not a scheduled run."""
        store.add_task(make_task("t1"), latest_completed=100)
        scheduled = store.create_next_run("t1", 110).created
        forced = store.force_run("t1", scheduled.scheduled_for)
        assert forced.scheduled_for == 110

    def test_manual_runs_first_fifo_whatever_now(self, store: TaskStore, clock: FakeClock) -> None:
        """create_next_run: manual runs first, FIFO, whatever now."""
        store.add_task(make_task("t1", script="s"), latest_completed=100)
        forced = []
        for slot in (70, 50, 60):
            clock.advance(1)
            forced.append(store.force_run("t1", slot))
        clock.set(5_000)
        creations = [store.create_next_run("t1", 105) for _ in range(3)]
        assert [c.created.run_id for c in creations] == [r.id for r in forced]
        assert [c.created.scheduled_for for c in creations] == [70, 50, 60]
        assert [c.created.requested_at for c in creations] == [1_001, 1_002, 1_003]
        assert [c.created.script for c in creations] == ["s", "s", "s"]
        assert [c.has_queue for c in creations] == [True, True, False]
        assert [c.next_due for c in creations] == [110, 110, 110]
        with pytest.raises(RunNotDueYet) as info:
            store.create_next_run("t1", 105)
        assert info.value.due_at == 110

    def test_manual_runs_before_due_scheduled_run(self, store: TaskStore) -> None:
        """create_next_run: manual runs first, even before a scheduled run that is due."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.force_run("t1", 500)
        first = store.create_next_run("t1", 150)
        assert (first.created.scheduled_for, first.created.is_manual) == (500, True)
        assert first.next_due == 110
        second = store.create_next_run("t1", 150)
        assert (second.created.scheduled_for, second.created.is_manual) == (110, False)

    def test_manual_creation_next_due_counts_scheduled_in_progress(self, store: TaskStore) -> None:
        """create_next_run: next_due is the next scheduled slot's due time, for manual runs too."""
        store.add_task(make_task("t1", offset=2), latest_completed=100)
        store.create_next_run("t1", 112)
        store.force_run("t1", 40)
        assert store.create_next_run("t1", 112).next_due == 122

    def test_dequeued_manual_run_is_in_progress(self, store: TaskStore) -> None:
        """create_next_run: a dequeued manual run leaves the queue and is in progress."""
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
        """create_next_run: latest counts scheduled runs in progress only, not manual ones."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.force_run("t1", 10_000)
        store.create_next_run("t1", 100)
        assert store.next_due_run("t1") == 110
        assert store.create_next_run("t1", 110).created.scheduled_for == 110

    @pytest.mark.parametrize("slot", [50, 10_000])
    def test_finished_manual_run_does_not_move_schedule(self, store: TaskStore, slot: int) -> None:
        """finish_run: only a scheduled (not manual) run moves latest completed."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.force_run("t1", slot)
        created = store.create_next_run("t1", 100).created
        _finish(store, "t1", created.run_id, RunStatus.SUCCESS)
        assert store.next_due_run("t1") == 110
        assert store.create_next_run("t1", 110).created.scheduled_for == 110

    def test_manual_runs_lists_queue_in_order(self, store: TaskStore) -> None:
        """manual_runs: manual runs waiting in the queue, in order."""
        store.add_task(make_task("t1"), latest_completed=100)
        forced = [store.force_run("t1", slot) for slot in (300, 100, 200)]
        listed = store.manual_runs("t1")
        assert listed == forced
        assert {run.status for run in listed} == {RunStatus.SCHEDULED}
        assert all(run.requested_at != 0 for run in listed)

    def test_currently_running_lists_created_unfinished_runs(self, store: TaskStore) -> None:
        """currently_running: runs created and not finished, both kinds, in no particular order."""
        store.add_task(make_task("t1"), latest_completed=100)
        scheduled = store.create_next_run("t1", 120).created
        store.force_run("t1", 50)
        store.force_run("t1", 60)
        store.force_run("t1", 70)
        manual = store.create_next_run("t1", 120).created
        later = store.create_next_run("t1", 120).created
        running = {r.id: r for r in store.currently_running("t1")}
        assert len(running) == 3
        assert {run_id: r.requested_at != 0 for run_id, r in running.items()} == {
            scheduled.run_id: False,
            manual.run_id: True,
            later.run_id: True,
        }
        store.finish_run("t1", manual.run_id)
        assert sorted(r.id for r in store.currently_running("t1")) == sorted(
            [scheduled.run_id, later.run_id]
        )

    # -- retry_run ------------------------------------------------------------------------

    def test_retry_run_queues_copy_of_finished_run(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """retry_run: queues a copy of a finished run, same slot, under a new id."""
        store.add_task(make_task("t1", script="again"), latest_completed=100)
        original = store.create_next_run("t1", 110).created
        store.add_run_log("t1", original.run_id, 1.0, "boom")
        finished = _finish(store, "t1", original.run_id, RunStatus.FAILED)
        clock.set(2_000.0)
        retry = store.retry_run("t1", original.run_id)
        assert retry.id != original.run_id
        assert (retry.task_id, retry.scheduled_for, retry.requested_at) == ("t1", 110, 2_000)
        assert retry.status is RunStatus.SCHEDULED
        assert (retry.started_at, retry.finished_at, retry.log) == (None, None, ())
        assert store.manual_runs("t1") == [retry]
        assert store.find_run("t1", original.run_id) == finished
        created = store.create_next_run("t1", 110).created
        assert (created.run_id, created.scheduled_for) == (retry.id, 110)
        assert (created.requested_at, created.script) == (2_000, "again")

    def test_retry_of_manual_run(self, store: TaskStore) -> None:
        """retry_run: a finished manual run is a finished run too."""
        store.add_task(make_task("t1"), latest_completed=100)
        forced = store.force_run("t1", 50)
        store.create_next_run("t1", 100)
        _finish(store, "t1", forced.id, RunStatus.SUCCESS)
        retry = store.retry_run("t1", forced.id)
        assert (retry.scheduled_for, retry.id != forced.id) == (50, True)

    def test_retry_run_does_not_move_schedule(self, store: TaskStore) -> None:
        """finish_run: a retry is a manual run, so it does not move latest completed."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.create_next_run("t1", 120).created
        store.create_next_run("t1", 120)
        _finish(store, "t1", first.run_id, RunStatus.FAILED)
        retry = store.retry_run("t1", first.run_id)
        assert store.create_next_run("t1", 120).created.run_id == retry.id
        _finish(store, "t1", retry.id, RunStatus.SUCCESS)
        assert store.next_due_run("t1") == 130

    def test_retry_twice_while_queued_raises(self, store: TaskStore) -> None:
        """retry_run: queued as by force_run, so RunAlreadyQueued while a copy waits."""
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
        """retry_run: a run in progress with a non-terminal status raises RunNotFinished."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 1.0, status)
        with pytest.raises(RunNotFinished):
            store.retry_run("t1", run.run_id)
        assert store.manual_runs("t1") == []

    def test_retry_of_queued_run_raises(self, store: TaskStore) -> None:
        """retry_run: a run still queued raises RunNotFinished."""
        store.add_task(make_task("t1"), latest_completed=100)
        forced = store.force_run("t1", 50)
        with pytest.raises(RunNotFinished):
            store.retry_run("t1", forced.id)

    def test_retry_after_finish_without_terminal_status(self, store: TaskStore) -> None:
        """retry_run: a run finish_run has finished can be retried, whatever its status."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 1.0, RunStatus.STARTED)
        store.finish_run("t1", run.run_id)
        assert store.retry_run("t1", run.run_id).scheduled_for == 110

    # -- finish_run -----------------------------------------------------------------------

    def test_finish_run_returns_run_with_finished_at(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """finish_run: returns the finished run, finished_at the current time."""
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

    # -- run state and logs -----------------------------------------------------------------

    def test_update_run_state_started_sets_started_at(self, store: TaskStore) -> None:
        """update_run_state: sets the status; STARTED also sets started_at to when."""
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
        """update_run_state: statuses other than STARTED leave started_at."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.update_run_state("t1", run.run_id, 110.25, RunStatus.STARTED)
        store.update_run_state("t1", run.run_id, 115.0, RunStatus.FAILED)
        found = store.find_run("t1", run.run_id)
        assert (found.status, found.started_at) == (RunStatus.FAILED, 110.25)

    def test_run_log_kept_in_order(self, store: TaskStore) -> None:
        """add_run_log: appends a line to the run's log, which find_run returns in order."""
        store.add_task(make_task("t1"), latest_completed=100)
        run = store.create_next_run("t1", 110).created
        store.add_run_log("t1", run.run_id, 110.5, "one")
        store.add_run_log("t1", run.run_id, 110.5, "two")
        store.add_run_log("t1", run.run_id, 111.0, "three")
        store.finish_run("t1", run.run_id)
        assert store.find_run("t1", run.run_id).log == (
            LogEntry(when=110.5, message="one"),
            LogEntry(when=110.5, message="two"),
            LogEntry(when=111.0, message="three"),
        )

    def test_run_logs_are_per_run(self, store: TaskStore) -> None:
        """add_run_log: appends to that run's log only."""
        store.add_task(make_task("t1"), latest_completed=100)
        first = store.create_next_run("t1", 120).created
        second = store.create_next_run("t1", 120).created
        store.add_run_log("t1", first.run_id, 1.0, "first")
        assert store.find_run("t1", second.run_id).log == ()

    # -- history ----------------------------------------------------------------------------

    def test_find_runs_every_run_by_slot_then_id_descending(self, store: TaskStore) -> None:
        """find_runs: every run, queued, in progress or finished, by scheduled_for then id, desc."""
        store.add_task(make_task("t1"), latest_completed=100)
        r110 = store.create_next_run("t1", 120).created.run_id
        r120 = store.create_next_run("t1", 120).created.run_id
        store.finish_run("t1", r110)
        m115 = store.force_run("t1", 115).id
        m120 = store.force_run("t1", 120).id
        m10 = store.force_run("t1", 10).id
        store.create_next_run("t1", 120)
        runs = store.find_runs("t1")
        # Run ids are only unique: which of the two runs for slot 120 comes first is
        # decided by their ids, whatever order they were created in.
        first, second = sorted([m120, r120], reverse=True)
        assert [(r.scheduled_for, r.id) for r in runs] == [
            (120, first),
            (120, second),
            (115, m115),
            (110, r110),
            (10, m10),
        ]
        assert all(r.task_id == "t1" for r in runs)

    def test_find_runs_only_of_that_task(self, store: TaskStore) -> None:
        """find_runs: every run of that task, and only of that task."""
        store.add_task(make_task("t1"), latest_completed=100)
        store.add_task(make_task("t2"), latest_completed=100)
        store.create_next_run("t2", 110)
        assert store.find_runs("t1") == []

    # -- concurrency --------------------------------------------------------------------------

    def test_concurrent_callers_get_unique_runs(self, store: TaskStore) -> None:
        """A store is safe for several threads: ids stay unique, no slot is lost or repeated."""
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

    # -- the run transitions ----------------------------------------------------------------

    def test_start_run_sets_started_and_its_lines_at_once(self, store: TaskStore) -> None:
        """start_run: status started, started_at, the lines appended in order, and the
        execution counted."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        run = store.create_next_run("t1", 1_000).created
        assert store.find_run("t1", run.run_id).executions == 0
        store.start_run("t1", run.run_id, 7.5, ["resumed", "started"])
        stored = store.find_run("t1", run.run_id)
        assert (stored.status, stored.started_at, stored.executions) == (
            RunStatus.STARTED,
            7.5,
            1,
        )
        store.start_run("t1", run.run_id, 9.0, ["again"])  # executed again after a crash
        stored = store.find_run("t1", run.run_id)
        assert (stored.started_at, stored.executions) == (9.0, 2)
        assert [(line.when, line.message) for line in stored.log] == [
            (7.5, "resumed"),
            (7.5, "started"),
            (9.0, "again"),
        ]
        assert [r.id for r in store.claim_state("t1").started] == [run.run_id]

    def test_complete_run_records_the_outcome_and_finishes_at_once(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """complete_run: the lines, the terminal status and the finish (latest completed
        advanced, finished_at the store's clock) in one step; the finished run returned."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        run = store.create_next_run("t1", 1_000).created
        store.start_run("t1", run.run_id, 2.0, ["started"])
        clock.set(2_000.0)
        done = store.complete_run("t1", run.run_id, 3.0, RunStatus.FAILED, ["boom", "bye"])
        assert done is not None
        assert done.status is RunStatus.FAILED
        assert done.finished_at == 2_000.0
        assert [line.message for line in done.log] == ["started", "boom", "bye"]
        assert store.find_run("t1", run.run_id) == done
        assert store.currently_running("t1") == []
        assert store.next_due_run("t1") == 120  # latest completed is 110 now

    def test_complete_run_is_idempotent(self, store: TaskStore) -> None:
        """complete_run: a run already finished is left as it is and None is returned."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        run = store.create_next_run("t1", 1_000).created
        first = store.complete_run("t1", run.run_id, 3.0, RunStatus.SUCCESS, ["ok"])
        again = store.complete_run("t1", run.run_id, 4.0, RunStatus.FAILED, ["again"])
        assert again is None
        assert store.find_run("t1", run.run_id) == first

    def test_complete_run_of_a_manual_run_keeps_latest_completed(self, store: TaskStore) -> None:
        """complete_run: like finish_run, only a scheduled run advances latest completed."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        store.force_run("t1", 500)
        manual = store.create_next_run("t1", 1_000).created
        store.complete_run("t1", manual.run_id, 3.0, RunStatus.SUCCESS, [])
        assert store.next_due_run("t1") == 110

    def test_complete_run_needs_a_terminal_status(self, store: TaskStore) -> None:
        """complete_run: a status that is not terminal raises ValueError; nothing changes."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        run = store.create_next_run("t1", 1_000).created
        with pytest.raises(ValueError, match="terminal"):
            store.complete_run("t1", run.run_id, 3.0, RunStatus.STARTED, ["x"])
        assert [r.id for r in store.currently_running("t1")] == [run.run_id]
        assert store.find_run("t1", run.run_id).log == ()

    # -- apply: the run path's ops, batched --------------------------------------------------

    def test_apply_returns_each_ops_result_in_order(self, store: TaskStore) -> None:
        """apply: one result per op, in order; CreateRun creates and starts the run (its
        lines logged, executed once) and returns the RunCreation."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        created, state = store.apply(
            [CreateRun("t1", 1_000, 5.0, ("started",)), ReadClaimState("t1")]
        )
        assert isinstance(created, RunCreation)
        run = created.created
        assert run.scheduled_for == 110
        assert created.next_due == 120
        stored = store.find_run("t1", run.run_id)
        assert (stored.status, stored.started_at, stored.executions) == (
            RunStatus.STARTED,
            5.0,
            1,
        )
        assert [line.message for line in stored.log] == ["started"]
        assert isinstance(state, ClaimState)
        assert [r.id for r in state.started] == [run.run_id]

    def test_apply_one_failing_op_fails_no_other(self, store: TaskStore) -> None:
        """apply: an op that raises is that op's result, and changes nothing; the ops
        around it take effect."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        first, unknown, not_due, finished = store.apply(
            [
                CreateRun("t1", 1_000, 5.0, ("started",)),
                CreateRun("ghost", 1_000, 5.0, ("started",)),
                CreateRun("t1", 50, 5.0, ("started",)),
                ReadNextDue("t1"),
            ]
        )
        assert isinstance(first, RunCreation)
        assert isinstance(unknown, TaskNotFound)
        assert isinstance(not_due, RunNotDueYet)
        assert not_due.due_at == 120
        assert finished == 120
        assert [r.id for r in store.currently_running("t1")] == [first.created.run_id]
        (done,) = store.apply(
            [CompleteRun("t1", first.created.run_id, 7.0, RunStatus.SUCCESS, ("ok",))]
        )
        assert done is True
        assert store.find_run("t1", first.created.run_id).status is RunStatus.SUCCESS
        assert store.currently_running("t1") == []
        (again,) = store.apply(
            [CompleteRun("t1", first.created.run_id, 8.0, RunStatus.FAILED, ("late",))]
        )
        assert again is False  # idempotent: finished already, nothing changed
        assert store.find_run("t1", first.created.run_id).status is RunStatus.SUCCESS

    def test_apply_start_finish_and_reads(self, store: TaskStore) -> None:
        """apply: StartRun, FinishRun and ReadNextDue do what start_run, finish_run and
        next_due_run do."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        run = store.create_next_run("t1", 1_000).created
        started, finished, next_due = store.apply(
            [
                StartRun("t1", run.run_id, 4.0, ("again",)),
                FinishRun("t1", run.run_id),
                ReadNextDue("t1"),
            ]
        )
        assert started is None
        assert isinstance(finished, Run)
        assert finished.started_at == 4.0
        assert next_due == 120

    def test_does_io_is_a_bool(self, store: TaskStore) -> None:
        """does_io: says whether calls may block on I/O (the scheduler's store actor)."""
        assert store.does_io in (True, False)

    def test_transitions_refuse_a_queued_run(self, store: TaskStore) -> None:
        """start_run and complete_run: a manual run still queued is not in progress."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        queued = store.force_run("t1", 500)
        with pytest.raises(RunNotFound):
            store.start_run("t1", queued.id, 1.0, ["x"])
        with pytest.raises(RunNotFound):
            store.complete_run("t1", queued.id, 1.0, RunStatus.SUCCESS, ["x"])
        assert [r.id for r in store.manual_runs("t1")] == [queued.id]

    # -- claim_state ----------------------------------------------------------------------

    def test_claim_state_reads_due_time_queue_and_runs_split_by_start(
        self, store: TaskStore
    ) -> None:
        """claim_state: next_due as next_due_run, has_queue as manual_runs, and the runs in
        progress split into unstarted (scheduled) and started (any other status), by id."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        empty = store.claim_state("t1")
        assert (empty.next_due, empty.has_queue, empty.unstarted, empty.started) == (
            110,
            False,
            (),
            (),
        )
        never, started, recorded = (store.create_next_run("t1", 1_000).created for _ in range(3))
        store.update_run_state("t1", started.run_id, 5.0, RunStatus.STARTED)
        store.update_run_state("t1", recorded.run_id, 6.0, RunStatus.SUCCESS)
        store.force_run("t1", 50)
        state = store.claim_state("t1")
        assert state.next_due == store.next_due_run("t1") == 140
        assert state.has_queue
        assert [run.id for run in state.unstarted] == [never.run_id]
        assert [run.id for run in state.started] == sorted([started.run_id, recorded.run_id])
        assert {run.id: run for run in state.in_progress} == {
            run.id: run for run in store.currently_running("t1")
        }

    # -- a restart ------------------------------------------------------------------------

    def test_reopened_store_keeps_tasks_runs_logs_and_queues(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """TaskStore: state survives a restart (reopen): tasks, latest completed, runs in
        progress and finished with their statuses and logs, and the manual queue in order."""
        store.add_task(make_task("t1", every=10, script="one"), latest_completed=100)
        store.add_task(make_task("t2", every=5, status=TaskStatus.INACTIVE), latest_completed=50)
        done = store.create_next_run("t1", 1_000).created
        store.update_run_state("t1", done.run_id, 2.0, RunStatus.STARTED)
        store.add_run_log("t1", done.run_id, 2.0, "started")
        store.add_run_log("t1", done.run_id, 3.0, "finished")
        store.update_run_state("t1", done.run_id, 3.0, RunStatus.SUCCESS)
        store.finish_run("t1", done.run_id)
        running = store.create_next_run("t1", 1_000).created
        store.update_run_state("t1", running.run_id, 4.0, RunStatus.STARTED)
        store.force_run("t1", 500)
        store.force_run("t1", 400)

        def snapshot(store: TaskStore) -> dict[str, Any]:
            return {
                "tasks": sorted(store.list_tasks(), key=lambda task: task.id),
                "runs": store.find_runs("t1"),
                "running": store.currently_running("t1"),
                "queue": store.manual_runs("t1"),
                "next_due": (store.next_due_run("t1"), store.next_due_run("t2")),
                "run": store.find_run("t1", done.run_id),
            }

        before = snapshot(store)
        store = self.reopen(store, clock)
        after = snapshot(store)
        assert after == before
        assert [line.message for line in after["run"].log] == ["started", "finished"]
        assert [run.scheduled_for for run in after["queue"]] == [500, 400]

    def test_reopened_store_continues_the_schedule_and_never_reuses_run_ids(
        self, store: TaskStore, clock: FakeClock
    ) -> None:
        """TaskStore: after a restart (reopen) the next slot follows the last one created,
        and new run ids differ from every id the store still holds."""
        store.add_task(make_task("t1", every=10), latest_completed=100)
        kept = [store.create_next_run("t1", 1_000).created for _ in range(3)]
        _finish(store, "t1", kept[0].run_id, RunStatus.SUCCESS)
        store = self.reopen(store, clock)
        created = store.create_next_run("t1", 1_000).created
        assert created.scheduled_for == 140
        assert created.run_id not in {run.run_id for run in kept}
        assert {run.id for run in store.currently_running("t1")} == {
            kept[1].run_id,
            kept[2].run_id,
            created.run_id,
        }
