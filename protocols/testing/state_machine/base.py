"""The machine's set-up: what it drives (factories a subclass overrides) and what it draws.

:class:`MachineBase` builds the store, the wrapper chain around it, the executor,
the logger and the scheduler, and holds the :class:`~.model.Model`. The checks
(:mod:`.invariants`) and the rules (:mod:`.rules`) build on it, in that order.
"""

from __future__ import annotations

import datetime
import threading
import zoneinfo
from collections.abc import Callable
from typing import Any, ClassVar, Final

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from prometheus_client import CollectorRegistry

from protocols.contracts import TaskStore
from protocols.model import Run, Task, TaskStatus
from protocols.options import TaskOptions
from protocols.testing.hostile import FailingLogger, HostileExecutor
from protocols.testing.manual import ManualExecutor
from protocols.testing.state_machine.faults import FaultyStore
from protocols.testing.state_machine.model import Model, TaskModel
from protocols.testing.state_machine.recording import RecordingStore
from protocols.testing.store_contract import FakeClock

__all__ = ["CRONS", "EPOCHS", "ZONES", "MachineBase", "ScheduleSpec", "TaskSpec"]

#: The zones tasks are drawn in: no DST, fixed +5:30, DST by an hour on either side of
#: the Atlantic, and Lord Howe's half-hour DST.
ZONES: Final = (
    "UTC",
    "Asia/Kolkata",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
)
#: Cron expressions: wildcard jobs (follow the real clock across DST) first, then
#: fixed-time ones at the hours clocks change (run once, first occurrence / after a gap).
CRONS: Final = (
    "*/1 * * * *",
    "*/2 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "5-20/5 1-3 * * *",
    "30 2 * * *",
    "15 2 * * *",
    "0,30 1,2 * * *",
    "45 1 * * *",
    "0 3 * * *",
)
#: Where the clock starts, and the zone drawn most there: just before a DST change
#: of that zone (the 2024 ones), or far from any.
EPOCHS: Final = (
    (1_710_054_000, "America/New_York"),  # 2024-03-10T07:00Z: 02:00 EST -> 03:00 EDT
    (1_730_613_600, "America/New_York"),  # 2024-11-03T06:00Z: 02:00 EDT -> 01:00 EST
    (1_711_846_800, "Europe/Berlin"),  # 2024-03-31T01:00Z: 02:00 CET -> 03:00 CEST
    (1_729_990_800, "Europe/Berlin"),  # 2024-10-27T01:00Z: 03:00 CEST -> 02:00 CET
    (1_712_415_600, "Australia/Lord_Howe"),  # 2024-04-06T15:00Z: 02:00 -> 01:30
    (1_728_142_200, "Australia/Lord_Howe"),  # 2024-10-05T15:30Z: 02:00 -> 02:30
    (1_718_409_600, "Asia/Kolkata"),  # 2024-06-15T00:00Z: no change anywhere near
)


@attrs.frozen
class ScheduleSpec:
    """When a task runs: ``every`` seconds or a ``cron`` expression in ``timezone``."""

    every: int | None = None
    cron: str | None = None
    timezone: str = "UTC"


@attrs.frozen
class TaskSpec:
    """A task to add: its schedule and options, and how far back it completed."""

    schedule: ScheduleSpec
    offset: int
    concurrency: int
    active: bool
    backlog: int  # seconds before now of its latest completed slot


