"""Regression tests for the defects of issue 7: runs doubled, tasks jammed, state unbounded.

Each test failed on commit 325427f and names the defect it pins down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from actors import Scheduler
from protocols import (
    MemoryStore,
    QueuedRun,
    RunStatus,
    SchedulerError,
    SchedulerTimeout,
    Task,
    TaskNotClaimed,
    TaskNotFound,
    TaskOptions,
    TaskStatus,
)
from protocols.contracts import CreateRun, StoreOp
from protocols.model import ClaimState, Run, RunCreation
from protocols.testing.hostile import CancelMode, FailingLogger, HostileExecutor

SETTLE = 30.0


class Rig:
    """A started Scheduler on a MemoryStore and a HostileExecutor (time: tick(now))."""

    def __init__(self, *, logger: Any = None, store: MemoryStore | None = None, **kw: Any) -> None:
        self.store = store if store is not None else MemoryStore(clock=lambda: 1_000_000.0)
        self.executor = HostileExecutor()
        self.registry = CollectorRegistry()
        self.logger = logger
        self.scheduler = Scheduler(
            self.store, self.executor, now=5, registry=self.registry, logger=logger, **kw
        )
        self.scheduler.start()

    def add(
        self,
        task_id: str = "t1",
        *,
        every: int = 1,
        concurrency: int = 1,
        active: bool = True,
        latest_completed: int = 5,
    ) -> Task:
        task = Task(
            id=task_id,
            options=TaskOptions(name=task_id, every=every, concurrency=concurrency),
            status=TaskStatus.ACTIVE if active else TaskStatus.INACTIVE,
            script="job",
        )
        self.store.add_task(task, latest_completed=latest_completed)
        return task

    def tick(self, now: int) -> None:
        self.scheduler.tick(now)
        self.settle()

    def settle(self) -> None:
        assert self.scheduler.settle(SETTLE), "the actor system did not settle"

    def executions(self, run_id: int) -> int:
        return sum(1 for run in self.executor.executed if run.run_id == run_id)

    def running(self, task_id: str = "t1") -> list[QueuedRun]:
        return self.executor.running(task_id)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def errors(self, kind: str) -> float:
        return self.metric("task_scheduler_errors_counter_total", {"error_type": kind})

    def stop(self) -> None:
        self.executor.release_wait()
        self.scheduler.stop()


@pytest.fixture
def rig() -> Iterator[Rig]:
    """A started Rig, stopped at teardown."""
    made = Rig()
    yield made
    made.stop()


# -- 1: a run executes twice after release and re-claim ---------------------------------


def test_a_run_whose_cancel_completes_later_is_never_executed_twice(rig: Rig) -> None:
    """Defect 1: released with a slow cancel, re-claimed: the run is not resumed meanwhile."""
    task = rig.add()
    rig.scheduler.claim_task(task)
    rig.tick(6)
    (run,) = rig.running()
    rig.executor.cancel_mode = CancelMode.SLOW
    rig.scheduler.release_task("t1")
    assert rig.store.find_run("t1", run.run_id).status is RunStatus.STARTED
    rig.scheduler.claim_task(task)
    rig.settle()
    rig.tick(7)
    assert rig.executions(run.run_id) == 1
    assert [r.run_id for r in rig.running()] == [run.run_id]  # it keeps its slot
    assert rig.scheduler.stats().claimed == 1
    rig.executor.finish_cancels()
    rig.settle()
    assert rig.store.find_run("t1", run.run_id).status is RunStatus.CANCELED
    # The slot is free again: the re-claimed task goes on with its next slot.
    assert [r.scheduled_for for r in rig.running()] == [7]
    assert rig.executions(run.run_id) == 1


def test_a_released_task_is_releasing_until_its_slow_cancel_completes(rig: Rig) -> None:
    """Defect 1: stats() shows the released task until its cancelled run is recorded."""
    rig.scheduler.claim_task(rig.add())
    rig.tick(6)
    (run,) = rig.running()
    rig.executor.cancel_mode = CancelMode.SLOW
    rig.scheduler.release_task("t1")
    stats = rig.scheduler.stats()
    assert (stats.claimed, stats.releasing) == (0, 1)
    rig.executor.finish_cancels()
    rig.settle()
    stats = rig.scheduler.stats()
    assert (stats.claimed, stats.releasing) == (0, 0)
    assert rig.store.find_run("t1", run.run_id).status is RunStatus.CANCELED


# -- 2: a finished run executes again after a restart -----------------------------------


def test_a_run_whose_outcome_is_recorded_is_completed_not_executed_on_claim() -> None:
    """Defect 2: terminal state recorded, finish_run never called: the claim completes it."""
    store = MemoryStore(clock=lambda: 1_000_000.0)
    rig = Rig(store=store)
    try:
        task = rig.add()
        created = store.create_next_run("t1", 6)  # "the crashed process"
        run_id = created.created.run_id
        store.update_run_state("t1", run_id, 1.0, RunStatus.STARTED)
        store.update_run_state("t1", run_id, 2.0, RunStatus.SUCCESS)
        rig.scheduler.claim_task(task)
        rig.settle()
        assert rig.executions(run_id) == 0
        assert store.currently_running("t1") == []
        assert store.find_run("t1", run_id).status is RunStatus.SUCCESS
        assert store.latest_completed("t1") == 6
        rig.tick(7)  # the schedule goes on after the completed slot
        assert [r.scheduled_for for r in rig.running()] == [7]
    finally:
        rig.stop()


# -- 3: a failing logger jams a task ----------------------------------------------------


@pytest.mark.parametrize("event", ["run_finished", "run_failed"])
def test_a_logger_that_raises_when_a_run_ends_never_jams_the_task(event: str) -> None:
    """Defect 3: the logger raises as the run is recorded: the slot is freed, it is counted."""
    logger = FailingLogger({event})
    rig = Rig(logger=logger)
    try:
        rig.scheduler.claim_task(rig.add())
        rig.tick(6)
        (run,) = rig.running()
        if event == "run_finished":
            rig.executor.succeed(run.run_id)
        else:
            rig.executor.fail(run.run_id, "boom")
        rig.settle()
        expected = RunStatus.SUCCESS if event == "run_finished" else RunStatus.FAILED
        assert rig.store.find_run("t1", run.run_id).status is expected
        assert rig.store.currently_running("t1") == []
        assert rig.errors("log error") == 1
        rig.tick(7)
        assert [r.scheduled_for for r in rig.running()] == [7]
    finally:
        rig.stop()


def test_a_logger_that_always_raises_never_stops_runs() -> None:
    """Defect 3: with every log call raising, runs are still created, recorded and counted."""
    logger = FailingLogger()
    rig = Rig(logger=logger)
    try:
        rig.scheduler.claim_task(rig.add())
        for now in (6, 7, 8):
            rig.tick(now)
            (run,) = rig.running()
            rig.executor.succeed(run.run_id)
            rig.settle()
        assert [r.status for r in rig.store.find_runs("t1")] == [RunStatus.SUCCESS] * 3
        assert (
            rig.metric("task_scheduler_runs_complete_total", {"task_id": "t1", "status": "success"})
            == 3
        )
        assert rig.errors("log error") == logger.failures > 0
    finally:
        rig.stop()


# -- 4: a raising cancel() kills a RunnerActor ------------------------------------------


def test_a_cancel_that_raises_at_stop_leaves_no_run_started() -> None:
    """Defect 4: cancel() raises during stop: the runner survives and records the run."""
    rig = Rig()
    rig.scheduler.claim_task(rig.add())
    rig.tick(6)
    (run,) = rig.running()
    rig.executor.cancel_mode = CancelMode.RAISE
    rig.stop()  # HostileExecutor.wait() then cancels the run for real
    assert rig.executor.cancel_calls[run.run_id] == 1
    assert rig.store.find_run("t1", run.run_id).status is RunStatus.CANCELED
    assert rig.store.currently_running("t1") == []
    assert rig.errors("executor error") == 1
    assert rig.errors("internal error") == 0


def test_a_cancel_that_raises_through_cancel_run_keeps_the_run_recordable(rig: Rig) -> None:
    """Defect 4: cancel_run's cancel() raises: counted; the run's real outcome is recorded."""
    rig.scheduler.claim_task(rig.add())
    rig.tick(6)
    (run,) = rig.running()
    rig.executor.cancel_mode = CancelMode.RAISE
    rig.scheduler.cancel_run("t1", run.run_id)
    assert rig.errors("executor error") == 1
    rig.executor.succeed(run.run_id)
    rig.settle()
    assert rig.store.find_run("t1", run.run_id).status is RunStatus.SUCCESS
    rig.tick(7)
    assert [r.scheduled_for for r in rig.running()] == [7]


# -- 5: stop(grace) waits the whole grace for runs that will never start ---------------


class _Events:
    """A structlog-shaped logger that sets an event when it sees ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen = threading.Event()

    def bind(self, **_: Any) -> _Events:
        return self

    def _log(self, event: str = "", *_: Any, **__: Any) -> None:
        if event == self.name:
            self.seen.set()

    debug = info = warning = error = exception = critical = msg = _log


