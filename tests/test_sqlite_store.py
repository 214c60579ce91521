"""SQLiteStore: the contract suite (with reopen), and what only a file promises."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.register_assert_rewrite("protocols.testing.store_contract")

from protocols import (  # noqa: E402
    MemoryStore,
    Run,
    RunAlreadyQueued,
    RunStatus,
    SQLiteStore,
    StoreError,
    StoreLocked,
    StoreTooNew,
    TaskStore,
)
from protocols.contracts import (  # noqa: E402
    CompleteRun,
    CreateRun,
    FinishRun,
    ReadClaimState,
    ReadNextDue,
    StartRun,
    StoreOp,
)
from protocols.model import ClaimState, RunCreation  # noqa: E402
from protocols.stores.sqlite import RETENTION_BATCH, SCHEMA_VERSION  # noqa: E402
from protocols.testing.store_contract import (  # noqa: E402
    FakeClock,
    TaskStoreContract,
    make_task,
)


class TestSQLiteStoreContract(TaskStoreContract):
    """The contract suite, run against SQLiteStore on a fresh file per test."""

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_store(self, clock: Callable[[], float]) -> TaskStore:
        """A SQLiteStore on a new file in the test's temporary directory."""
        return SQLiteStore(self.directory / "contract.db", clock=clock)

    def close_store(self, store: TaskStore) -> None:
        """Close the file (and drop its writer lock)."""
        assert isinstance(store, SQLiteStore)
        store.close()

    def reopen_store(self, store: TaskStore, clock: Callable[[], float]) -> TaskStore:
        """Close the file and open it again, as a restarted process would."""
        assert isinstance(store, SQLiteStore)
        store.close()
        return SQLiteStore(store.path, clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    """A controllable clock at 1000.0."""
    return FakeClock(1_000.0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's database lives."""
    return tmp_path / "tickactors.db"


@pytest.fixture
def store(path: Path, clock: FakeClock) -> Iterator[SQLiteStore]:
    """A SQLiteStore with one task t1, every 10 s, latest completed 100."""
    with SQLiteStore(path, clock=clock) as store:
        store.add_task(make_task("t1"), latest_completed=100)
        yield store


def test_a_new_database_file_is_private(path: Path) -> None:
    """The file is created with mode 0600, whatever the umask."""
    old = os.umask(0o022)
    try:
        SQLiteStore(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_second_writer_is_refused_naming_the_file_and_the_holder(store: SQLiteStore) -> None:
    """One writer per file: a second one gets StoreLocked with the path and the holder's pid."""
    with pytest.raises(StoreLocked) as refused:
        SQLiteStore(store.path)
    message = str(refused.value)
    assert store.path in message
    assert f"pid {os.getpid()}" in message
    assert isinstance(refused.value, OSError)


def test_a_second_writer_in_another_process_is_refused(store: SQLiteStore) -> None:
    """The writer lock holds across processes, not only within one."""
    code = (
        "import sys\n"
        "from protocols import SQLiteStore, StoreLocked\n"
        "try:\n"
        f"    SQLiteStore({store.path!r})\n"
        "except StoreLocked as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr
    assert "already open for writing" in done.stdout


def test_the_writer_lock_is_dropped_on_close(store: SQLiteStore, clock: FakeClock) -> None:
    """After close, another writer opens the file and sees what was committed."""
    store.close()
    with SQLiteStore(store.path, clock=clock) as again:
        assert [task.id for task in again.list_tasks()] == ["t1"]


def test_a_reader_works_while_the_writer_holds_the_file(store: SQLiteStore) -> None:
    """writer=False opens a held file, reads it, and queues a manual run the writer sees."""
    with SQLiteStore(store.path, writer=False) as reader:
        assert [task.id for task in reader.list_tasks()] == ["t1"]
        queued = reader.force_run("t1", 300)
    assert [run.id for run in store.manual_runs("t1")] == [queued.id]


def test_a_database_from_a_newer_tickactors_is_refused_untouched(path: Path) -> None:
    """A schema version above ours raises StoreTooNew and the file is not modified."""
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(StoreTooNew) as refused:
        SQLiteStore(path)
    assert str(path) in str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused.value)
    assert path.read_bytes() == before


def test_a_version_1_database_is_migrated_and_keeps_its_schedule(path: Path) -> None:
    """A file of schema 1 (before the task row kept its queue and latest created slot) is
    migrated on open: runs in progress, the manual queue and the next slot are as before."""
    from protocols.stores.sqlite import _MIGRATIONS, APPLICATION_ID

    with sqlite3.connect(path) as db:
        db.executescript(_MIGRATIONS[0])
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO tasks (id, options, status, script, latest_completed) VALUES "
            "('t1', ?, 'active', 'echo hi', 100)",
            (json.dumps(attrs.asdict(make_task("t1").options), sort_keys=True),),
        )
        db.executemany(
            "INSERT INTO runs (task_id, scheduled_for, requested_at, state, status) "
            "VALUES ('t1', ?, ?, ?, 'scheduled')",
            [(110, 0, 1), (120, 0, 1), (50, 7, 0), (60, 8, 0)],  # two in progress, two queued
        )
    with SQLiteStore(path, clock=FakeClock(1_000.0)) as store:
        state = store.claim_state("t1")
        assert state.has_queue
        assert [run.scheduled_for for run in state.unstarted] == [110, 120]
        assert state.next_due == 130  # after the latest slot in progress
        manual = store.create_next_run("t1", 1_000)
        assert (manual.created.scheduled_for, manual.has_queue) == (50, True)
        assert store.create_next_run("t1", 1_000).has_queue is False
        assert store.create_next_run("t1", 1_000).created.scheduled_for == 130
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_sqlite_file_of_another_application_is_refused(path: Path) -> None:
    """A SQLite file with tables that is not tickactors' is never modified."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a tickactors one"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_database_raises_store_error(path: Path) -> None:
    """A corrupt or foreign file: StoreError naming the file, not a bare sqlite3 error."""
    path.write_bytes(b"this is not a database, just text " * 200)
    with pytest.raises(StoreError) as refused:
        SQLiteStore(path)
    assert str(path) in str(refused.value)


def test_a_write_through_a_read_only_connection_raises_store_error(
    store: SQLiteStore, clock: FakeClock
) -> None:
    """SQLite's 'readonly database' becomes StoreError naming the call and the file."""
    store._db.execute("PRAGMA query_only = ON")
    try:
        with pytest.raises(StoreError) as refused:
            store.force_run("t1", 300)
        assert "force_run" in str(refused.value)
        assert store.path in str(refused.value)
        assert store.manual_runs("t1") == []
    finally:
        store._db.execute("PRAGMA query_only = OFF")
    assert store.force_run("t1", 300).scheduled_for == 300


def test_durability_is_named_by_what_it_survives(path: Path) -> None:
    """'process' is WAL + synchronous NORMAL, 'power' synchronous FULL; others refused."""
    levels = {}
    for durability in ("process", "power"):
        with SQLiteStore(path, durability=durability) as store:  # type: ignore[arg-type]
            levels[durability] = (
                store._db.execute("PRAGMA journal_mode").fetchone()[0],
                store._db.execute("PRAGMA synchronous").fetchone()[0],
            )
    assert levels == {"process": ("wal", 1), "power": ("wal", 2)}
    with pytest.raises(ValueError, match="durability"):
        SQLiteStore(path, durability="disk")  # type: ignore[arg-type]


def test_a_scheduled_slot_is_recorded_at_most_once(store: SQLiteStore) -> None:
    """The unique key refuses a second scheduled run for a slot, whoever writes it."""
    run = store.create_next_run("t1", 200).created
    with pytest.raises(sqlite3.IntegrityError):
        store._db.execute(
            "INSERT INTO runs (task_id, scheduled_for, requested_at, state, status) "
            "VALUES ('t1', ?, 0, 1, 'scheduled')",
            (run.scheduled_for,),
        )


def test_retention_keeps_the_newest_finished_runs_in_batches(path: Path, clock: FakeClock) -> None:
    """keep_runs: at most keep_runs + RETENTION_BATCH finished runs; the newest are kept."""
    keep = 10
    with SQLiteStore(path, clock=clock, keep_runs=keep) as store:
        store.add_task(make_task("t1", every=1), latest_completed=0)
        ids = []
        for _ in range(keep + 3 * RETENTION_BATCH):
            run = store.create_next_run("t1", 10**6).created
            store.update_run_state("t1", run.run_id, 1.0, RunStatus.SUCCESS)
            store.finish_run("t1", run.run_id)
            ids.append(run.run_id)
        kept = [run.id for run in store.find_runs("t1")]
        assert keep <= len(kept) < keep + RETENTION_BATCH
        assert sorted(kept) == ids[-len(kept) :]


def test_concurrent_threads_share_one_store(store: SQLiteStore) -> None:
    """Calls from several threads at once neither fail nor hand out a slot twice."""
    errors: list[BaseException] = []
    slots: list[int] = []

    def work() -> None:
        try:
            for _ in range(50):
                run = store.create_next_run("t1", 10**6).created
                slots.append(run.scheduled_for)
                store.update_run_state("t1", run.run_id, 1.0, RunStatus.SUCCESS)
                store.finish_run("t1", run.run_id)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(slots) == len(set(slots)) == 200


def test_a_closed_store_raises_store_error(store: SQLiteStore) -> None:
    """Calls after close say the store is closed (StoreError), not a bare sqlite3 error."""
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_task("t1")


def test_meta_values_survive_a_reopen(store: SQLiteStore, clock: FakeClock) -> None:
    """get_meta/set_meta keep the application's values across a restart; unset is None."""
    assert store.get_meta("taskfile") is None
    store.set_meta("taskfile", "a")
    store.set_meta("taskfile", "b")
    store.close()
    with SQLiteStore(store.path, clock=clock) as again:
        assert again.get_meta("taskfile") == "b"


def test_a_locked_database_is_counted_survived_and_caught_up(path: Path, clock: FakeClock) -> None:
    """While another connection holds the write lock, the scheduler's writes fail with
    StoreError (counted as store errors) and it keeps ticking; once the lock is gone it
    catches up every missed slot in order, and nothing committed before is lost."""
    from prometheus_client import CollectorRegistry

    from actors import Scheduler
    from protocols.testing.manual import ManualExecutor

    registry = CollectorRegistry()
    executor = ManualExecutor()
    with SQLiteStore(path, clock=clock, busy_timeout=0.05) as store:
        store.add_task(make_task("t1", every=1), latest_completed=5)
        with Scheduler(store, executor, now=5, registry=registry) as scheduler:
            scheduler.claim_task(store.get_task("t1"))

            def tick(now: int) -> None:
                scheduler.tick(now)
                assert scheduler.settle(30)
                for run in executor.running("t1"):
                    executor.succeed(run.run_id)
                assert scheduler.settle(30)

            tick(6)
            locker = sqlite3.connect(path, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")
            try:
                tick(7)
                tick(8)
                assert executor.running("t1") == []
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            errors = registry.get_sample_value(
                "task_scheduler_errors_counter_total", {"error_type": "store error"}
            )
            assert errors is not None
            assert errors >= 2
            for now in (9, 9, 9, 9):  # one run at a time (concurrency 1): slots 7, 8, 9
                tick(now)
        slots = [run.scheduled_for for run in store.find_runs("t1")]
        assert slots == [9, 8, 7, 6]
        assert {run.status for run in store.find_runs("t1")} == {RunStatus.SUCCESS}


def test_keep_for_deletes_runs_finished_longer_ago_in_batches(path: Path, clock: FakeClock) -> None:
    """keep_for: runs finished longer ago than that go, a batch at a time; recent ones stay."""
    with SQLiteStore(path, clock=clock, keep_runs=None, keep_for=100.0) as store:
        store.add_task(make_task("t1", every=1), latest_completed=0)

        def finish_one() -> int:
            run = store.create_next_run("t1", 10**6).created
            store.update_run_state("t1", run.run_id, 1.0, RunStatus.SUCCESS)
            store.finish_run("t1", run.run_id)
            return run.run_id

        old = [finish_one() for _ in range(RETENTION_BATCH - 1)]
        clock.advance(1_000)
        recent = [finish_one() for _ in range(RETENTION_BATCH)]  # the first one triggers
        kept = {run.id for run in store.find_runs("t1")}
        assert kept.isdisjoint(old)
        assert set(recent) <= kept
    with pytest.raises(ValueError, match="keep_for"):
        SQLiteStore(path, keep_for=0)


def test_a_full_database_raises_store_error_and_loses_nothing_committed(
    store: SQLiteStore,
) -> None:
    """SQLITE_FULL (a full disk, here a page cap) is a StoreError saying so; what was
    committed stays, and writes work again once there is room."""
    committed = store.force_run("t1", 100)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    try:

        def fill() -> None:
            for slot in range(200, 20_000):
                store.force_run("t1", slot)

        with pytest.raises(StoreError, match="full") as full:
            fill()
        assert "free disk space" in str(full.value)
        assert store.manual_runs("t1")[0].id == committed.id
    finally:
        store._db.execute("PRAGMA max_page_count = 1073741823")
    assert store.force_run("t1", 50_000).scheduled_for == 50_000


# -- apply(): SQLite's set-wise writes behave as MemoryStore's op by op ---------------------


_TASKS = ("t1", "t2", "t3")


def _ops(run_ids: int) -> st.SearchStrategy[StoreOp]:
    task = st.sampled_from((*_TASKS, "ghost"))
    run_id = st.integers(1, run_ids)
    status = st.sampled_from(
        [RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.STARTED]
    )
    lines = st.lists(st.sampled_from(["a", "b"]), max_size=2).map(tuple)
    return st.one_of(
        st.builds(CreateRun, task, st.integers(0, 40), st.just(5.0), lines),
        st.builds(CompleteRun, task, run_id, st.just(6.0), status, lines),
        st.builds(StartRun, task, run_id, st.just(7.0), lines),
        st.builds(FinishRun, task, run_id),
        st.builds(ReadNextDue, task),
        st.builds(ReadClaimState, task),
    )


def _norm(result: object) -> object:
    if isinstance(result, Exception):
        return type(result).__name__
    if isinstance(result, RunCreation):
        return (*attrs.astuple(result.created), result.next_due, result.has_queue)
    if isinstance(result, ClaimState):
        return (
            result.next_due,
            result.has_queue,
            [r.id for r in result.unstarted],
            [r.id for r in result.started],
        )
    if isinstance(result, Run):
        return _stored(result)
    return result


def _stored(run: Run) -> tuple[object, ...]:
    return (
        run.id,
        run.status,
        run.scheduled_for,
        run.requested_at,
        run.started_at,
        run.finished_at,
        run.executions,
        [(line.when, line.message) for line in run.log],
    )


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    every=st.lists(st.sampled_from([1, 5, 10]), min_size=3, max_size=3),
    manual=st.lists(st.tuples(st.sampled_from(_TASKS), st.integers(0, 30)), max_size=4),
    batches=st.lists(st.lists(_ops(12), min_size=1, max_size=12), min_size=1, max_size=6),
)
def test_apply_on_sqlite_matches_the_memory_store_op_by_op(
    tmp_path_factory: pytest.TempPathFactory,
    every: list[int],
    manual: list[tuple[str, int]],
    batches: list[list[StoreOp]],
) -> None:
    """Random batches of run-path ops give SQLiteStore the results and the runs that
    MemoryStore gives applying them one by one (SQLite writes runs of CreateRun and
    CompleteRun ops set-wise: this checks that shortcut against the reference)."""
    clock = FakeClock(1_000.0)
    memory = MemoryStore(clock=clock)
    path = tmp_path_factory.mktemp("apply") / "t.db"
    with SQLiteStore(path, clock=clock) as sqlite:
        for store in (memory, sqlite):
            for task_id, seconds in zip(_TASKS, every, strict=True):
                store.add_task(make_task(task_id, every=seconds), latest_completed=0)
            for task_id, slot in manual:
                try:
                    store.force_run(task_id, slot)
                except RunAlreadyQueued:
                    pass
        for batch in batches:
            expected = [_norm(memory.apply([op])[0]) for op in batch]
            assert [_norm(result) for result in sqlite.apply(batch)] == expected, batch
        for task_id in _TASKS:
            assert [_stored(r) for r in sqlite.find_runs(task_id)] == [
                _stored(r) for r in memory.find_runs(task_id)
            ]
            assert _norm(sqlite.claim_state(task_id)) == _norm(memory.claim_state(task_id))


def test_a_group_of_completions_never_moves_latest_completed_back(store: SQLiteStore) -> None:
    """Completed together (set-wise), an older run finishing after a newer one leaves
    latest completed at the newer slot, as one by one."""
    store.add_task(make_task("t2"), latest_completed=100)
    older, newer, other = (
        store.create_next_run(task_id, 1_000).created for task_id in ("t1", "t1", "t2")
    )
    assert store.apply([CompleteRun("t1", newer.run_id, 1.0, RunStatus.SUCCESS, ())]) == [True]
    assert store.apply(
        [
            CompleteRun("t2", other.run_id, 1.0, RunStatus.SUCCESS, ()),
            CompleteRun("t1", older.run_id, 1.0, RunStatus.FAILED, ()),
        ]
    ) == [True, True]
    assert store.latest_completed("t1") == newer.scheduled_for
    assert store.latest_completed("t2") == other.scheduled_for
    assert store.next_due_run("t1") == newer.scheduled_for + 10
