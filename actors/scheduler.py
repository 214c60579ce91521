"""The public facade: :class:`Scheduler`."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any
from weakref import WeakKeyDictionary

import pykka
import structlog
from prometheus_client import REGISTRY, CollectorRegistry
from pykka import ActorDeadError, ActorRef

from actors._shared import DEFAULT_MAX_EXECUTIONS, SchedulerStats, Services, log_safely
from actors.metrics import SchedulerMetrics
from actors.runtime import Runtime
from actors.scheduler_actor import SchedulerActor
from actors.store_actor import InlinePort, StoreActor, StorePort
from actors.task_actor import TaskActor
from actors.ticker import Ticker
from protocols.contracts import Executor, TaskStore
from protocols.errors import SchedulerError, SchedulerNotStarted, SchedulerTimeout, TaskNotFound
from protocols.messages import (
    CancelRun,
    Claim,
    ClaimMany,
    Drain,
    Flush,
    Forget,
    InFlight,
    ListTasks,
    Lookup,
    Now,
    QueueChanged,
    Release,
    ReleaseAll,
    Stats,
    Tick,
    Update,
)
from protocols.model import ClaimState, Run, Task

__all__ = ["Scheduler"]

_metrics_by_registry: WeakKeyDictionary[CollectorRegistry, SchedulerMetrics] = WeakKeyDictionary()


def _metrics_for(registry: CollectorRegistry | None) -> SchedulerMetrics:
    """One metric set per registry: schedulers sharing a registry share the series."""
    registry = REGISTRY if registry is None else registry
    metrics = _metrics_by_registry.get(registry)
    if metrics is None:
        metrics = _metrics_by_registry[registry] = SchedulerMetrics(registry)
    return metrics


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    STOPPED = "stopped"


class Scheduler:
    """Schedules claimed tasks on a store and runs them on an executor.

    Every call but :meth:`tick` blocks until the SchedulerActor has handled it and
    raises its error. Time moves only through :meth:`tick` unless ``tick_interval``
    starts the wall-clock ticker. A Scheduler runs once: create a new one (on the same
    store, it resumes what was in progress) after :meth:`stop`.

    Extra keyword arguments beyond API.md: ``clock`` (the wall clock used for run
    timestamps, metrics and the ticker; default :func:`time.time`), ``workers``
    (threads of the actor runtime; default 1: the GIL makes more useless for
    CPU-bound handlers, but a store that blocks on I/O benefits from 2-4),
    ``call_timeout`` (seconds every call waits for the actors before it raises
    :class:`~protocols.errors.SchedulerTimeout`; default 30: a wedged actor never
    hangs the caller forever) and ``metrics`` (the
    :class:`~actors.metrics.SchedulerMetrics` to update instead of the registry's
    own set: a seam for tests and custom metrics) and ``max_executions`` (default 3:
    a run found started on claim, its outcome unknown, after that many executions, is
    completed failed instead of being executed again; a job that kills its process
    each time must not loop forever).
    """

    #: The actor the facade talks to (a seam for the kit's broken variants).
    scheduler_actor_class: type[SchedulerActor] = SchedulerActor

    def __init__(
        self,
        store: TaskStore,
        executor: Executor,
        *,
        now: int | None = None,
        registry: CollectorRegistry | None = None,
        tick_interval: float | None = None,
        logger: Any | None = None,
        clock: Callable[[], float] = time.time,
        workers: int = 1,
        call_timeout: float = 30.0,
        metrics: SchedulerMetrics | None = None,
        max_executions: int = DEFAULT_MAX_EXECUTIONS,
    ) -> None:
        if tick_interval is not None and not tick_interval > 0:
            raise ValueError(
                f"tick_interval must be a positive number of seconds or None, got {tick_interval!r}"
            )
        if max_executions < 1:
            raise ValueError(f"max_executions must be at least 1, got {max_executions!r}")
        self._max_executions = max_executions
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        if not call_timeout > 0:
            raise ValueError(
                f"call_timeout must be a positive number of seconds, got {call_timeout!r}"
            )
        self._call_timeout = float(call_timeout)
        self._store = store
        self._executor = executor
        self._now = int(clock()) if now is None else int(now)
        self._metrics = _metrics_for(registry) if metrics is None else metrics
        self._tick_interval = tick_interval
        self._log = (logger if logger is not None else structlog.get_logger("tickactors")).bind(
            svc="tickactors/scheduler"
        )
        self._clock = clock
        self._workers = workers
        self._state = _State.NEW
        self._runtime: Runtime | None = None
        self._port: StorePort | None = None
        self._actor: ActorRef[SchedulerActor] | None = None
        self._ticker: Ticker | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the actors (and the ticker, if ``tick_interval`` was given)."""
        if self._state is _State.STARTED:
            return
        if self._state is _State.STOPPED:
            raise SchedulerError(
                "scheduler already stopped: a Scheduler runs once; create a new one "
                "(on the same store it resumes the runs in progress)"
            )
        runtime = Runtime(self._workers, name="tickactors")
        # A store that waits on I/O is reached through its store actor (group commit);
        # one that never blocks is called inline.
        port: StorePort = (
            StoreActor(self._store, runtime) if self._store.does_io else InlinePort(self._store)
        )
        self._port = port
        services = Services(
            port=port,
            executor=self._executor,
            metrics=self._metrics,
            runtime=runtime,
            log=self._log,
            clock=self._clock,
            max_executions=self._max_executions,
        )
        self._runtime = runtime
        self._actor = runtime.spawn(self.scheduler_actor_class, services=services, now=self._now)
        self._state = _State.STARTED
        if self._tick_interval is not None:
            self._ticker = Ticker(self.tick, self._tick_interval, self._clock)
            self._ticker.start()

    def stop(self, *, grace: float = 0.0) -> None:
        """Release every task, cancel its runs, wait for them and for ``executor.wait()``.

        With ``grace`` > 0, no new run starts (nor does a run waiting to be resumed) and
        runs executing get up to ``grace`` seconds to finish before they are cancelled;
        stop returns as soon as none executes. Then every run in flight is cancelled,
        ``executor.wait()`` is awaited (it is the executor's to bound), and so is the
        recording of every cancelled run, for at most ``call_timeout`` seconds (a
        warning is logged if that passes). Stopping a scheduler that was never
        started, or twice, does nothing.
        """
        if self._state is not _State.STARTED:
            return
        actor, runtime = self._actor, self._runtime
        assert actor is not None
        assert runtime is not None
        if self._ticker is not None:
            self._ticker.stop()
        self._state = _State.STOPPED
        try:
            self._now = self._call(actor, Now(), "stop")
            if grace > 0:
                self._drain(actor, grace)
            self._call(actor, ReleaseAll(), "stop")
        except SchedulerTimeout as exc:
            self._logs("error", "scheduler_stop_timed_out", error=str(exc))
        try:
            self._executor.wait()
        except Exception as exc:
            self._logs("error", "executor_wait_failed", error=str(exc), exc_info=exc)
        self._await_released(actor, runtime)
        timeout = self._call_timeout
        runtime.settle(timeout)
        try:
            actor.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            self._logs("error", "scheduler_stop_timed_out", error="the SchedulerActor did not stop")
        runtime.settle(timeout)
        runtime.shutdown(timeout)
        if self._port is not None:
            self._port.close(timeout)  # what is queued is applied first
        self._logs("debug", "scheduler_stopped", now=self._now)

    def _drain(self, actor: ActorRef[SchedulerActor], grace: float) -> None:
        self._call(actor, Drain(), "stop")
        self._logs("info", "scheduler_draining", grace=grace)
        deadline = time.monotonic() + grace
        pause = threading.Event()
        refs: list[ActorRef[TaskActor]] = self._call(actor, ListTasks(), "stop")
        while time.monotonic() < deadline:
            busy = 0
            for ref in refs:
                try:
                    busy += self._call(ref, InFlight(), "stop")
                except ActorDeadError:
                    pass
            if not busy:
                return
            pause.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def _await_released(self, actor: ActorRef[SchedulerActor], runtime: Runtime) -> None:
        """Wait until every released task's cancelled runs are recorded (bounded)."""
        deadline = time.monotonic() + self._call_timeout
        pause = threading.Event()
        while True:
            runtime.settle(max(0.0, deadline - time.monotonic()))
            try:
                stats: SchedulerStats = self._call(actor, Stats(), "stop")
            except (SchedulerTimeout, ActorDeadError):
                return
            if not stats.releasing:
                return
            if time.monotonic() >= deadline:
                self._logs(
                    "warning",
                    "scheduler_stopped_with_runs_unrecorded",
                    tasks=stats.releasing,
                    waited=self._call_timeout,
                )
                return
            # A done-callback may still be on its way (executor.wait() returned first).
            pause.wait(0.01)

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- time -----------------------------------------------------------------------

    def now(self) -> int:
        """The time of the last tick (the ``now`` given at construction before any)."""
        if self._state is _State.STARTED and self._actor is not None:
            try:
                now: int = self._call(self._actor, Now(), "now")
            except ActorDeadError:
                return self._now
            return now
        return self._now

    def tick(self, now: int) -> None:
        """Move time to ``now`` (asynchronous; ignored before start and after stop)."""
        actor = self._actor
        if self._state is not _State.STARTED or actor is None:
            return
        try:
            actor.tell(Tick(int(now)))
        except ActorDeadError:
            pass

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until every actor is idle with nothing in transit; False on timeout.

        It waits for the actor system, not for runs executing in an executor: a run
        whose promise completes later sends a message then.
        """
        runtime = self._runtime
        if runtime is None:
            return True
        return runtime.settle(timeout)

    # -- tasks ----------------------------------------------------------------------

    def claim_task(self, task: Task) -> None:
        """Start scheduling ``task``; resumes its runs in progress from before a restart.

        The store is read in the caller's thread (``claim_state``), never by an actor.
        """
        if self._state is not _State.STARTED:
            raise SchedulerNotStarted()
        self._ask(Claim(task, self._claim_state(task.id)), "claim_task")

    def claim_tasks(self, tasks: Iterable[Task]) -> dict[str, Exception]:
        """Claim many tasks in one request to the SchedulerActor (faster than one by one).

        Each task is claimed as by :meth:`claim_task`; the ones refused are returned,
        by task id, with their error (an empty dict when every claim succeeded).
        """
        if self._state is not _State.STARTED:
            raise SchedulerNotStarted()
        claims = tuple((task, self._claim_state(task.id)) for task in tasks)
        failures: dict[str, Exception] = self._ask(ClaimMany(claims), "claim_tasks")
        return failures

    def _claim_state(self, task_id: str) -> ClaimState | Exception:
        """The store's claim state of ``task_id``, or the error reading it raised."""
        try:
            return self._store.claim_state(task_id)
        except Exception as exc:
            return exc

    def update_task(self, task: Task) -> None:
        """Re-read ``task``'s options, next due time and manual queue.

        A task the store no longer knows is released (and TaskNotFound raised).
        """
        if self._state is not _State.STARTED:
            raise SchedulerNotStarted()
        try:
            state = self._store.claim_state(task.id)
        except TaskNotFound:
            self._ask(Forget(task.id), "update_task")
            raise
        self._ask(Update(task, state.next_due, state.has_queue), "update_task")

    def release_task(self, task_id: str) -> None:
        """Stop scheduling ``task_id`` and cancel its runs in flight.

        On return every run whose cancel completed at once is recorded (canceled). A
        run whose cancel completes later (a remote job) is recorded when it does;
        until then it keeps its slot, and claiming the task again never resumes it
        (:meth:`stats` counts such tasks as ``releasing``).
        """
        task_ref: ActorRef[TaskActor] = self._ask(Release(task_id), "release_task")
        self._flush(task_ref, "release_task")

    def cancel_run(self, task_id: str, run_id: int) -> None:
        """Cancel run ``run_id`` of a claimed task (recorded on return if the cancel completed)."""
        task_ref: ActorRef[TaskActor] = self._ask(Lookup(task_id), "cancel_run")
        try:
            runner = self._call(task_ref, CancelRun(run_id), "cancel_run")
        except ActorDeadError:
            raise TaskNotFound(task_id, f"task not found: {task_id!r} was released") from None
        self._flush(runner, "cancel_run")

    def stats(self) -> SchedulerStats:
        """What the scheduler holds now: claimed, releasing and due tasks, index size."""
        stats: SchedulerStats = self._ask(Stats(), "stats")
        return stats

    def force_run(self, task_id: str, scheduled_for: int) -> Run:
        """Queue a manual run for ``scheduled_for`` (the store's), and tell the task."""
        run = self._store.force_run(task_id, scheduled_for)
        self._queue_changed(task_id)
        return run

    def retry_run(self, task_id: str, run_id: int) -> Run:
        """Queue a copy of a finished run (the store's), and tell the task."""
        run = self._store.retry_run(task_id, run_id)
        self._queue_changed(task_id)
        return run

    def notify_queued(self, task_id: str) -> bool:
        """Manual runs of ``task_id`` were queued in the store by someone else (another
        process, the command line): serve them as if :meth:`force_run` had queued
        them. Returns False if the task is not claimed here (nothing to do)."""
        actor = self._actor
        if self._state is not _State.STARTED or actor is None:
            raise SchedulerNotStarted()
        try:
            claimed: bool = self._call(actor, QueueChanged(task_id), "notify_queued")
        except ActorDeadError:
            return False
        return claimed

    # -- plumbing -------------------------------------------------------------------

    def _queue_changed(self, task_id: str) -> None:
        actor = self._actor
        if self._state is _State.STARTED and actor is not None:
            try:
                self._call(actor, QueueChanged(task_id), "force_run")
            except ActorDeadError:
                pass

    def _ask(self, message: object, call: str) -> Any:
        """Ask the SchedulerActor; ``call`` names the facade method (for errors)."""
        actor = self._actor
        if self._state is not _State.STARTED or actor is None:
            raise SchedulerNotStarted()
        try:
            return self._call(actor, message, call)
        except ActorDeadError:
            raise SchedulerNotStarted() from None

    def _call(self, ref: ActorRef[Any], message: object, call: str) -> Any:
        """``ref.ask(message)``, bounded by ``call_timeout`` (:class:`SchedulerTimeout`)."""
        try:
            return ref.ask(message, block=True, timeout=self._call_timeout)
        except pykka.Timeout:
            raise SchedulerTimeout(call, self._call_timeout) from None

    def _flush(self, ref: ActorRef[Any], call: str) -> None:
        """Wait until ``ref`` and the actors it forwarded work to have handled it."""
        try:
            forwarded: tuple[ActorRef[Any], ...] = self._call(ref, Flush(), call)
        except ActorDeadError:
            return
        for other in forwarded:
            try:
                self._call(other, Flush(), call)
            except ActorDeadError:
                pass  # it finished meanwhile
        # The completions those actors sent are in the store once its port has them.
        port = self._port
        if port is not None and not port.sync(self._call_timeout):
            raise SchedulerTimeout(call, self._call_timeout)

    def _logs(self, level: str, event: str, **fields: Any) -> None:
        log_safely(self._log, self._metrics, level, event, **fields)