def test_stop_with_grace_does_not_wait_for_resumed_runs_that_never_start() -> None:
    """Defect 5: runs waiting to be resumed do not hold stop(grace) for the whole grace."""
    store = MemoryStore(clock=lambda: 1_000_000.0)
    events = _Events("scheduler_draining")
    rig = Rig(store=store, logger=events)
    task = rig.add()
    left = [store.create_next_run("t1", 8).created.run_id for _ in range(3)]  # a crash left 3
    rig.scheduler.claim_task(task)
    rig.settle()
    assert [r.run_id for r in rig.running()] == left[:1]  # concurrency 1: two wait
    grace = 60.0
    stopper = threading.Thread(target=rig.scheduler.stop, kwargs={"grace": grace})
    stopper.start()
    try:
        assert events.seen.wait(SETTLE), "stop(grace) never started draining"
        rig.executor.succeed(left[0])
        stopper.join(SETTLE)
        assert not stopper.is_alive(), f"stop(grace={grace}) still waits for runs never started"
    finally:
        rig.executor.succeed_all()
        stopper.join(SETTLE)
    assert rig.executions(left[1]) == rig.executions(left[2]) == 0
    assert sorted(r.id for r in store.currently_running("t1")) == left[1:]  # for the next claim


# -- 8: the due-time heap leaks ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["inactive", "far-future"])
def test_claim_release_cycles_leave_the_index_bounded_by_what_is_claimed(
    rig: Rig, kind: str
) -> None:
    """Defect 8: 5,000 claim/release cycles leave at most 64 index items, none claimed."""
    if kind == "inactive":
        task = rig.add(active=False)
    else:
        task = rig.add(every=3600 * 24 * 365)
    kept = rig.add("kept", every=3600)
    rig.scheduler.claim_task(kept)
    for _ in range(5_000):
        rig.scheduler.claim_task(task)
        rig.scheduler.release_task(task.id)
    rig.settle()
    stats = rig.scheduler.stats()
    assert (stats.claimed, stats.releasing) == (1, 0)
    assert stats.indexed <= 2 * stats.claimed + 64, stats


