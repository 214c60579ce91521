"""The store actor: group commit, replies after the commit, and a pool that never waits on I/O."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from prometheus_client import CollectorRegistry
from pykka import ActorRef

from actors import Scheduler
from actors.runtime import PooledActor, Runtime
from actors.store_actor import PENDING, InlinePort, StoreActor
from protocols import MemoryStore, QueuedRun, RunStatus, SQLiteStore
from protocols.contracts import CompleteRun, CreateRun, ReadNextDue, StoreOp
from protocols.errors import SchedulerError, StoreError, TaskNotFound
from protocols.messages import StoreReply
from protocols.model import RunCreation
from protocols.testing.manual import ManualExecutor
from protocols.testing.store_contract import make_task

SETTLE = 30.0


class _Inbox(PooledActor):
    """Collects the StoreReply messages it gets, in order."""

    def __init__(self, got: list[StoreReply]) -> None:
        super().__init__()
        self._got = got

    def on_receive(self, message: Any) -> None:
        self._got.append(message)


class _GatedStore(MemoryStore):
    """A MemoryStore whose apply records each batch and waits at ``gate`` while it is shut."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: 1_000.0)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.fail_next: Exception | None = None

    def apply(self, ops: Sequence[StoreOp]) -> list[object]:
        self.batches.append(len(ops))
        self.entered.set()
        assert self.gate.wait(SETTLE)
        failure, self.fail_next = self.fail_next, None
        if failure is not None:
            raise failure
        return super().apply(ops)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime(1, name="store-actor-test")
    yield rt
    rt.shutdown(SETTLE)


def _requester(runtime: Runtime) -> tuple[ActorRef[Any], list[StoreReply]]:
    got: list[StoreReply] = []
    return runtime.spawn(_Inbox, got), got


@attrs.define
class _Gated:
    """A store actor on a _GatedStore (task t1 every second), and a requester's replies."""

    store: _GatedStore
    actor: StoreActor
    ref: ActorRef[Any]
    got: list[StoreReply]


@pytest.fixture
def gated(runtime: Runtime) -> Iterator[_Gated]:
    store = _GatedStore()
    store.add_task(make_task("t1", every=1), latest_completed=0)
    actor = StoreActor(store, runtime)
    ref, got = _requester(runtime)
    yield _Gated(store, actor, ref, got)
    store.gate.set()
    actor.close(SETTLE)


def test_ops_queued_while_a_batch_commits_go_in_one_transaction(
    gated: _Gated, runtime: Runtime
) -> None:
    """Group commit: ops sent while the store is busy are applied together, one commit."""
    store, actor, ref, got = gated.store, gated.actor, gated.ref, gated.got
    store.gate.clear()
    assert actor.call(ReadNextDue("t1"), ref) is PENDING
    assert store.entered.wait(SETTLE)  # the first batch is being applied
    for i in range(50):
        actor.call(CreateRun("t1", 1_000, 1.0, (f"run {i}",)), ref)
    store.gate.set()
    assert runtime.settle(SETTLE)
    assert store.batches == [1, 50]
    assert (actor.batches, actor.ops) == (2, 51)
    assert [type(reply.op) for reply in got] == [ReadNextDue] + [CreateRun] * 50
    slots = [r.result.created.scheduled_for for r in got[1:] if isinstance(r.result, RunCreation)]
    assert slots == list(range(1, 51))  # applied in the order sent


def test_starts_overtake_other_ops_and_each_kind_keeps_its_order(runtime: Runtime) -> None:
    """Queued together, CreateRun ops are applied (and replied to) before completions and
    reads queued earlier; within each kind the order sent is kept."""
    store = _GatedStore()
    for task_id in ("t1", "t2"):
        store.add_task(make_task(task_id, every=1), latest_completed=0)
    first = store.create_next_run("t1", 1_000).created
    actor = StoreActor(store, runtime)
    ref, got = _requester(runtime)
    try:
        store.gate.clear()
        actor.call(ReadNextDue("t2"), ref)
        assert store.entered.wait(SETTLE)
        actor.call(CompleteRun("t1", first.run_id, 1.0, RunStatus.SUCCESS, ()), ref)
        actor.call(ReadNextDue("t1"), ref)
        actor.call(CreateRun("t2", 1_000, 1.0, ()), ref)
        actor.call(CreateRun("t2", 1_000, 1.0, ()), ref)
        store.gate.set()
        assert runtime.settle(SETTLE)
        assert [type(r.op).__name__ for r in got] == [
            "ReadNextDue",
            "CreateRun",
            "CreateRun",
            "CompleteRun",
            "ReadNextDue",
        ]
        assert store.batches == [1, 2, 2]
        assert [r.result.created.scheduled_for for r in got[1:3]] == [1, 2]  # type: ignore[attr-defined]
        assert got[3].result is True
        assert got[4].result == 2  # the read after the completion sees it
    finally:
        store.gate.set()
        actor.close(SETTLE)


