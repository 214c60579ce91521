"""A Hypothesis state machine that drives a real Scheduler and checks it against a model.

:class:`SchedulerMachine` runs real actors on a store (a :class:`~protocols.MemoryStore`
unless you override :meth:`SchedulerMachine.make_store`) and a
:class:`~protocols.testing.manual.ManualExecutor`, and applies random sequences of:
add, claim, update (concurrency, schedule, offset, active/inactive, with or without
catch-up), release, ticks forward (small steps and big jumps that leave a backlog)
and backwards, force_run, retry_run, cancel_run, run outcomes (success, failure,
wait error, cancel at the executor), execute failures, and stop/restart on the
same store with runs left in progress "by a crashed process". After every step it
waits for the actors (``settle``) and checks, against a simple model:

- no task has more runs in flight than its concurrency (nor the executor's record);
- the scheduled runs of an active task are exactly its due slots, in increasing
  order, none missing, none twice; a task with a free slot has nothing due or
  queued; inactive tasks create no runs; unclaimed tasks have nothing in flight;
- manual runs are served first, in the order they were queued; runs left in
  progress are resumed (in slot order) before new runs are created;
- every run goes scheduled -> started -> one terminal state, with exactly one
  ``finish_run``, and the terminal state is the one the step asked for;
- the Prometheus metrics equal the model's counts;
- refused operations raise the documented error and change nothing;
- after stop: nothing in flight, no pending promise, no thread left behind.

Run it against your own store with a few lines (``Scheduler`` being
:class:`actors.Scheduler`, imported by your test module)::

    class MyStoreMachine(SchedulerMachine):
        scheduler_class = Scheduler

        def make_store(self, clock):
            return MyStore(clock=clock)

    TestMyStoreMachine = MyStoreMachine.TestCase

``scheduler_class`` names the scheduler to drive (``protocols`` never imports
``actors``): any class with :class:`actors.Scheduler`'s constructor and methods, so
the same machine also checks a scheduler variant.

The schedules are ``every`` schedules (1-10 s, offsets -3..3 s), so the slots are
multiples of ``every`` since the Unix epoch; a store must compute them with
:func:`protocols.schedules.next_slot` (or agree with it).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Final

import attrs
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from prometheus_client import CollectorRegistry

from protocols.contracts import TaskStore
from protocols.errors import (
    RunAlreadyQueued,
    RunNotDueYet,
    RunNotFinished,
    RunNotFound,
    TaskAlreadyClaimed,
    TaskAlreadyExists,
    TaskNotClaimed,
    TaskNotFound,
)
from protocols.model import QueuedRun, Run, RunCreation, RunStatus, Task, TaskStatus
from protocols.options import TaskOptions
from protocols.schedules import due_time, next_slot
from protocols.testing.manual import ManualExecutor
from protocols.testing.store_contract import FakeClock

__all__ = [
    "RecordingStore",
    "SchedulerMachine",
    "StoreEvent",
    "run_scheduler_machine",
    "scheduler_machine",
]

CREATE: Final = "create"
NOT_DUE: Final = "not_due"
STATE: Final = "state"
FINISH: Final = "finish"

_TERMINAL: Final = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED})


# -- the recording store ----------------------------------------------------------------


@attrs.frozen
class StoreEvent:
    """One call the scheduler made to the store's control service, in call order."""

    kind: str  # CREATE, NOT_DUE, STATE or FINISH
    task_id: str
    run_id: int = 0
    now: int = 0  # create_next_run's now
    run: QueuedRun | None = None  # CREATE: the run created
    due_at: int = 0  # NOT_DUE: when the next run is due
    status: RunStatus | None = None  # STATE: the status set