# -- 9: an inactive task with a queued manual run is ticked on every tick -------------


def test_an_inactive_task_with_a_queued_manual_run_is_never_due(rig: Rig) -> None:
    """Defect 9: force_run on an inactive task does not put it in the due set."""
    task = rig.add(active=False)
    rig.scheduler.claim_task(task)
    rig.scheduler.force_run("t1", 3)
    rig.tick(6)
    assert rig.scheduler.stats().due == 0
    assert rig.executor.executed == []
    # Activated, the queued run goes first.
    active = Task(id="t1", options=task.options, status=TaskStatus.ACTIVE, script="job")
    rig.store.update_task(active)
    rig.scheduler.update_task(active)
    rig.settle()
    assert [(r.scheduled_for, r.is_manual) for r in rig.running()] == [(3, True)]


# -- 10: a task whose id is "all" corrupts the aggregate summaries ---------------------


def test_a_task_named_all_counts_once_and_its_release_keeps_the_aggregates(rig: Rig) -> None:
    """Defect 10: runs of task "all" are observed once; releasing it keeps the aggregates."""
    rig.scheduler.claim_task(rig.add("all"))
    rig.scheduler.claim_task(rig.add("other"))
    rig.tick(6)
    for run in rig.executor.running():
        rig.executor.succeed(run.run_id)
    rig.settle()
    count = "task_scheduler_run_queue_delta_count"
    assert rig.metric(count, {"task_id": "all"}) == 2  # one run each, aggregated once
    assert rig.metric("task_scheduler_run_execution_delta_count", {"task_id": "all"}) == 2
    rig.scheduler.release_task("all")
    assert rig.metric(count, {"task_id": "all"}) == 2
    assert (
        rig.metric("task_scheduler_runs_complete_total", {"task_id": "all", "status": "success"})
        == 0
    )