def test_settle_waits_for_ops_still_queued(gated: _Gated, runtime: Runtime) -> None:
    """Ops queued at the store actor keep the runtime busy until their replies are handled."""
    store, actor, ref, got = gated.store, gated.actor, gated.ref, gated.got
    store.gate.clear()
    actor.call(ReadNextDue("t1"), ref)
    assert store.entered.wait(SETTLE)
    assert not runtime.settle(0.05)  # waiting, bounded: the op is not replied yet
    store.gate.set()
    assert runtime.settle(SETTLE)
    assert [reply.result for reply in got] == [1]


def test_a_failed_commit_fails_every_op_of_its_batch_and_the_next_batch_works(
    gated: _Gated, runtime: Runtime
) -> None:
    """A batch whose transaction fails answers each op with that error; nothing is lost after."""
    store, actor, ref, got = gated.store, gated.actor, gated.ref, gated.got
    boom = StoreError("db", "store error: apply on db failed: disk I/O error")
    store.fail_next = boom
    actor.call(CreateRun("t1", 1_000, 1.0, ()), ref)
    assert runtime.settle(SETTLE)
    actor.call(CreateRun("t1", 1_000, 1.0, ()), ref)
    assert runtime.settle(SETTLE)
    assert got[0].result is boom
    assert isinstance(got[1].result, RunCreation)
    assert got[1].result.created.scheduled_for == 1  # the failed create changed nothing


def test_a_store_answering_the_wrong_number_of_results_fails_each_op(runtime: Runtime) -> None:
    """apply returning fewer results than ops: each op gets an error naming the problem."""

    class Short(MemoryStore):
        def apply(self, ops: Sequence[StoreOp]) -> list[object]:
            return []

    actor = StoreActor(Short(), runtime)
    ref, got = _requester(runtime)
    try:
        actor.call(ReadNextDue("t1"), ref)
        assert runtime.settle(SETTLE)
        (reply,) = got
        assert isinstance(reply.result, SchedulerError)
        assert "returned 0 results for 1 ops" in str(reply.result)
    finally:
        actor.close(SETTLE)


def test_close_applies_what_is_queued_then_refuses(runtime: Runtime) -> None:
    """close(): ops queued before it are applied and replied to; later calls get an error."""
    store = _GatedStore()
    store.add_task(make_task("t1", every=1), latest_completed=0)
    actor = StoreActor(store, runtime)
    ref, got = _requester(runtime)
    store.gate.clear()
    actor.call(CreateRun("t1", 1_000, 1.0, ()), ref)
    actor.call(CreateRun("t1", 1_000, 1.0, ()), ref)
    closer = threading.Thread(target=actor.close, args=(SETTLE,))
    closer.start()
    store.gate.set()
    closer.join(SETTLE)
    assert runtime.settle(SETTLE)
    assert [r.created.scheduled_for for r in (g.result for g in got)] == [1, 2]  # type: ignore[attr-defined]
    refused = actor.call(ReadNextDue("t1"), ref)
    assert isinstance(refused, SchedulerError)
    assert "closed" in str(refused)
    assert actor.sync(0.1)


def test_sync_returns_once_every_op_before_it_is_replied_to(
    gated: _Gated, runtime: Runtime
) -> None:
    """sync(): a barrier behind the ops called so far."""
    store, actor, ref, got = gated.store, gated.actor, gated.ref, gated.got
    store.gate.clear()
    actor.call(ReadNextDue("t1"), ref)
    assert not actor.sync(0.05)
    store.gate.set()
    assert actor.sync(SETTLE)
    assert runtime.settle(SETTLE)
    assert len(got) == 1