class MachineBase(RuleBasedStateMachine):
    """The set-up of :class:`~protocols.testing.state_machine.SchedulerMachine`.

    Override :meth:`make_store` (and :meth:`close_store`, and :meth:`reopen_store` for
    a store that outlives its process) to check another store,
    :meth:`make_executor`, :meth:`make_logger`, :meth:`make_metrics`,
    :meth:`store_below_recorder` and
    :meth:`store_for_scheduler` to make the scheduler's surroundings hostile.
    """

    #: "all" is also the aggregate summaries' label: a task may be named so.
    task_ids: ClassVar[tuple[str, ...]] = ("t1", "t2", "all")
    max_concurrency: ClassVar[int] = 3
    max_every: ClassVar[int] = 10
    settle_timeout: ClassVar[float] = 30.0
    #: The scheduler's time when it starts; the first step moves it to an epoch.
    start_time: ClassVar[int] = 1_000
    #: (instant, zone drawn most) the clock starts near; see :data:`EPOCHS`.
    epochs: ClassVar[tuple[tuple[int, str], ...]] = EPOCHS
    zones: ClassVar[tuple[str, ...]] = ZONES
    crons: ClassVar[tuple[str, ...]] = CRONS
    #: The fault-injecting store below the recorder (None: store faults are off).
    faulty: FaultyStore | None = None
    #: The store under test (what make_store made, or reopen_store after a restart).
    store: TaskStore
    #: The store the scheduler is given (the wrapper chain's outermost).
    scheduler_store: TaskStore
    #: Extra keyword arguments for the scheduler (e.g. ``{"call_timeout": 5.0}``).
    scheduler_kwargs: ClassVar[dict[str, Any]] = {}
    #: The scheduler's bound on executions of a run whose outcome stays unknown: a run
    #: left started that many times is abandoned on claim (actors.Scheduler's default).
    max_executions: ClassVar[int] = 3
    #: The scheduler class to drive, e.g. ``actors.Scheduler`` (set it in a subclass).
    scheduler_class: ClassVar[type[Any] | None] = None

    # -- what a user overrides ------------------------------------------------------

    def make_store(self, clock: Callable[[], float]) -> TaskStore:
        """A new, empty store reading the time from ``clock`` (default: a MemoryStore)."""
        from protocols.stores.memory import MemoryStore

        return MemoryStore(clock=clock)

    def close_store(self, store: TaskStore) -> None:
        """Release what :meth:`make_store` acquired (nothing by default)."""

    def reopen_store(self, store: TaskStore, clock: Callable[[], float]) -> TaskStore:
        """Close ``store`` and open it again on the same file or database, as a process
        that restarts would (the machine does so at every restart, crashes included).

        The default returns ``store`` itself: a memory store survives no restart, so
        the machine's restarts keep the same one (as if only the scheduler restarted).
        """
        return store

    def _reopen(self) -> None:
        """Swap the store for :meth:`reopen_store`'s, wherever the wrapper chain held it."""
        old = self.store
        new = self.reopen_store(old, self.clock)
        if new is old:
            return
        self.store = new
        wrapper: Any = self.scheduler_store
        while wrapper is not old:
            inner = getattr(wrapper, "inner", None)
            if inner is old:
                wrapper.inner = new
                break
            if inner is None:
                raise TypeError(
                    f"the store chain {self.scheduler_store!r} does not lead to the store: "
                    "wrappers must keep the store they forward to as `inner`"
                )
            wrapper = inner
        else:  # the scheduler was given the store itself
            self.scheduler_store = new

    def make_executor(self) -> ManualExecutor:
        """The executor the scheduler runs on: a
        :class:`~protocols.testing.hostile.HostileExecutor` (cancel prompt, slow or raising)."""
        return HostileExecutor()

    def make_logger(self) -> Any:
        """The structlog-shaped logger the scheduler logs to: a
        :class:`~protocols.testing.hostile.FailingLogger`, quiet until a rule breaks it."""
        return FailingLogger(enabled=False)

    def make_metrics(self, registry: CollectorRegistry) -> Any:
        """The metrics object the scheduler updates, passed as ``metrics=`` (made once
        and kept across restarts), or None (the default) for the scheduler's own on
        ``registry``. Return a :class:`~protocols.testing.hostile.FailingMetrics` around
        the scheduler's metrics on ``registry`` to let the rules make updates raise."""
        return None

    def store_below_recorder(self, store: TaskStore) -> TaskStore:
        """What the recorder forwards to: a :class:`~.faults.FaultyStore` around ``store``.

        The rules arm it to fail the scheduler's calls; the checks read its log. A
        subclass returning ``store`` itself turns store faults off.
        """
        self.faulty = FaultyStore(store)
        return self.faulty

    def cancel_mode(self) -> str:
        """What a cancel does now: "prompt", "slow" or "raise" (the executor's mode)."""
        mode = getattr(self.executor, "cancel_mode", None)
        return "prompt" if mode is None else str(mode.value)

    def log_failures(self) -> int:
        """How many log calls raised (the logger's count)."""
        return int(getattr(self.logger, "failures", 0))

    def metrics_failures(self) -> int:
        """How many metric updates raised (the FailingMetrics' count)."""
        return int(getattr(self.metrics, "failures", 0))

    def store_for_scheduler(self, recorder: RecordingStore) -> TaskStore:
        """The store the scheduler is given (default: the recorder).

        Wrap ``recorder`` here to make calls fail before the recorder sees them.
        The machine's own calls (adding tasks, reading runs) go to the real store.
        """
        return recorder

    # -- set-up ---------------------------------------------------------------------

    def __init__(self) -> None:
        super().__init__()
        self._threads_before = set(threading.enumerate())
        self.now = self.start_time
        self.epoch_zone = "UTC"
        self.epoch_hours: tuple[int, ...] = (0,)
        self.clock = FakeClock(1_000_000.0)
        self.store = self.make_store(self.clock)
        self.faulty = None
        self.recorder = RecordingStore(self.store_below_recorder(self.store))
        self.scheduler_store = self.store_for_scheduler(self.recorder)
        self.executor = self.make_executor()
        self.logger = self.make_logger()
        self.registry = CollectorRegistry()
        self.metrics = self.make_metrics(self.registry)
        self.model = Model()
        self.pending_execute_errors = 0
        self._executed_seen = 0
        self._stopped = False
        self._broken = False
        self._ticking = False  # the step is a tick: tasks whose create failed are retried
        self._stopper: threading.Thread | None = None
        self.scheduler = self._new_scheduler()

    def _new_scheduler(self) -> Any:
        scheduler_class = type(self).scheduler_class
        if scheduler_class is None:
            raise TypeError(
                f"{type(self).__name__}.scheduler_class is not set: name the scheduler to "
                "drive, e.g. `scheduler_class = actors.Scheduler` (protocols never imports "
                "actors)"
            )
        scheduler = scheduler_class(
            self.scheduler_store,
            self.executor,
            now=self.now,
            registry=self.registry,
            logger=self.logger,
            clock=self.clock,
            **({} if self.metrics is None else {"metrics": self.metrics}),
            **self.scheduler_kwargs,
        )
        scheduler.start()
        return scheduler

    # -- what the rules draw --------------------------------------------------------

    def set_epoch(self, instant: int, zone: str) -> None:
        """Remember the epoch's zone, and its wall-clock hours around ``instant``.

        Before and after the instant, and the hour after the one before (the one
        skipped when clocks go forward): fixed-time jobs at those hours meet the
        DST change.
        """
        tz = zoneinfo.ZoneInfo(zone)
        before = datetime.datetime.fromtimestamp(instant - 60, tz).hour
        after = datetime.datetime.fromtimestamp(instant, tz).hour
        self.epoch_zone = zone
        self.epoch_hours = tuple(sorted({before, (before + 1) % 24, after}))

    def schedules(self) -> st.SearchStrategy[ScheduleSpec]:
        """``every`` (1 to max_every s) or cron schedules, in a zone (mostly the epoch's).

        Cron expressions are :attr:`crons`, or fixed-time jobs at the epoch's hours.
        """
        zones = st.sampled_from((*[self.epoch_zone] * 4, *self.zones))
        every = st.builds(
            lambda e, z: ScheduleSpec(every=e, timezone=z),
            st.integers(1, self.max_every),
            zones,
        )
        at_epoch = st.builds(
            "{} {} * * *".format,
            st.sampled_from([0, 15, 30, 45]),
            st.sampled_from(self.epoch_hours),
        )
        cron = st.builds(
            lambda c, z: ScheduleSpec(cron=c, timezone=z),
            st.one_of(st.sampled_from(self.crons), at_epoch),
            zones,
        )
        return st.one_of(every, cron)

    def offsets(self) -> st.SearchStrategy[int]:
        """A few seconds either way, sometimes more than a minute."""
        return st.one_of(st.integers(-3, 3), st.sampled_from([-90, 45]))

    def task_specs(self) -> st.SearchStrategy[TaskSpec]:
        """A task to add: 3 in 4 active, a backlog of up to 25 s (25 min for cron)."""
        return st.builds(
            lambda schedule, offset, concurrency, active, backlog: TaskSpec(
                schedule,
                offset,
                concurrency,
                active,
                backlog * (1 if schedule.every is not None else 60),
            ),
            self.schedules(),
            self.offsets(),
            st.integers(1, self.max_concurrency),
            st.sampled_from([True, True, True, False]),
            st.integers(0, 25),
        )

    # -- helpers --------------------------------------------------------------------

    def _task(
        self,
        task_id: str,
        schedule: ScheduleSpec,
        offset: int,
        concurrency: int,
        active: bool,
    ) -> Task:
        options = TaskOptions(
            name=f"task {task_id}",
            every=schedule.every,
            cron=schedule.cron,
            timezone=schedule.timezone,
            offset=offset,
            concurrency=concurrency,
        )
        status = TaskStatus.ACTIVE if active else TaskStatus.INACTIVE
        return Task(id=task_id, options=options, status=status, script=f"job {task_id}")

    def _ghost(self, task_id: str) -> Task:
        """A task the store does not hold."""
        return self._task(task_id, ScheduleSpec(every=1), 0, 1, True)

    def _add(self, task_id: str, spec: TaskSpec) -> None:
        """Add a new task to the store and the model."""
        task = self._task(task_id, spec.schedule, spec.offset, spec.concurrency, spec.active)
        latest = self.now - spec.backlog
        self.store.add_task(task, latest_completed=latest)
        ever = max(spec.concurrency, self.model.concurrency_ever.get(task_id, 0))
        self.model.tasks[task_id] = TaskModel(task, latest, max_concurrency=ever)

    def _queued(self, model: TaskModel, run: Run, slot: int) -> None:
        assert run.scheduled_for == slot, (run, slot)
        assert run.requested_at != 0, f"manual run {run} has requested_at 0"
        assert run.id not in self.model.runs, f"run id {run.id} handed out twice"
        model.queue.append((run.id, slot))