# -- 11: a task removed from the store while claimed ---------------------------------


def test_a_task_removed_from_the_store_is_released_and_counted_once(rig: Rig) -> None:
    """Defect 11: TaskNotFound from the store releases the task, counted once."""
    rig.scheduler.claim_task(rig.add())
    rig.scheduler.claim_task(rig.add("t2"))
    rig.store.remove_task("t1")
    for now in range(6, 16):
        rig.tick(now)
    assert rig.errors("not found") == 1
    assert rig.errors("store error") == 0
    assert rig.scheduler.stats().claimed == 1
    assert rig.metric("task_scheduler_claims_active") == 1
    with pytest.raises(TaskNotClaimed):
        rig.scheduler.release_task("t1")
    assert len(rig.executor.running("t2")) == 1  # the other task is untouched


# -- the error_type label is bounded ---------------------------------------------------


class _Coded(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def test_error_type_takes_only_known_codes(rig: Rig) -> None:
    """A run error's unknown ``code`` counts as internal error; a known one as itself."""
    rig.scheduler.claim_task(rig.add(concurrency=3))
    rig.tick(8)
    first, second, third = rig.running()
    rig.executor.fail(first.run_id, _Coded("user-defined-4711"))
    rig.executor.fail(second.run_id, _Coded("unavailable"))
    rig.executor.fail(third.run_id, _Coded(""))
    rig.settle()
    samples = {
        s.labels["error_type"]: s.value
        for metric in rig.registry.collect()
        if metric.name == "task_scheduler_errors_counter"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert samples == {"internal error": 2.0, "unavailable": 1.0}


# -- facade calls are bounded ------------------------------------------------------------


class _BlockingStore(MemoryStore):
    """create_next_run blocks until released: a wedged store call."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: 1_000_000.0)
        self.entered = threading.Event()
        self.release = threading.Event()

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        self.entered.set()
        self.release.wait(SETTLE)
        return super().create_next_run(task_id, now)


def test_a_call_to_a_wedged_scheduler_raises_scheduler_timeout() -> None:
    """A store call that blocks the pool makes facade calls raise SchedulerTimeout."""
    store = _BlockingStore()
    rig = Rig(store=store, call_timeout=0.5)
    try:
        rig.scheduler.claim_task(rig.add())
        rig.scheduler.tick(6)
        assert store.entered.wait(SETTLE)
        with pytest.raises(SchedulerTimeout, match=r"stats got no answer within 0\.5 s"):
            rig.scheduler.stats()
        with pytest.raises(TimeoutError):  # also the builtin it resembles
            rig.scheduler.now()
    finally:
        store.release.set()
        rig.settle()
        rig.stop()
    assert issubclass(SchedulerTimeout, SchedulerError)


def test_call_timeout_must_be_positive() -> None:
    """Scheduler(call_timeout=0) is refused with a message naming the argument."""
    with pytest.raises(ValueError, match="call_timeout must be a positive"):
        Scheduler(MemoryStore(), HostileExecutor(), call_timeout=0)


def test_update_of_a_task_removed_from_the_store_raises_and_releases_it(rig: Rig) -> None:
    """Defect 11: update_task of a task gone from the store raises TaskNotFound and releases it."""
    task = rig.add()
    rig.scheduler.claim_task(task)
    rig.store.remove_task("t1")
    with pytest.raises(TaskNotFound):
        rig.scheduler.update_task(task)
    assert rig.scheduler.stats().claimed == 0
    assert rig.errors("not found") == 1


class _FailsOnce(MemoryStore):
    """Armed, claim_state raises once, on the second call: the claim's own read passes,
    the revived TaskActor's read of the runs in progress fails (a transient failure)."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: 1_000_000.0)
        self.armed = False
        self._calls = 0

    def claim_state(self, task_id: str) -> ClaimState:
        if self.armed:
            self._calls += 1
            if self._calls == 2:
                self.armed = False
                raise ConnectionError("store unavailable")
        return super().claim_state(task_id)


def test_a_reclaim_whose_store_read_fails_resumes_on_a_later_tick() -> None:
    """A re-claim that cannot read the runs in progress retries on the next tick."""
    store = _FailsOnce()
    rig = Rig(store=store)
    try:
        task = rig.add(concurrency=2)
        rig.scheduler.claim_task(task)
        rig.tick(6)
        (run,) = rig.running()
        left = store.create_next_run("t1", 7)  # another process's run, never started
        rig.executor.cancel_mode = CancelMode.SLOW
        rig.scheduler.release_task("t1")
        store.armed = True
        rig.scheduler.claim_task(task)  # revives the releasing actor: its read fails
        rig.settle()
        assert rig.errors("store error") == 1
        assert rig.executions(left.created.run_id) == 0
        rig.tick(6)
        assert rig.executions(left.created.run_id) == 1
        assert rig.executions(run.run_id) == 1
    finally:
        rig.stop()


# -- found by the state machine: a busy task ticked on every tick after a stale report --


class _StallsOneCreate(MemoryStore):
    """Armed, the next CreateRun ends another run first, then fails.

    It runs in the TaskActor's thread: the other run's completion is queued behind
    the failing call, so the task reports "due" and then "busy", both as of its last
    tick, before the SchedulerActor's answer (a tick at the current time) reaches it.
    """

    def __init__(self) -> None:
        super().__init__(clock=lambda: 1_000_000.0)
        self.end_first: tuple[HostileExecutor, int] | None = None
        self._finished: dict[int, threading.Event] = {}

    def apply(self, ops: Sequence[StoreOp]) -> list[object]:
        armed = self.end_first
        if armed is None or not isinstance(ops[0], CreateRun):
            return super().apply(ops)
        self.end_first = None
        executor, run_id = armed
        finished = self._finished[run_id] = threading.Event()
        executor.succeed(run_id)
        assert finished.wait(SETTLE), f"run {run_id} was never finished"
        return [OSError("create_next_run failed (_StallsOneCreate)")]

    def complete_run(
        self, task_id: str, run_id: int, when: float, status: RunStatus, lines: Sequence[str]
    ) -> Run | None:
        run = super().complete_run(task_id, run_id, when, status, lines)
        event = self._finished.get(run_id)
        if event is not None:
            event.set()
        return run


def test_a_busy_task_that_reported_with_a_stale_clock_is_not_ticked_every_tick() -> None:
    """A busy task whose last report predates the clock says it is busy when ticked:
    it leaves the due set instead of being ticked on every tick until a slot frees."""
    store = _StallsOneCreate()
    rig = Rig(store=store, workers=2)  # a runner works while the TaskActor waits
    try:
        rig.scheduler.claim_task(rig.add(concurrency=2))
        rig.tick(10)  # slots 6 and 7 execute; every slot busy
        first, second = (run.run_id for run in rig.running())
        rig.tick(20)  # the busy task is not ticked: its clock stays at 10
        store.end_first = (rig.executor, second)
        rig.executor.succeed(first)
        rig.settle()
        assert len(rig.running()) == 2, "the backlog fills both slots again"
        assert rig.scheduler.stats().due == 0, "a busy task stays due: ticked every tick"
        assert rig.metric("task_scheduler_errors_counter_total", {"error_type": "store error"}) == 1
    finally:
        rig.scheduler.stop()