def test_the_inline_port_answers_at_once_and_never_raises() -> None:
    """InlinePort: the op's result (or its exception) is returned, no message sent."""
    store = MemoryStore(clock=lambda: 1_000.0)
    store.add_task(make_task("t1", every=1), latest_completed=0)
    port = InlinePort(store)
    ref: Any = None  # never used: the inline port sends nothing
    assert port.call(ReadNextDue("t1"), ref) == 1
    assert isinstance(port.call(ReadNextDue("ghost"), ref), TaskNotFound)
    assert port.sync() is True


# -- a Scheduler on a store that does I/O ---------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "t.db", clock=lambda: 1_000.0, busy_timeout=0.05)
    yield store
    store.close()


class _StartCheckingExecutor(ManualExecutor):
    """Reads the run from another connection at execute(): its start must be committed."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.seen: list[RunStatus] = []
        self._reader = SQLiteStore(path, writer=False)

    def execute(self, run: QueuedRun) -> Any:
        self.seen.append(self._reader.find_run(run.task_id, run.run_id).status)
        return super().execute(run)


def test_nothing_executes_before_its_start_is_durable(db: SQLiteStore) -> None:
    """On SQLite, a run reaches the executor only once its start is committed (seen by
    another connection as started, its line logged)."""
    task = make_task("t1", every=1)
    db.add_task(
        attrs.evolve(task, options=attrs.evolve(task.options, concurrency=3)), latest_completed=0
    )
    executor = _StartCheckingExecutor(db.path)
    with Scheduler(db, executor, now=0, registry=CollectorRegistry()) as scheduler:
        scheduler.claim_task(db.get_task("t1"))
        scheduler.tick(3)
        assert scheduler.settle(SETTLE)
        assert executor.seen == [RunStatus.STARTED] * 3
        for run in executor.running():
            executor.succeed(run.run_id)
        assert scheduler.settle(SETTLE)
    assert [run.status for run in db.find_runs("t1")] == [RunStatus.SUCCESS] * 3


def test_the_pool_answers_while_the_store_waits_on_a_lock(db: SQLiteStore) -> None:
    """While another connection holds the database's write lock, the store actor waits
    (and fails after busy_timeout), but the actors on the pool answer at once."""
    db.close()
    store = SQLiteStore(db.path, clock=lambda: 1_000.0, busy_timeout=10.0)
    try:
        store.add_task(make_task("t1", every=1), latest_completed=0)
        executor = ManualExecutor()
        with Scheduler(
            store, executor, now=0, registry=CollectorRegistry(), call_timeout=3.0
        ) as scheduler:
            scheduler.claim_task(store.get_task("t1"))
            locker = sqlite3.connect(store.path, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")
            try:
                scheduler.tick(1)  # the create waits for the lock in the store actor
                for _ in range(3):
                    assert scheduler.stats().claimed == 1  # bounded by call_timeout
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            assert scheduler.settle(SETTLE)
            assert [run.scheduled_for for run in executor.running()] == [1]
    finally:
        store.close()


def test_a_refused_completion_keeps_the_slot_and_is_retried_on_later_ticks(
    db: SQLiteStore,
) -> None:
    """SQLite locked when a run completes: the slot stays busy (no run starts), and later
    ticks retry the completion until it is recorded; the run executed once."""
    db.add_task(make_task("t1", every=1), latest_completed=0)
    executor = ManualExecutor()
    registry = CollectorRegistry()
    with Scheduler(db, executor, now=0, registry=registry) as scheduler:
        scheduler.claim_task(db.get_task("t1"))
        scheduler.tick(1)
        assert scheduler.settle(SETTLE)
        (run,) = executor.running()
        locker = sqlite3.connect(db.path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            executor.succeed(run.run_id)
            assert scheduler.settle(SETTLE)
            scheduler.tick(2)
            assert scheduler.settle(SETTLE)
            scheduler.tick(3)
            assert scheduler.settle(SETTLE)
            assert executor.running() == []  # the slot stays busy
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        errors = registry.get_sample_value(
            "task_scheduler_errors_counter_total", {"error_type": "store error"}
        )
        assert errors is not None
        assert errors >= 2
        for now in (4, 5, 6, 7, 8):  # retried within a few ticks of the backoff
            scheduler.tick(now)
            assert scheduler.settle(SETTLE)
        assert db.find_run("t1", run.run_id).status is RunStatus.SUCCESS
        assert [r.run_id for r in executor.executed].count(run.run_id) == 1
        assert executor.running() != []  # the slot took the next run
