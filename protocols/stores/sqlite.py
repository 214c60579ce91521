"""The SQLite :class:`~protocols.TaskStore`: everything the scheduler knows, in one file.

:class:`SQLiteStore` keeps tasks, runs, their logs, the manual-run queues and each
task's latest completed slot in a SQLite database (the standard library's
``sqlite3``, no ORM), so a process that dies (kill -9 included) loses nothing it
committed. It satisfies :class:`~protocols.contracts.TaskStore`; behaviour beyond
the contract:

- **One transaction per call.** Every method that writes is one ``BEGIN
  IMMEDIATE`` ... ``COMMIT``: a crash leaves each call applied whole or not at all.
- **Durability, named by what it survives.** ``durability="process"`` (the
  default: WAL with ``synchronous=NORMAL``) loses nothing committed when the
  process dies, and may lose the last commits when the machine loses power;
  ``"power"`` (``synchronous=FULL``) survives power loss too, at an fsync per
  commit. The default is ``"process"`` because a scheduler's runs are re-created
  from the schedule after a power loss at worst (one slot run again), while an
  fsync per run caps a busy scheduler at the disk's sync rate.
- **One writer per file.** A store opened with ``writer=True`` (the default) holds
  an exclusive lock on ``PATH.lock`` (which names the holder: pid, host, start
  time) until :meth:`close`; a second writer gets
  :class:`~protocols.errors.StoreLocked`. Readers (``writer=False``: the command
  line) open the file freely, and their short writes (a manual run queued) wait
  for the writer's transaction (``busy_timeout``).
- **Schema versions.** ``PRAGMA user_version`` holds the schema version and
  migrations run in order when an older file is opened for writing; a file from a
  newer tickactors raises :class:`~protocols.errors.StoreTooNew` and is never
  modified. A SQLite file that is not a tickactors database is refused.
- **Private.** A new database file is created with mode 0600.
- **Errors.** Whatever SQLite reports (locked, read-only, corrupt, disk full) is
  raised as :class:`~protocols.errors.StoreError` naming the file and the call;
  nothing committed before is lost, and the scheduler retries on later ticks.
- **A slot is recorded at most once per task**: a unique index on
  ``(task_id, scheduled_for)`` of scheduled runs enforces it, whatever the callers do.
- Run ids are unique across the file and never reused, even after a run is dropped.
- ``update_run_state`` and ``add_run_log`` accept any run the store knows;
  ``finish_run`` only a run in progress. The store does not look at
  :attr:`~protocols.Task.status`.
- **Retention.** Each task keeps its most recent ``keep_runs`` finished runs
  (default 1,000; ``None``: all); older ones are deleted in batches of at most
  ``RETENTION_BATCH`` runs once that many are over the limit, so the run path never
  pays for a large delete and a task holds at most ``keep_runs + RETENTION_BATCH``
  finished runs. With ``keep_for`` (seconds), every ``RETENTION_BATCH`` finished runs
  of a task up to a batch of its runs finished longer ago than that are deleted too.
  Queued and in-progress runs are always kept.
- ``remove_task`` of an unknown task raises :class:`~protocols.TaskNotFound`.

Thread-safe: one connection behind a lock (the scheduler's actors call it from
several threads). Not for several processes writing at once: that is what the
writer lock refuses.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Literal

import attrs

from protocols.contracts import CompleteRun, CreateRun, StoreOp
from protocols.errors import (
    RunAlreadyQueued,
    RunNotDueYet,
    RunNotFinished,
    RunNotFound,
    StoreError,
    StoreLocked,
    StoreTooNew,
    TaskAlreadyExists,
    TaskNotFound,
)
from protocols.model import (
    ClaimState,
    LogEntry,
    QueuedRun,
    Run,
    RunCreation,
    RunStatus,
    Task,
    TaskStatus,
)
from protocols.options import TaskOptions
from protocols.schedules import due_time, next_slot
from protocols.stores.memory import _terminal

__all__ = ["RETENTION_BATCH", "SCHEMA_VERSION", "Durability", "SQLiteStore"]

#: What a database file must survive: the process dying, or the machine losing power.
Durability = Literal["process", "power"]

#: The schema version this tickactors writes (``PRAGMA user_version``).
SCHEMA_VERSION: Final = 2
#: ``PRAGMA application_id`` of a tickactors database ("TkAc").
APPLICATION_ID: Final = 0x546B4163
#: Finished runs over a task's ``keep_runs`` before a batch of them is deleted.
RETENTION_BATCH: Final = 64

# run state: queued (a manual run waiting), in progress (created, not finished), finished
_QUEUED, _IN_PROGRESS, _FINISHED = 0, 1, 2

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the first schema
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        options TEXT NOT NULL,
        status TEXT NOT NULL,
        script TEXT NOT NULL,
        latest_completed INTEGER NOT NULL,
        finished_runs INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        scheduled_for INTEGER NOT NULL,
        requested_at INTEGER NOT NULL,
        state INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at REAL,
        finished_at REAL,
        executions INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX runs_one_per_slot ON runs (task_id, scheduled_for)
        WHERE requested_at = 0;
    CREATE UNIQUE INDEX runs_one_queued_per_slot ON runs (task_id, scheduled_for)
        WHERE state = 0;
    CREATE INDEX runs_by_state ON runs (task_id, state, id);
    CREATE TABLE run_logs (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        at REAL NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX run_logs_by_run ON run_logs (run_id);
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: what create_next_run needs, on the task's row (two index searches fewer per run):
    # its queued manual runs, and the latest slot of its scheduled runs created (so its
    # base, max(latest completed, slots in progress), is max(latest_completed,
    # latest_created): a finished scheduled run moved latest_completed to its slot).
    """
    ALTER TABLE tasks ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN latest_created INTEGER;
    UPDATE tasks SET
        queued = (SELECT count(*) FROM runs WHERE runs.task_id = tasks.id AND state = 0),
        latest_created = (
            SELECT max(scheduled_for) FROM runs
            WHERE runs.task_id = tasks.id AND state = 1 AND requested_at = 0
        );
    """,
)

_RUN_COLUMNS: Final = "id, task_id, status, scheduled_for, requested_at, started_at, finished_at"


def _options_json(options: TaskOptions) -> str:
    return json.dumps(attrs.asdict(options), sort_keys=True)


class SQLiteStore:
    """A :class:`~protocols.TaskStore` in a SQLite file (thread-safe; see the module doc).

    ``path``: the database file, created (mode 0600) if missing. ``clock`` gives
    the current time (``finished_at``, ``requested_at``, the default
    ``latest_completed``). ``durability``: ``"process"`` (default) or ``"power"``.
    ``writer``: hold the file's writer lock (default True; the CLI passes False).
    ``keep_runs``: finished runs kept per task (default 1,000; None: all).
    ``keep_for``: seconds a finished run is kept at least (None, the default: no age limit).
    ``busy_timeout``: seconds a write waits for another connection's transaction.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        durability: Durability = "process",
        writer: bool = True,
        keep_runs: int | None = 1_000,
        keep_for: float | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        if durability not in ("process", "power"):
            raise ValueError(
                f"durability must be 'process' (survives kill -9) or 'power' (survives "
                f"power loss), not {durability!r}"
            )
        if keep_runs is not None and keep_runs < 0:
            raise ValueError(f"keep_runs must be >= 0 or None, not {keep_runs!r}")
        if keep_for is not None and not keep_for > 0:
            raise ValueError(f"keep_for must be > 0 seconds or None, not {keep_for!r}")
        self.path = os.fspath(path)
        self.durability = durability
        self._clock = clock
        self._keep = keep_runs
        self._keep_for = keep_for
        self._lock = threading.RLock()
        self._lock_file: int | None = None
        self._closed = False
        self._batch = False  # inside apply(): calls are savepoints of its transaction
        if writer:
            self._lock_file = self._take_writer_lock()
        try:
            self._db = self._connect(busy_timeout)
            self._migrate(writer)
        except BaseException:
            self._release_writer_lock()
            raise
        # next_slot(options, base) of the last call per task: cron arithmetic costs more
        # than a dict look-up, and the hot path asks the same question twice.
        self._slots: dict[str, tuple[str, int, int]] = {}
        self._data_version: int | None = None

    # -- opening and closing -------------------------------------------------------------

    def _take_writer_lock(self) -> int:
        lock_path = self.path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(
                self.path, f"store error: cannot open the lock file {lock_path}: {exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            finally:
                os.close(fd)
            raise StoreLocked(self.path, holder) from None
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        holder = f"pid {os.getpid()} on {socket.gethostname()}, since {started}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        return fd

    def _release_writer_lock(self) -> None:
        fd, self._lock_file = self._lock_file, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        if not os.path.exists(self.path):
            try:
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(
                    self.path, f"store error: cannot create {self.path}: {exc}"
                ) from exc
        try:
            db = sqlite3.connect(
                self.path,
                timeout=busy_timeout,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"store error: cannot open {self.path}: {exc}") from exc
        try:
            self._check(db)  # before anything that writes: a foreign file stays untouched
            db.execute("PRAGMA foreign_keys = ON")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    self.path,
                    f"store error: {self.path} cannot use write-ahead logging (journal "
                    f"mode stays {mode!r}); is it on a network file system?",
                )
            sync = "NORMAL" if self.durability == "process" else "FULL"
            db.execute(f"PRAGMA synchronous = {sync}")
        except sqlite3.Error as exc:
            db.close()
            raise self._error("open", exc) from exc
        except BaseException:
            db.close()
            raise
        return db

    def _check(self, db: sqlite3.Connection) -> None:
        """Refuse a file of another application, or of a newer tickactors (read only)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        app = db.execute("PRAGMA application_id").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app != APPLICATION_ID and (version or tables):
            raise StoreError(
                self.path,
                f"store error: {self.path} is a SQLite database but not a tickactors one "
                f"(application_id {app:#x}, {tables} schema objects); refusing to touch it",
            )
        if version > SCHEMA_VERSION:
            raise StoreTooNew(self.path, version, SCHEMA_VERSION)

    def _migrate(self, writer: bool) -> None:
        db = self._db
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            db.close()
            raise self._error("open", exc) from exc
        if version == SCHEMA_VERSION:
            return
        if not writer and version:
            db.close()
            raise StoreError(
                self.path,
                f"store error: {self.path} has schema version {version}; open it once for "
                f"writing (the daemon does) to migrate it to version {SCHEMA_VERSION}",
            )
        try:
            db.execute("BEGIN IMMEDIATE")
            # Another process may have migrated it meanwhile: read again under the lock.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
            raise self._error("migrate", exc) from exc

    def close(self) -> None:
        """Close the database and drop the writer lock (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.close()
            finally:
                self._release_writer_lock()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r} durability={self.durability!r}>"

    # -- transactions -----------------------------------------------------------------

    def _error(self, call: str, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        hint = ""
        lowered = text.lower()
        if "locked" in lowered or "busy" in lowered:
            hint = "; another connection holds a long transaction"
        elif "readonly" in lowered or "read-only" in lowered:
            hint = "; check the file's and its directory's permissions"
        elif "full" in lowered:
            hint = "; free disk space (nothing committed was lost)"
        elif "malformed" in lowered or "not a database" in lowered:
            hint = "; the file is damaged: restore it from a backup or move it aside"
        return StoreError(self.path, f"store error: {call} on {self.path} failed: {text}{hint}")

    def apply(self, ops: Sequence[StoreOp]) -> list[object]:
        """The ops in order in one write transaction (one commit: group commit).

        Each op runs inside a savepoint: one that raises is rolled back alone and its
        exception is its result. A failed ``BEGIN`` or ``COMMIT`` raises StoreError:
        then none of the ops took effect.
        """
        results: list[object] = []
        with self._lock:
            db = self._open_db()
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error("apply", exc) from exc
            self._batch = True
            try:
                index = 0
                while index < len(ops):
                    group = _group_at(ops, index)
                    if len(group) > 1:
                        results.extend(self._apply_group(db, group))
                    else:
                        results.append(self._apply_single(db, ops[index]))
                    index += len(group)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise self._error("apply", exc) from exc
            except BaseException:
                self._rollback(db)
                raise
            finally:
                self._batch = False
        return results

    def _apply_single(self, db: sqlite3.Connection, op: StoreOp) -> object:
        """One op in its own savepoint: its result, or the exception it raised (undone)."""
        db.execute("SAVEPOINT op")
        try:
            result = self._apply_one(db, op)
        except Exception as exc:
            db.execute("ROLLBACK TO op")
            if isinstance(exc, sqlite3.Error):
                exc = self._error(type(op).__name__, exc)
            result = exc
        db.execute("RELEASE op")
        return result

    def _apply_group(self, db: sqlite3.Connection, group: Sequence[StoreOp]) -> list[object]:
        """Consecutive CreateRun (or CompleteRun) ops of distinct tasks (runs), written
        with a few set-wise statements instead of several each: every statement is a
        GIL hand-off for the store actor's thread. The effects and results are those of
        the ops one by one; anything unexpected undoes the group, which is then applied
        op by op."""
        db.execute("SAVEPOINT grp")
        try:
            if type(group[0]) is CreateRun:
                results = self._create_group(db, group)  # type: ignore[arg-type]
            else:
                results = self._complete_group(db, group)  # type: ignore[arg-type]
        except Exception:
            db.execute("ROLLBACK TO grp")
            db.execute("RELEASE grp")
            return [self._apply_single(db, op) for op in group]
        db.execute("RELEASE grp")
        return results

    def _create_group(self, db: sqlite3.Connection, ops: Sequence[CreateRun]) -> list[object]:
        results: list[object] = [None] * len(ops)
        rows = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT id, options, script, max(latest_completed, coalesce(latest_created, "
                f"latest_completed)), queued FROM tasks WHERE id IN ({_marks(len(ops))})",
                [op.task_id for op in ops],
            )
        }
        due_now: list[tuple[int, CreateRun, int, int, int, str, TaskOptions]] = []
        for k, op in enumerate(ops):
            row = rows.get(op.task_id)
            if row is None:
                results[k] = TaskNotFound(op.task_id)
                continue
            options_json, script, base, queued = row
            if queued:  # a manual run first: the one-by-one path (rare)
                results[k] = self._apply_single(db, op)
                continue
            options = _options_of(options_json)
            slot = self._next_slot(op.task_id, options_json, options, base)
            due = due_time(options, slot)
            if due > op.now:
                results[k] = RunNotDueYet(due)
                continue
            following = self._next_slot(op.task_id, options_json, options, slot)
            due_now.append((k, op, slot, due, following, script, options))
        if not due_now:
            return results
        started = RunStatus.STARTED.value
        params: list[Any] = []
        for _, op, slot, *_ in due_now:
            params += (op.task_id, slot, _IN_PROGRESS, started, float(op.when))
        ids = dict(
            db.execute(
                "INSERT INTO runs (task_id, scheduled_for, requested_at, state, status, "
                "started_at, executions) VALUES "
                + ",".join(["(?, ?, 0, ?, ?, ?, 1)"] * len(due_now))
                + " RETURNING task_id, id",
                params,
            ).fetchall()
        )
        db.executemany(
            "UPDATE tasks SET latest_created = ? WHERE id = ?",
            [(slot, op.task_id) for _, op, slot, *_ in due_now],
        )
        db.executemany(
            "INSERT INTO run_logs (run_id, at, message) VALUES (?, ?, ?)",
            [
                (ids[op.task_id], float(op.when), str(line))
                for _, op, *_ in due_now
                for line in op.lines
            ],
        )
        for k, op, slot, due, following, script, options in due_now:
            results[k] = _scheduled(
                op.task_id, ids[op.task_id], slot, due, script, options, following
            )
        return results

    def _complete_group(self, db: sqlite3.Connection, ops: Sequence[CompleteRun]) -> list[object]:
        results: list[object] = [None] * len(ops)
        rows = {
            row[0]: row
            for row in db.execute(
                f"SELECT {_RUN_COLUMNS}, state FROM runs WHERE id IN ({_marks(len(ops))})",
                [op.run_id for op in ops],
            )
        }
        done: list[tuple[CompleteRun, RunStatus, tuple[Any, ...]]] = []
        for k, op in enumerate(ops):
            row = rows.get(op.run_id)
            if row is None or row[1] != op.task_id or row[7] == _QUEUED:
                results[k] = self._apply_single(db, op)  # the error the call names
                continue
            try:
                status = _terminal(op.status)
            except ValueError as exc:
                results[k] = exc
                continue
            if row[7] == _FINISHED:
                results[k] = False
                continue
            results[k] = True
            done.append((op, status, row))
        if not done:
            return results
        finished_at = self._clock()
        db.executemany(
            "INSERT INTO run_logs (run_id, at, message) VALUES (?, ?, ?)",
            [(op.run_id, float(op.when), str(line)) for op, _, _ in done for line in op.lines],
        )
        db.executemany(
            "UPDATE runs SET state = ?, finished_at = ?, status = ? WHERE id = ?",
            [(_FINISHED, finished_at, status.value, op.run_id) for op, status, _ in done],
        )
        # Per task: runs finished, and the latest slot of its scheduled ones.
        tasks: dict[str, list[Any]] = {}
        for op, _, row in done:
            entry = tasks.setdefault(op.task_id, [0, None])
            entry[0] += 1
            if not row[4]:  # a scheduled run advances latest completed
                entry[1] = row[3] if entry[1] is None else max(entry[1], row[3])
        db.executemany(
            "UPDATE tasks SET finished_runs = finished_runs + ?, latest_completed = "
            "max(latest_completed, coalesce(?, latest_completed)) WHERE id = ?",
            [(count, slot, task_id) for task_id, (count, slot) in tasks.items()],
        )
        for task_id, count in db.execute(
            f"SELECT id, finished_runs FROM tasks WHERE id IN ({_marks(len(tasks))})",
            list(tasks),
        ).fetchall():
            self._retain(db, task_id, count, tasks[task_id][0])
        return results

    def _apply_one(self, db: sqlite3.Connection, op: StoreOp) -> object:
        """The run path's ops in fewer statements (the same effects); others by their call."""
        kind = type(op)
        if kind is CreateRun:
            assert isinstance(op, CreateRun)
            return self._create_next(db, op.task_id, op.now, (op.when, op.lines))
        if kind is CompleteRun:
            assert isinstance(op, CompleteRun)
            row = self._complete(db, op.task_id, op.run_id, op.when, op.status, op.lines)
            return row is not None
        return op.call(self)

    @contextmanager
    def _write(self, call: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; SQLite's errors become StoreError, ours pass through.

        Inside :meth:`apply` it is part of the batch's transaction (the op's savepoint).
        """
        with self._lock:
            db = self._open_db()
            if self._batch:  # inside apply(): its op's savepoint makes this call atomic
                try:
                    yield db
                except sqlite3.Error as exc:
                    raise self._error(call, exc) from exc
                return
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(call, exc) from exc
            try:
                yield db
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise self._error(call, exc) from exc
            except BaseException:
                self._rollback(db)
                raise

    @contextmanager
    def _read(self, call: str) -> Iterator[sqlite3.Connection]:
        """One read transaction (a consistent snapshot); inside :meth:`apply`, the batch's."""
        with self._lock:
            db = self._open_db()
            if self._batch:
                try:
                    yield db
                except sqlite3.Error as exc:
                    raise self._error(call, exc) from exc
                return
            try:
                db.execute("BEGIN")
                try:
                    yield db
                finally:
                    if db.in_transaction:
                        db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(call, exc) from exc

    def _open_db(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(self.path, f"store error: {self.path} is closed")
        return self._db

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -- rows ---------------------------------------------------------------------------

    def _task_row(self, db: sqlite3.Connection, task_id: str) -> tuple[Any, ...]:
        row = db.execute(
            "SELECT id, options, status, script, latest_completed FROM tasks WHERE id = ?",
            (task_id,),
        ).fetchone()
        if row is None:
            raise TaskNotFound(task_id)
        return tuple(row)

    @staticmethod
    def _task_of(row: tuple[Any, ...]) -> Task:
        task_id, options, status, script = row[:4]
        return Task(
            id=task_id,
            options=_options_of(options),
            status=TaskStatus(status),
            script=script,
        )

    def _run_row(self, db: sqlite3.Connection, task_id: str, run_id: int) -> tuple[Any, ...]:
        row = db.execute(
            f"SELECT {_RUN_COLUMNS}, state FROM runs WHERE id = ? AND task_id = ?",
            (run_id, task_id),
        ).fetchone()
        if row is None:
            self._task_row(db, task_id)  # TaskNotFound first
            raise RunNotFound(task_id, run_id)
        return tuple(row)

    @staticmethod
    def _run_of(row: tuple[Any, ...], log: tuple[LogEntry, ...] = ()) -> Run:
        run_id, task_id, status, scheduled_for, requested_at, started_at, finished_at = row[:7]
        executions = row[7] if len(row) > 7 else 0
        return Run(
            id=run_id,
            task_id=task_id,
            status=RunStatus(status),
            scheduled_for=scheduled_for,
            requested_at=requested_at,
            started_at=started_at,
            finished_at=finished_at,
            log=log,
            executions=executions,
        )

    def _runs(self, db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[Run]:
        rows = db.execute(
            f"SELECT {_RUN_COLUMNS}, executions FROM runs WHERE {where}", args
        ).fetchall()
        if not rows:
            return []
        logs: dict[int, list[LogEntry]] = {}
        ids = [row[0] for row in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for run_id, at, message in db.execute(
                f"SELECT run_id, at, message FROM run_logs WHERE run_id IN ({marks}) "
                "ORDER BY rowid",
                chunk,
            ):
                logs.setdefault(run_id, []).append(LogEntry(at, message))
        return [self._run_of(tuple(row), tuple(logs.get(row[0], ()))) for row in rows]

    def _schedule_row(self, db: sqlite3.Connection, task_id: str) -> tuple[Any, ...]:
        """(options, script, base, queued) of the task: base is max(latest completed, the
        latest slot of its scheduled runs created), queued its manual runs waiting."""
        row = db.execute(
            "SELECT options, script, max(latest_completed, coalesce(latest_created, "
            "latest_completed)), queued FROM tasks WHERE id = ?",
            (task_id,),
        ).fetchone()
        if row is None:
            raise TaskNotFound(task_id)
        return tuple(row)

    def _next_slot(self, task_id: str, options_json: str, options: TaskOptions, base: int) -> int:
        cached = self._slots.get(task_id)
        if cached is not None and cached[0] == options_json and cached[1] == base:
            return cached[2]
        slot = next_slot(options, base)
        self._slots[task_id] = (options_json, base, slot)
        return slot

    def _requested_now(self) -> int:
        return max(1, int(self._clock()))  # requested_at marks a run as manual: never 0

    # -- what the application keeps beside the tasks (not part of the contract) --------

    def changed_by_others(self) -> bool:
        """True if another connection (the command line, say) committed since the last
        call: a cheap poll (``PRAGMA data_version``) for a daemon to notice manual runs
        queued from outside. The first call says True."""
        with self._read("changed_by_others") as db:
            (version,) = db.execute("PRAGMA data_version").fetchone()
        changed = version != self._data_version
        self._data_version = version
        return bool(changed)

    def get_meta(self, key: str) -> str | None:
        """The application's value for ``key`` (None if unset); e.g. the daemon's task list."""
        with self._read("get_meta") as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set the application's ``value`` for ``key`` (one transaction)."""
        with self._write("set_meta") as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- task management ------------------------------------------------------------------

    def add_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        """Add ``task``; ``latest_completed=None`` means now (no catch-up of earlier slots)."""
        latest = int(self._clock()) if latest_completed is None else int(latest_completed)
        with self._write("add_task") as db:
            if db.execute("SELECT 1 FROM tasks WHERE id = ?", (task.id,)).fetchone():
                raise TaskAlreadyExists(task.id)
            db.execute(
                "INSERT INTO tasks (id, options, status, script, latest_completed) "
                "VALUES (?, ?, ?, ?, ?)",
                (task.id, _options_json(task.options), task.status.value, task.script, latest),
            )

    def update_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        """Replace the stored task; ``latest_completed`` only ever moves forward."""
        with self._write("update_task") as db:
            self._task_row(db, task.id)
            db.execute(
                "UPDATE tasks SET options = ?, status = ?, script = ? WHERE id = ?",
                (_options_json(task.options), task.status.value, task.script, task.id),
            )
            if latest_completed is not None:
                db.execute(
                    "UPDATE tasks SET latest_completed = max(latest_completed, ?) WHERE id = ?",
                    (int(latest_completed), task.id),
                )

    def remove_task(self, task_id: str) -> None:
        """Drop the task and all its runs."""
        with self._write("remove_task") as db:
            self._task_row(db, task_id)
            db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
            self._slots.pop(task_id, None)

    def get_task(self, task_id: str) -> Task:
        """The stored task."""
        with self._read("get_task") as db:
            return self._task_of(self._task_row(db, task_id))

    def list_tasks(self) -> list[Task]:
        """Every task, by id."""
        with self._read("list_tasks") as db:
            rows = db.execute(
                "SELECT id, options, status, script FROM tasks ORDER BY id"
            ).fetchall()
        return [self._task_of(tuple(row)) for row in rows]

    def latest_completed(self, task_id: str) -> int:
        """The latest completed scheduled slot of the task (not part of the contract)."""
        with self._read("latest_completed") as db:
            return int(self._task_row(db, task_id)[4])

    # -- the control service -------------------------------------------------------------

    #: Calls wait on the disk (and on other connections' locks): the scheduler reaches
    #: this store through its store actor, which batches the run path's writes.
    does_io = True

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        """The next manual run, else the run for the next slot if due by ``now``."""
        with self._write("create_next_run") as db:
            return self._create_next(db, task_id, now, None)

    def _create_next(
        self,
        db: sqlite3.Connection,
        task_id: str,
        now: int,
        start: tuple[float, Sequence[str]] | None,
    ) -> RunCreation:
        """create_next_run's writes; with ``start`` (when, lines) the run is written
        started as well, as start_run would (what :class:`CreateRun` asks, in one step)."""
        options_json, script, base, queued = self._schedule_row(db, task_id)
        options = _options_of(options_json)
        if start is None:
            status, started_at, executions = RunStatus.SCHEDULED.value, None, 0
        else:
            status, started_at, executions = RunStatus.STARTED.value, float(start[0]), 1
        if queued:
            run_id, scheduled_for, requested_at = db.execute(
                "SELECT id, scheduled_for, requested_at FROM runs "
                "WHERE task_id = ? AND state = ? ORDER BY id LIMIT 1",
                (task_id, _QUEUED),
            ).fetchone()
            db.execute(
                "UPDATE runs SET state = ?, status = ?, started_at = ?, "
                "executions = executions + ? WHERE id = ?",
                (_IN_PROGRESS, status, started_at, executions, run_id),
            )
            db.execute("UPDATE tasks SET queued = queued - 1 WHERE id = ?", (task_id,))
            slot = self._next_slot(task_id, options_json, options, base)
            created = RunCreation(
                created=QueuedRun(
                    task_id=task_id,
                    run_id=run_id,
                    scheduled_for=scheduled_for,
                    due_at=now,
                    requested_at=requested_at,
                    script=script,
                ),
                next_due=due_time(options, slot),
                has_queue=queued > 1,
            )
        else:
            slot = self._next_slot(task_id, options_json, options, base)
            due = due_time(options, slot)
            if due > now:
                raise RunNotDueYet(due)
            following = self._next_slot(task_id, options_json, options, slot)
            run_id = db.execute(
                "INSERT INTO runs (task_id, scheduled_for, requested_at, state, status, "
                "started_at, executions) VALUES (?, ?, 0, ?, ?, ?, ?)",
                (task_id, slot, _IN_PROGRESS, status, started_at, executions),
            ).lastrowid
            assert run_id is not None
            db.execute("UPDATE tasks SET latest_created = ? WHERE id = ?", (slot, task_id))
            created = _scheduled(task_id, run_id, slot, due, script, options, following)
        if start is not None:
            db.executemany(
                "INSERT INTO run_logs (run_id, at, message) VALUES (?, ?, ?)",
                [(run_id, started_at, str(line)) for line in start[1]],
            )
        return created

    def next_due_run(self, task_id: str) -> int:
        """The due time (offset included) of the task's next scheduled slot."""
        with self._read("next_due_run") as db:
            options_json, _, base, _ = self._schedule_row(db, task_id)
            options = _options_of(options_json)
            return due_time(options, self._next_slot(task_id, options_json, options, base))

    def currently_running(self, task_id: str) -> list[Run]:
        """Runs created by ``create_next_run`` and not finished, by id."""
        with self._read("currently_running") as db:
            self._task_row(db, task_id)
            return self._runs(db, "task_id = ? AND state = ? ORDER BY id", (task_id, _IN_PROGRESS))

    def manual_runs(self, task_id: str) -> list[Run]:
        """Manual runs waiting in the queue, in queue order."""
        with self._read("manual_runs") as db:
            self._task_row(db, task_id)
            return self._runs(db, "task_id = ? AND state = ? ORDER BY id", (task_id, _QUEUED))

    def claim_state(self, task_id: str) -> ClaimState:
        """Next due, whether a queue waits, and the runs in progress by start, at once."""
        with self._read("claim_state") as db:
            options_json, _, base, queued = self._schedule_row(db, task_id)
            options = _options_of(options_json)
            next_due = due_time(options, self._next_slot(task_id, options_json, options, base))
            running = self._runs(
                db, "task_id = ? AND state = ? ORDER BY id", (task_id, _IN_PROGRESS)
            )
        scheduled = RunStatus.SCHEDULED
        return ClaimState(
            next_due=next_due,
            has_queue=bool(queued),
            unstarted=tuple(run for run in running if run.status is scheduled),
            started=tuple(run for run in running if run.status is not scheduled),
        )

    def finish_run(self, task_id: str, run_id: int) -> Run:
        """Take the run out of the in-progress set; scheduled runs advance latest completed."""
        with self._write("finish_run") as db:
            row = self._in_progress(db, task_id, run_id)
            self._finish(db, task_id, run_id, row)
            return self._fetch_run(db, run_id)

    def _finish(
        self,
        db: sqlite3.Connection,
        task_id: str,
        run_id: int,
        row: tuple[Any, ...],
        status: RunStatus | None = None,
    ) -> None:
        """finish_run's writes (and ``status``, if given), in the caller's transaction."""
        finished_at = self._clock()
        db.execute(
            "UPDATE runs SET state = ?, finished_at = ?, status = coalesce(?, status) WHERE id = ?",
            (_FINISHED, finished_at, None if status is None else status.value, run_id),
        )
        # A scheduled run (requested_at 0) advances latest completed to its slot.
        (count,) = db.execute(
            "UPDATE tasks SET finished_runs = finished_runs + 1, latest_completed = "
            "CASE WHEN ? THEN latest_completed ELSE max(latest_completed, ?) END "
            "WHERE id = ? RETURNING finished_runs",
            (row[4], row[3], task_id),
        ).fetchone()
        self._retain(db, task_id, count)

    def _fetch_run(self, db: sqlite3.Connection, run_id: int) -> Run:
        (run,) = self._runs(db, "id = ?", (run_id,))
        return run

    def _retain(self, db: sqlite3.Connection, task_id: str, count: int, added: int = 1) -> None:
        """Delete the task's oldest finished runs once a batch is over ``keep_runs``, and
        (every ``RETENTION_BATCH`` finishes) up to a batch of those older than ``keep_for``.
        ``count`` is the task's finished runs, the ``added`` just finished included."""
        if self._keep_for is not None and (count - added) // RETENTION_BATCH < (
            count // RETENTION_BATCH
        ):
            cursor = db.execute(
                "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE task_id = ? "
                "AND state = ? AND finished_at < ? ORDER BY id LIMIT ?)",
                (task_id, _FINISHED, self._clock() - self._keep_for, RETENTION_BATCH),
            )
            if cursor.rowcount:
                count -= cursor.rowcount
                db.execute("UPDATE tasks SET finished_runs = ? WHERE id = ?", (count, task_id))
        if self._keep is None:
            return
        if count < self._keep + RETENTION_BATCH:
            return
        (count,) = db.execute(
            "SELECT count(*) FROM runs WHERE task_id = ? AND state = ?", (task_id, _FINISHED)
        ).fetchone()
        excess = min(count - self._keep, RETENTION_BATCH)
        if excess > 0:
            db.execute(
                "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE task_id = ? "
                "AND state = ? ORDER BY id LIMIT ?)",
                (task_id, _FINISHED, excess),
            )
            count -= excess
        db.execute("UPDATE tasks SET finished_runs = ? WHERE id = ?", (count, task_id))

    def update_run_state(self, task_id: str, run_id: int, when: float, status: RunStatus) -> None:
        """Set the run's status; ``STARTED`` also sets ``started_at``."""
        status = RunStatus(status)
        with self._write("update_run_state") as db:
            self._run_row(db, task_id, run_id)
            if status is RunStatus.STARTED:
                db.execute(
                    "UPDATE runs SET status = ?, started_at = ? WHERE id = ?",
                    (status.value, float(when), run_id),
                )
            else:
                db.execute("UPDATE runs SET status = ? WHERE id = ?", (status.value, run_id))

    def add_run_log(self, task_id: str, run_id: int, when: float, message: str) -> None:
        """Append a line to the run's log."""
        with self._write("add_run_log") as db:
            self._run_row(db, task_id, run_id)
            db.execute(
                "INSERT INTO run_logs (run_id, at, message) VALUES (?, ?, ?)",
                (run_id, float(when), str(message)),
            )

    def start_run(self, task_id: str, run_id: int, when: float, lines: Sequence[str]) -> None:
        """Status started, ``started_at`` and the lines, in one transaction."""
        when = float(when)
        with self._write("start_run") as db:
            self._in_progress(db, task_id, run_id)
            db.execute(
                "UPDATE runs SET status = ?, started_at = ?, executions = executions + 1 "
                "WHERE id = ?",
                (RunStatus.STARTED.value, when, run_id),
            )
            db.executemany(
                "INSERT INTO run_logs (run_id, at, message) VALUES (?, ?, ?)",
                [(run_id, when, str(line)) for line in lines],
            )

    def complete_run(
        self, task_id: str, run_id: int, when: float, status: RunStatus, lines: Sequence[str]
    ) -> Run | None:
        """The lines, the terminal status and the finish, in one transaction; None if
        the run was finished already (nothing changes)."""
        with self._write("complete_run") as db:
            row = self._complete(db, task_id, run_id, when, status, lines)
            return None if row is None else self._fetch_run(db, run_id)

    def _complete(
        self,
        db: sqlite3.Connection,
        task_id: str,
        run_id: int,
        when: float,
        status: RunStatus,
        lines: Sequence[str],
    ) -> tuple[Any, ...] | None:
        """complete_run's writes; the run's row before them, or None if it was finished."""
        status = _terminal(status)
        when = float(when)
        row = self._run_row(db, task_id, run_id)
        if row[7] == _FINISHED:
            return None
        self._in_progress(db, task_id, run_id, row)
        db.executemany(
            "INSERT INTO run_logs (run_id, at, message) VALUES (?, ?, ?)",
            [(run_id, when, str(line)) for line in lines],
        )
        self._finish(db, task_id, run_id, row, status)
        return row

    def _in_progress(
        self,
        db: sqlite3.Connection,
        task_id: str,
        run_id: int,
        row: tuple[Any, ...] | None = None,
    ) -> tuple[Any, ...]:
        row = self._run_row(db, task_id, run_id) if row is None else row
        if row[7] != _IN_PROGRESS:
            raise RunNotFound(
                task_id,
                run_id,
                f"run not found: run {run_id} of task {task_id!r} is not in progress",
            )
        return row

    # -- manual runs and run history -----------------------------------------------------

    def _enqueue(self, db: sqlite3.Connection, task_id: str, scheduled_for: int) -> Run:
        if db.execute(
            "SELECT 1 FROM runs WHERE task_id = ? AND state = ? AND scheduled_for = ?",
            (task_id, _QUEUED, scheduled_for),
        ).fetchone():
            raise RunAlreadyQueued(task_id, scheduled_for)
        cursor = db.execute(
            "INSERT INTO runs (task_id, scheduled_for, requested_at, state, status) "
            "VALUES (?, ?, ?, ?, ?)",
            (task_id, scheduled_for, self._requested_now(), _QUEUED, RunStatus.SCHEDULED.value),
        )
        db.execute("UPDATE tasks SET queued = queued + 1 WHERE id = ?", (task_id,))
        (run,) = self._runs(db, "id = ?", (cursor.lastrowid,))
        return run

    def force_run(self, task_id: str, scheduled_for: int) -> Run:
        """Queue a manual run for ``scheduled_for``."""
        with self._write("force_run") as db:
            self._task_row(db, task_id)
            return self._enqueue(db, task_id, int(scheduled_for))

    def retry_run(self, task_id: str, run_id: int) -> Run:
        """Queue a copy of a finished run (same ``scheduled_for``) under a new id."""
        with self._write("retry_run") as db:
            row = self._run_row(db, task_id, run_id)
            if row[7] != _FINISHED and not RunStatus(row[2]).is_terminal:
                raise RunNotFinished(task_id, run_id)
            return self._enqueue(db, task_id, row[3])

    def find_runs(self, task_id: str) -> list[Run]:
        """Every run the store keeps for the task, by ``scheduled_for`` then id, descending."""
        with self._read("find_runs") as db:
            self._task_row(db, task_id)
            return self._runs(db, "task_id = ? ORDER BY scheduled_for DESC, id DESC", (task_id,))

    def find_run(self, task_id: str, run_id: int) -> Run:
        """One run, with its log."""
        with self._read("find_run") as db:
            self._run_row(db, task_id, run_id)
            (run,) = self._runs(db, "id = ?", (run_id,))
            return run


#: Ops written set-wise at most (bound parameters stay well under SQLite's limit).
_GROUP_MAX = 512


def _group_at(ops: Sequence[StoreOp], index: int) -> Sequence[StoreOp]:
    """The consecutive CreateRun ops of distinct tasks (or CompleteRun ops of distinct
    runs) from ``index``, at most ``_GROUP_MAX``; else just the op at ``index``."""
    kind = type(ops[index])
    if kind is not CreateRun and kind is not CompleteRun:
        return ops[index : index + 1]
    keys: set[object] = set()
    end = index
    while end < len(ops) and type(ops[end]) is kind and end - index < _GROUP_MAX:
        op = ops[end]
        key = op.task_id if isinstance(op, CreateRun) else op.run_id  # type: ignore[attr-defined]
        if key in keys:
            break
        keys.add(key)
        end += 1
    return ops[index:end]


def _scheduled(
    task_id: str,
    run_id: int,
    slot: int,
    due: int,
    script: str,
    options: TaskOptions,
    following: int,
) -> RunCreation:
    """What creating the scheduled run for ``slot`` returns (no manual run waits)."""
    return RunCreation(
        created=QueuedRun(
            task_id=task_id,
            run_id=run_id,
            scheduled_for=slot,
            due_at=due,
            requested_at=0,
            script=script,
        ),
        next_due=due_time(options, following),
        has_queue=False,
    )


def _marks(count: int) -> str:
    return ",".join("?" * count)


_options_cache: dict[str, TaskOptions] = {}


def _options_of(text: str) -> TaskOptions:
    """The TaskOptions a row holds (parsed once per distinct text)."""
    options = _options_cache.get(text)
    if options is None:
        if len(_options_cache) > 4096:
            _options_cache.clear()
        options = _options_cache[text] = TaskOptions(**json.loads(text))
    return options