class RecordingStore:
    """A :class:`~protocols.TaskStore` that forwards to ``inner`` and records the
    control-service calls that change runs (thread-safe)."""

    def __init__(self, inner: TaskStore) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._events: list[StoreEvent] = []

    def take_events(self) -> list[StoreEvent]:
        """The events recorded since the last call, oldest first."""
        with self._lock:
            events, self._events = self._events, []
            return events

    def _record(self, event: StoreEvent) -> None:
        with self._lock:
            self._events.append(event)

    # -- recorded -------------------------------------------------------------------

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        """The inner store's, recorded (a RunNotDueYet too)."""
        try:
            created = self.inner.create_next_run(task_id, now)
        except RunNotDueYet as exc:
            self._record(StoreEvent(NOT_DUE, task_id, now=now, due_at=exc.due_at))
            raise
        run = created.created
        self._record(StoreEvent(CREATE, task_id, run.run_id, now=now, run=run))
        return created

    def update_run_state(self, task_id: str, run_id: int, when: float, status: RunStatus) -> None:
        """The inner store's, recorded."""
        self.inner.update_run_state(task_id, run_id, when, status)
        self._record(StoreEvent(STATE, task_id, run_id, status=RunStatus(status)))

    def finish_run(self, task_id: str, run_id: int) -> Run:
        """The inner store's, recorded."""
        run = self.inner.finish_run(task_id, run_id)
        self._record(StoreEvent(FINISH, task_id, run_id))
        return run

    # -- forwarded ------------------------------------------------------------------

    def next_due_run(self, task_id: str) -> int:
        """The inner store's."""
        return self.inner.next_due_run(task_id)

    def currently_running(self, task_id: str) -> list[Run]:
        """The inner store's."""
        return self.inner.currently_running(task_id)

    def manual_runs(self, task_id: str) -> list[Run]:
        """The inner store's."""
        return self.inner.manual_runs(task_id)

    def add_run_log(self, task_id: str, run_id: int, when: float, message: str) -> None:
        """The inner store's."""
        self.inner.add_run_log(task_id, run_id, when, message)

    def add_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        """The inner store's."""
        self.inner.add_task(task, latest_completed=latest_completed)

    def update_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        """The inner store's."""
        self.inner.update_task(task, latest_completed=latest_completed)

    def remove_task(self, task_id: str) -> None:
        """The inner store's."""
        self.inner.remove_task(task_id)

    def get_task(self, task_id: str) -> Task:
        """The inner store's."""
        return self.inner.get_task(task_id)

    def list_tasks(self) -> list[Task]:
        """The inner store's."""
        return self.inner.list_tasks()

    def force_run(self, task_id: str, scheduled_for: int) -> Run:
        """The inner store's."""
        return self.inner.force_run(task_id, scheduled_for)

    def retry_run(self, task_id: str, run_id: int) -> Run:
        """The inner store's."""
        return self.inner.retry_run(task_id, run_id)

    def find_runs(self, task_id: str) -> list[Run]:
        """The inner store's."""
        return self.inner.find_runs(task_id)

    def find_run(self, task_id: str, run_id: int) -> Run:
        """The inner store's."""
        return self.inner.find_run(task_id, run_id)


# -- the model --------------------------------------------------------------------------

# A run's life in the model.
_CREATED: Final = "created"  # created by the scheduler, not executed yet
_LEFT: Final = "left"  # in progress in the store, no scheduler has it (a crash left it)
_EXECUTING: Final = "executing"
_DONE: Final = "done"


@attrs.define
class _RunModel:
    id: int
    task_id: str
    slot: int
    manual: bool
    state: str
    statuses: list[RunStatus] = attrs.Factory(list)
    finishes: int = 0
    expected: RunStatus | None = None
    executions: int = 0


@attrs.define
class _TaskModel:
    task: Task  # the store's copy
    latest_completed: int
    queue: deque[tuple[int, int]] = attrs.Factory(deque)  # (run id, slot), FIFO
    max_concurrency: int = 1
    scheduled_slots: set[int] = attrs.Factory(set)  # slots with a scheduled run so far


@attrs.define
class _ClaimModel:
    task: Task  # the scheduler's copy
    resume: deque[int]
    success: int = 0
    failure: int = 0
    created: bool = False  # the scheduler created a run for it in this step


class _NullLogger:
    """A structlog-shaped logger that drops everything (keeps test output clean)."""

    def bind(self, **_: Any) -> _NullLogger:
        return self

    def _drop(self, *_: Any, **__: Any) -> None:
        return None

    debug = info = warning = error = exception = critical = msg = _drop


_IDS: Final = ("t1", "t2", "t3")


class SchedulerMachine(RuleBasedStateMachine):
    """Random operations on a real Scheduler, checked against a model after every step.

    Override :meth:`make_store` (and :meth:`close_store`) to check another store;
    ``task_ids``, ``max_concurrency``, ``max_every`` and ``settle_timeout`` tune
    the machine.
    """

    task_ids: ClassVar[tuple[str, ...]] = _IDS
    max_concurrency: ClassVar[int] = 3
    max_every: ClassVar[int] = 10
    settle_timeout: ClassVar[float] = 30.0
    start_time: ClassVar[int] = 1_000

    # -- what a user overrides ------------------------------------------------------

    def make_store(self, clock: Callable[[], float]) -> TaskStore:
        """A new, empty store reading the time from ``clock`` (default: a MemoryStore)."""
        from protocols.stores.memory import MemoryStore

        return MemoryStore(clock=clock)

    def close_store(self, store: TaskStore) -> None:
        """Release what :meth:`make_store` acquired (nothing by default)."""

    # -- set-up and tear-down -------------------------------------------------------

    def __init__(self) -> None:
        super().__init__()
        self._threads_before = set(threading.enumerate())
        self.now = self.start_time
        self.clock = FakeClock(1_000_000.0)
        self.store = self.make_store(self.clock)
        self.recorder = RecordingStore(self.store)
        self.executor = ManualExecutor()
        self.registry = CollectorRegistry()
        self.tasks: dict[str, _TaskModel] = {}
        self.claims: dict[str, _ClaimModel] = {}
        self.runs: dict[int, _RunModel] = {}
        self.total_success = 0
        self.total_failure = 0
        self.errors = 0
        self.claims_ok = 0
        self.claims_failed = 0
        self.pending_execute_errors = 0
        self._executed_seen = 0
        self._stopped = False
        self._broken = False
        self.scheduler = self._new_scheduler()

    #: The scheduler class to drive, e.g. ``actors.Scheduler`` (set it in a subclass).
    scheduler_class: ClassVar[type[Any] | None] = None

    def _new_scheduler(self) -> Any:
        scheduler_class = type(self).scheduler_class
        if scheduler_class is None:
            raise TypeError(
                f"{type(self).__name__}.scheduler_class is not set: name the scheduler to "
                "drive, e.g. `scheduler_class = actors.Scheduler` (protocols never imports "
                "actors)"
            )
        scheduler = scheduler_class(
            self.recorder,
            self.executor,
            now=self.now,
            registry=self.registry,
            logger=_NullLogger(),
            clock=self.clock,
        )
        scheduler.start()
        return scheduler

    def teardown(self) -> None:
        """Stop the scheduler and check nothing is left behind (unless a step failed)."""
        try:
            if self._broken:
                self.executor.release_wait()
                for run in self.executor.running():
                    self.executor.cancel(run.run_id)
                self.scheduler.stop()
            elif not self._stopped:
                self._stop()
        finally:
            self.close_store(self.store)

    # -- rules ----------------------------------------------------------------------

    @initialize(
        specs=st.lists(
            st.tuples(
                st.integers(1, 10),
                st.integers(-3, 3),
                st.integers(1, 3),
                st.sampled_from([True, True, True, False]),
                st.integers(0, 25),
                st.sampled_from([True, True, True, False]),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def setup_tasks(self, specs: list[tuple[int, int, int, bool, int, bool]]) -> None:
        """Add 1-3 tasks (some inactive, some with a backlog) and claim most of them."""
        for task_id, (every, offset, concurrency, active, backlog, claim) in zip(
            self.task_ids, specs, strict=False
        ):
            task = self._task(task_id, every, offset, concurrency, active)
            self.store.add_task(task, latest_completed=self.now - backlog)
            self.tasks[task_id] = _TaskModel(task, self.now - backlog, max_concurrency=concurrency)
            if claim:
                self.scheduler.claim_task(task)
                self.claims_ok += 1
                self.claims[task_id] = _ClaimModel(task, deque())
            self._step({})

    @rule(
        data=st.data(),
        every=st.integers(1, 10),
        offset=st.integers(-3, 3),
        concurrency=st.integers(1, 3),
        active=st.sampled_from([True, True, True, False]),
        backlog=st.integers(0, 25),
    )
    def add_task(
        self,
        data: st.DataObject,
        every: int,
        offset: int,
        concurrency: int,
        active: bool,
        backlog: int,
    ) -> None:
        """Add a task to the store (an existing id is refused with TaskAlreadyExists)."""
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        task = self._task(task_id, every, offset, concurrency, active)
        latest = self.now - backlog
        if task_id in self.tasks:
            self._refused(TaskAlreadyExists, lambda: self.store.add_task(task))
            return
        self.store.add_task(task, latest_completed=latest)
        self.tasks[task_id] = _TaskModel(task, latest, max_concurrency=task.options.concurrency)
        self._step({})

    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        """Claim a task: refused if claimed already or unknown to the store."""
        task_id = data.draw(st.sampled_from((*self.task_ids, "ghost")), label="task_id")
        if task_id in self.claims:
            self.claims_failed += 1
            task = self.claims[task_id].task
            self._refused(TaskAlreadyClaimed, lambda: self.scheduler.claim_task(task))
            return
        if task_id not in self.tasks:
            self.claims_failed += 1
            ghost = self._task(task_id, 1, 0, 1, True)
            self._refused(TaskNotFound, lambda: self.scheduler.claim_task(ghost))
            return
        model = self.tasks[task_id]
        left = sorted(
            (r for r in self.runs.values() if r.task_id == task_id and r.state == _LEFT),
            key=lambda r: (r.slot, r.id),
        )
        in_store = sorted(run.id for run in self.store.currently_running(task_id))
        assert in_store == sorted(r.id for r in left), (
            f"currently_running({task_id!r}) lists {in_store}, expected the runs left in "
            f"progress {sorted(r.id for r in left)}"
        )
        task = model.task
        self.scheduler.claim_task(task)
        self.claims_ok += 1
        self.claims[task_id] = _ClaimModel(task, deque(r.id for r in left))
        self._step({})

    @rule(
        data=st.data(),
        every=st.one_of(st.none(), st.integers(1, 10)),
        offset=st.one_of(st.none(), st.integers(-3, 3)),
        concurrency=st.integers(1, 3),
        active=st.sampled_from([True, True, False]),
        skip_missed=st.sampled_from([False, False, False, True]),
    )
    def update(
        self,
        data: st.DataObject,
        every: int | None,
        offset: int | None,
        concurrency: int,
        active: bool,
        skip_missed: bool,
    ) -> None:
        """Update a task in the store, then in the scheduler (TaskNotClaimed if not claimed).

        ``skip_missed`` passes ``latest_completed=now`` (no catch-up).
        """
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        model = self.tasks.get(task_id)
        if model is None:
            ghost = self._task(task_id, 1, 0, 1, True)
            self._refused(TaskNotClaimed, lambda: self.scheduler.update_task(ghost))
            return
        old = model.task.options
        assert old.every is not None
        task = self._task(
            task_id,
            old.every if every is None else every,
            old.offset if offset is None else offset,
            concurrency,
            active,
        )
        if skip_missed:
            self.store.update_task(task, latest_completed=self.now)
            model.latest_completed = max(model.latest_completed, self.now)
        else:
            self.store.update_task(task)
        model.task = task
        model.max_concurrency = max(model.max_concurrency, concurrency)
        if task_id not in self.claims:
            self._refused(TaskNotClaimed, lambda: self.scheduler.update_task(task))
            return
        self.claims[task_id].task = task
        self.scheduler.update_task(task)
        self._step({})

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """Release a task: its runs in flight end canceled (TaskNotClaimed if not claimed)."""
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        claim = self.claims.get(task_id)
        if claim is None:
            self._refused(TaskNotClaimed, lambda: self.scheduler.release_task(task_id))
            return
        expect = {r.id: RunStatus.CANCELED for r in self._executing(task_id)}
        del self.claims[task_id]
        for run_id in claim.resume:  # never started: still in progress in the store
            self.runs[run_id].state = _LEFT
        self.scheduler.release_task(task_id)
        self._step(expect)

    @rule(data=st.data(), index=st.integers(0, 10))
    def cancel_run(self, data: st.DataObject, index: int) -> None:
        """Cancel a run in flight through the scheduler; refused for unknown tasks and runs."""
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        if task_id not in self.claims:
            self._refused(TaskNotFound, lambda: self.scheduler.cancel_run(task_id, 1))
            return
        executing = self._executing(task_id)
        if not executing:
            finished = [r.id for r in self.runs.values() if r.task_id == task_id]
            run_id = finished[index % len(finished)] if finished else 10**9
            self._refused(RunNotFound, lambda: self.scheduler.cancel_run(task_id, run_id))
            return
        run = executing[index % len(executing)]
        self.scheduler.cancel_run(task_id, run.id)
        self._step({run.id: RunStatus.CANCELED})

    @precondition(lambda self: bool(self.executor.running()))
    @rule(
        picks=st.lists(
            st.tuples(
                st.integers(0, 10),
                st.sampled_from(["success", "success", "fail", "fail_wait", "cancel"]),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def complete(self, picks: list[tuple[int, str]]) -> None:
        """Settle 1-3 runs at the executor: success, failure, wait error, or cancel."""
        expect: dict[int, RunStatus] = {}
        for index, outcome in picks:
            running = sorted(self.executor.running(), key=lambda r: r.run_id)
            running = [r for r in running if r.run_id not in expect]
            if not running:
                break
            run_id = running[index % len(running)].run_id
            if outcome == "success":
                self.executor.succeed(run_id, {"n": run_id})
                expect[run_id] = RunStatus.SUCCESS
            elif outcome == "fail":
                self.executor.fail(run_id, "boom")
                expect[run_id] = RunStatus.FAILED
            elif outcome == "fail_wait":
                self.executor.fail_wait(run_id, ConnectionError("lost"))
                expect[run_id] = RunStatus.FAILED
            else:
                self.executor.cancel(run_id)
                expect[run_id] = RunStatus.CANCELED
        self._step(expect)

    @precondition(lambda self: self.pending_execute_errors < 2)
    @rule()
    def fail_next_execute(self) -> None:
        """Make the next ``execute`` call raise (the run then fails)."""
        self.executor.fail_next_execute(OSError("no worker"))
        self.pending_execute_errors += 1
        self._step({})

    @rule(delta=st.integers(0, 4))
    def tick(self, delta: int) -> None:
        """Move time forward a little."""
        self.now += delta
        self.scheduler.tick(self.now)
        self._step({})

    @rule(delta=st.integers(5, 60))
    def jump(self, delta: int) -> None:
        """Move time forward a lot: a backlog of due slots, caught up one run per slot."""
        self.tick(delta)

    @rule(delta=st.integers(1, 5))
    def tick_backwards(self, delta: int) -> None:
        """A tick into the past changes nothing."""
        self.scheduler.tick(self.now - delta)
        self._step({}, quiet=True)
        assert self.scheduler.now() == self.now

    @rule(data=st.data(), delta=st.integers(-20, 20))
    def force_run(self, data: st.DataObject, delta: int) -> None:
        """Queue a manual run through the scheduler (for a past or future slot)."""
        task_id = data.draw(st.sampled_from((*self.task_ids, "ghost")), label="task_id")
        slot = self.now + delta
        model = self.tasks.get(task_id)
        if model is None:
            self._refused(TaskNotFound, lambda: self.scheduler.force_run(task_id, slot))
            return
        if any(s == slot for _, s in model.queue):
            self._refused(RunAlreadyQueued, lambda: self.scheduler.force_run(task_id, slot))
            return
        run = self.scheduler.force_run(task_id, slot)
        self._queued(model, run, slot)
        self._step({})

    @rule(data=st.data(), index=st.integers(0, 10))
    def retry_run(self, data: st.DataObject, index: int) -> None:
        """Retry a finished run through the scheduler; refused for runs in flight or unknown."""
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        model = self.tasks.get(task_id)
        if model is None:
            self._refused(TaskNotFound, lambda: self.scheduler.retry_run(task_id, 1))
            return
        mine = [r for r in self.runs.values() if r.task_id == task_id]
        finished = [r for r in mine if r.state == _DONE]
        if not finished:
            unfinished = [r for r in mine if r.state == _EXECUTING]
            if unfinished:
                run_id = unfinished[index % len(unfinished)].id
                self._refused(RunNotFinished, lambda: self.scheduler.retry_run(task_id, run_id))
            else:
                self._refused(RunNotFound, lambda: self.scheduler.retry_run(task_id, 10**9))
            return
        old = finished[index % len(finished)]
        if any(s == old.slot for _, s in model.queue):
            self._refused(RunAlreadyQueued, lambda: self.scheduler.retry_run(task_id, old.id))
            return
        run = self.scheduler.retry_run(task_id, old.id)
        assert run.scheduled_for == old.slot, (run, old)
        assert run.id != old.id, (run, old)
        self._queued(model, run, old.slot)
        self._step({})

    @rule(
        crashed=st.lists(st.sampled_from(_IDS), max_size=4),
        mark_started=st.booleans(),
    )
    def restart(self, crashed: list[str], mark_started: bool) -> None:
        """Stop; leave runs in progress as a crashed process would; start a new Scheduler."""
        self._stop()
        for task_id in crashed:
            if task_id not in self.tasks:
                continue
            try:
                created = self.store.create_next_run(task_id, self.now)
            except RunNotDueYet as exc:
                self._not_due(task_id, exc.due_at)
                continue
            run = created.created
            self._created(task_id, self.now, run, claimed=False)
            if mark_started:
                self.store.update_run_state(task_id, run.run_id, self.clock(), RunStatus.STARTED)
        self._stopped = False
        self._threads_before = set(threading.enumerate())
        self.scheduler = self._new_scheduler()
        self._step({})

    # -- helpers --------------------------------------------------------------------

    def _task(self, task_id: str, every: int, offset: int, concurrency: int, active: bool) -> Task:
        options = TaskOptions(
            name=f"task {task_id}", every=every, offset=offset, concurrency=concurrency
        )
        status = TaskStatus.ACTIVE if active else TaskStatus.INACTIVE
        return Task(id=task_id, options=options, status=status, script=f"job {task_id}")

    def _queued(self, model: _TaskModel, run: Run, slot: int) -> None:
        assert run.scheduled_for == slot, (run, slot)
        assert run.requested_at != 0, f"manual run {run} has requested_at 0"
        assert run.id not in self.runs, f"run id {run.id} handed out twice"
        model.queue.append((run.id, slot))

    def _executing(self, task_id: str | None = None) -> list[_RunModel]:
        return sorted(
            (
                r
                for r in self.runs.values()
                if r.state == _EXECUTING and (task_id is None or r.task_id == task_id)
            ),
            key=lambda r: r.id,
        )

    def _base(self, task_id: str) -> int:
        """max(latest completed, slots of scheduled runs in progress): the store's base."""
        model = self.tasks[task_id]
        base = model.latest_completed
        for run in self.runs.values():
            if run.task_id == task_id and not run.manual and run.state != _DONE:
                base = max(base, run.slot)
        return base

    def _next_slot(self, task_id: str) -> int:
        options = self.tasks[task_id].task.options
        base = self._base(task_id)
        if options.every is not None:
            return (base // options.every + 1) * options.every  # plain arithmetic
        return next_slot(options, base)

    def _refused(self, error: type[BaseException], call: Callable[[], object]) -> None:
        """``call`` raises ``error``, and nothing else happens."""
        try:
            call()
        except error:
            pass
        else:
            raise AssertionError(f"expected {error.__name__}, nothing was raised")
        self._step({}, quiet=True)

    def _stop(self) -> None:
        """Stop the scheduler: every run in flight ends canceled; nothing is left behind."""
        expect = {r.id: RunStatus.CANCELED for r in self._executing()}
        for claim in self.claims.values():
            for run_id in claim.resume:
                self.runs[run_id].state = _LEFT
        self.claims.clear()
        self.scheduler.stop()
        self._stopped = True
        self._step(expect)
        assert self.executor.running() == [], (
            f"runs still in flight at the executor after stop: {self.executor.running()}"
        )
        left = set(threading.enumerate()) - self._threads_before
        assert not left, f"threads left behind after stop: {sorted(t.name for t in left)}"

    # -- the check after every step -------------------------------------------------

    def _step(self, expect: dict[int, RunStatus], *, quiet: bool = False) -> None:
        """Settle, replay what happened against the model, and check every invariant."""
        try:
            self._check_step(expect, quiet=quiet)
        except BaseException:
            self._broken = True
            raise

    def _check_step(self, expect: dict[int, RunStatus], *, quiet: bool) -> None:
        assert self.scheduler.settle(self.settle_timeout), "the actors did not settle"
        executing_before = {
            task_id: len(self._executing(task_id)) for task_id in (*self.task_ids, "ghost")
        }
        for claim in self.claims.values():
            claim.created = False
        events = self.recorder.take_events()
        executed = self.executor.executed[self._executed_seen :]
        self._executed_seen += len(executed)
        if quiet:
            changed = [e for e in events if e.kind != NOT_DUE]
            assert not changed, f"a refused or empty operation changed something: {changed}"
            assert not executed, f"a refused or empty operation executed runs: {executed}"

        finishing: set[int] = set()
        for event in events:
            if event.kind == CREATE:
                assert event.run is not None
                self._created(event.task_id, event.now, event.run, claimed=True)
            elif event.kind == NOT_DUE:
                self._not_due(event.task_id, event.due_at)
            elif event.kind == STATE:
                run = self._known(event.run_id, event.task_id)
                assert event.status is not None
                run.statuses.append(event.status)
            else:
                run = self._known(event.run_id, event.task_id)
                run.finishes += 1
                assert run.finishes == 1, f"finish_run called twice for run {run.id}"
                finishing.add(run.id)
                if not run.manual:
                    model = self.tasks[run.task_id]
                    model.latest_completed = max(model.latest_completed, run.slot)

        started: set[int] = set()
        execute_failed: set[int] = set()
        for queued in executed:
            run = self._known(queued.run_id, queued.task_id)
            owner = self.claims.get(queued.task_id)
            assert owner is not None, f"run {run.id} of unclaimed task {run.task_id} executed"
            claim = owner
            assert queued.script == claim.task.script, (queued, claim.task)
            assert queued.scheduled_for == run.slot, (queued, run)
            if claim.resume and run.id in claim.resume:
                assert run.id == claim.resume[0], (
                    f"runs left in progress are resumed in slot order: expected "
                    f"{claim.resume[0]}, got {run.id}"
                )
                claim.resume.popleft()
            else:
                assert run.state == _CREATED, (
                    f"run {run.id} executed in state {run.state!r}: runs are executed once, "
                    "after they are created"
                )
            run.executions += 1
            run.state = _EXECUTING
            started.add(run.id)
            if self.pending_execute_errors:
                self.pending_execute_errors -= 1
                expect[run.id] = RunStatus.FAILED
                execute_failed.add(run.id)

        for run_id in finishing:
            run = self.runs[run_id]
            assert run_id in expect, (
                f"run {run_id} ({run.task_id}, slot {run.slot}) finished, but nothing ended it"
            )
        for run_id, status in expect.items():
            self._check_finished(self.runs[run_id], status, run_id in finishing)
        for run_id in execute_failed:
            run = self.runs[run_id]
            log = [entry.message for entry in self.store.find_run(run.task_id, run_id).log]
            assert any(line.startswith("Run failed to begin execution") for line in log), log
        self._check_runs()
        self._check_tasks(executing_before, started)
        self._check_metrics()

    def _known(self, run_id: int, task_id: str) -> _RunModel:
        run = self.runs.get(run_id)
        assert run is not None, f"the scheduler used run {run_id} ({task_id}) it never created"
        assert run.task_id == task_id, (run, task_id)
        return run

    def _created(self, task_id: str, now: int, queued: QueuedRun, *, claimed: bool) -> None:
        """A create_next_run result: the queue head, else the next due slot."""
        model = self.tasks[task_id]
        if claimed:
            claim = self.claims.get(task_id)
            assert claim is not None, f"a run was created for unclaimed task {task_id}"
            assert claim.task.status is TaskStatus.ACTIVE, (
                f"a run was created for inactive task {task_id}"
            )
            claim.created = True
            assert now <= self.now, f"create_next_run({task_id!r}, {now}) is ahead of {self.now}"
        assert queued.run_id not in self.runs, f"run id {queued.run_id} handed out twice"
        assert queued.task_id == task_id, queued
        assert queued.script == model.task.script, (queued, model.task)
        if model.queue:
            run_id, slot = model.queue.popleft()
            assert queued.run_id == run_id, (
                f"manual runs come first, in order: expected manual run {run_id} (slot "
                f"{slot}), got run {queued.run_id} for {queued.scheduled_for} "
                f"(requested_at={queued.requested_at})"
            )
            assert queued.requested_at != 0, f"manual run {queued} has requested_at 0"
            assert queued.scheduled_for == slot, (queued, slot)
            manual = True
        else:
            expected = self._next_slot(task_id)
            due = due_time(model.task.options, expected)
            assert queued.requested_at == 0, f"unexpected manual run {queued}"
            assert queued.scheduled_for == expected, (
                f"{task_id}: expected the run for slot {expected} (the first slot after "
                f"{self._base(task_id)}), got {queued.scheduled_for}"
            )
            assert due <= now, f"{task_id}: run for {expected} created at {now}, due {due}"
            assert expected not in model.scheduled_slots, (
                f"{task_id}: a second scheduled run for slot {expected}"
            )
            model.scheduled_slots.add(expected)
            assert queued.due_at == due, (queued, due)
            manual = False
        self.runs[queued.run_id] = _RunModel(
            queued.run_id,
            task_id,
            queued.scheduled_for,
            manual,
            _CREATED if claimed else _LEFT,
        )

    def _not_due(self, task_id: str, due_at: int) -> None:
        model = self.tasks[task_id]
        assert not model.queue, f"{task_id}: RunNotDueYet with manual runs queued"
        expected = due_time(model.task.options, self._next_slot(task_id))
        assert due_at == expected, f"{task_id}: RunNotDueYet says due {due_at}, expected {expected}"

    def _check_finished(self, run: _RunModel, status: RunStatus, finished: bool) -> None:
        assert finished, (
            f"run {run.id} ({run.task_id}, slot {run.slot}) should have ended {status.value} "
            "in this step, finish_run was not called"
        )
        assert run.statuses == [RunStatus.STARTED, status], (
            f"run {run.id}: states {[s.value for s in run.statuses]}, expected started -> "
            f"{status.value}"
        )
        stored = self.store.find_run(run.task_id, run.id)
        assert stored.status is status, (stored, status)
        run.state = _DONE
        run.expected = status
        if status is RunStatus.SUCCESS:
            self.total_success += 1
        else:
            self.total_failure += 1
        if status is RunStatus.FAILED:
            self.errors += 1
        claim = self.claims.get(run.task_id)
        if claim is not None:
            if status is RunStatus.SUCCESS:
                claim.success += 1
            else:
                claim.failure += 1

    def _check_runs(self) -> None:
        running = {r.run_id for r in self.executor.running()}
        for run in self.runs.values():
            if run.state == _EXECUTING:
                assert run.id in running, f"run {run.id} should be in flight at the executor"
                assert run.statuses == [RunStatus.STARTED], (run.id, run.statuses)
                assert run.finishes == 0
            elif run.state == _DONE:
                assert run.finishes == 1, run
                assert run.id not in running, run
                assert len(run.statuses) == 2, run
                assert run.statuses[-1] in _TERMINAL, run
            else:
                assert run.id not in running, run
                assert run.finishes == 0, run
                assert run.state == _LEFT, (
                    f"run {run.id} ({run.task_id}, slot {run.slot}) was created and never executed"
                )
        assert running <= set(self.runs), f"unknown runs in flight: {running - set(self.runs)}"

    def _check_tasks(self, executing_before: dict[str, int], started: set[int]) -> None:
        max_seen = self.executor.max_in_flight
        for task_id, model in self.tasks.items():
            executing = self._executing(task_id)
            claim = self.claims.get(task_id)
            assert max_seen.get(task_id, 0) <= model.max_concurrency, (
                f"{task_id}: the executor saw {max_seen[task_id]} runs at once, concurrency "
                f"was at most {model.max_concurrency}"
            )
            if claim is None:
                assert not executing, f"unclaimed {task_id} has runs in flight: {executing}"
                continue
            concurrency = claim.task.options.concurrency
            count = len(executing)
            assert count <= max(concurrency, executing_before[task_id]), (
                f"{task_id}: {count} runs in flight, concurrency {concurrency}"
            )
            if any(r.id in started for r in executing):
                assert count <= concurrency, (
                    f"{task_id}: a run started with {count} in flight, concurrency {concurrency}"
                )
            assert not (claim.created and claim.resume), (
                f"{task_id}: a run was created while runs left in progress wait to be "
                f"resumed: {list(claim.resume)}"
            )
            if count < concurrency:
                assert not claim.resume, (
                    f"{task_id}: a free slot, and runs left in progress not resumed: "
                    f"{list(claim.resume)}"
                )
                if claim.task.status is TaskStatus.ACTIVE:
                    assert not model.queue, (
                        f"{task_id}: a free slot, and manual runs waiting: {list(model.queue)}"
                    )
                    slot = self._next_slot(task_id)
                    due = due_time(model.task.options, slot)
                    assert due > self.now, (
                        f"{task_id}: a free slot ({count}/{concurrency} busy) at {self.now}, "
                        f"and the run for slot {slot} is due since {due}"
                    )

    def _sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value

    def _check_metrics(self) -> None:
        sample = self.registry.get_sample_value
        assert self._sample("task_scheduler_total_runs_active") == len(self._executing())
        assert self._sample("task_scheduler_total_runs_complete_total", {"status": "success"}) == (
            self.total_success
        )
        assert self._sample("task_scheduler_total_runs_complete_total", {"status": "failure"}) == (
            self.total_failure
        )
        assert self._sample("task_scheduler_claims_active") == len(self.claims)
        assert self._sample("task_scheduler_claims_complete_total", {"status": "success"}) == (
            self.claims_ok
        )
        assert self._sample("task_scheduler_claims_complete_total", {"status": "failure"}) == (
            self.claims_failed
        )
        assert (
            self._sample("task_scheduler_errors_counter_total", {"error_type": "internal error"})
            == self.errors
        )
        for task_id in self.task_ids:
            claim = self.claims.get(task_id)
            active = sample("task_scheduler_runs_active", {"task_id": task_id})
            success = sample(
                "task_scheduler_runs_complete_total", {"task_id": task_id, "status": "success"}
            )
            failure = sample(
                "task_scheduler_runs_complete_total", {"task_id": task_id, "status": "failure"}
            )
            if claim is None:
                assert (active, success, failure) == (None, None, None), (
                    f"{task_id} is not claimed, its series remain: {active} {success} {failure}"
                )
                continue
            assert (active or 0) == len(self._executing(task_id)), (task_id, active)
            assert (success or 0) == claim.success, (task_id, success, claim.success)
            assert (failure or 0) == claim.failure, (task_id, failure, claim.failure)


def scheduler_machine(
    store_factory: Callable[[Callable[[], float]], TaskStore],
    close: Callable[[TaskStore], None] | None = None,
    *,
    scheduler_class: type[Any],
) -> type[SchedulerMachine]:
    """A :class:`SchedulerMachine` subclass driving ``scheduler_class`` on stores from
    ``store_factory(clock)``."""
    chosen = scheduler_class

    class _Machine(SchedulerMachine):
        scheduler_class = chosen

        def make_store(self, clock: Callable[[], float]) -> TaskStore:
            return store_factory(clock)

        def close_store(self, store: TaskStore) -> None:
            if close is not None:
                close(store)

    _Machine.__name__ = _Machine.__qualname__ = f"SchedulerMachine[{store_factory!r}]"
    return _Machine


def run_scheduler_machine(
    store_factory: Callable[[Callable[[], float]], TaskStore],
    *,
    scheduler_class: type[Any],
    settings: Settings | None = None,
    close: Callable[[TaskStore], None] | None = None,
) -> None:
    """Run the machine against ``store_factory``'s stores; raises on the first failure."""
    machine = scheduler_machine(store_factory, close, scheduler_class=scheduler_class)
    run_state_machine_as_test(machine, settings=settings)
