"""The defects of issue 7, re-introduced one at a time, as Scheduler variants.

Each class below puts one defect back through the seams ``Scheduler.scheduler_actor_class``,
``SchedulerActor.task_actor_class``, ``TaskActor.runner_class`` and ``Scheduler(metrics=...)``.
``tests/test_kit_defects.py`` shows the state machine finds every one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

import attrs
import pykka
from prometheus_client import CollectorRegistry

from actors import Scheduler
from actors._base import Handler
from actors.metrics import STORE_ERROR, SchedulerMetrics, TaskMetrics
from actors.runner_actor import RunnerActor
from actors.scheduler_actor import SchedulerActor, _Entry
from actors.task_actor import TaskActor
from protocols.messages import Cancel, InFlight, QueueChanged, Tick
from protocols.model import ClaimState, QueuedRun, Run, RunStatus, Task

# -- 1: a released task's run still executing is resumed by the next claim --------------


class _ForgetsReleasingTasks(SchedulerActor):
    def _claim(self, task: Task, state: ClaimState | Exception) -> None:
        self._releasing.pop(task.id, None)  # spawn a fresh TaskActor: it resumes the run
        super()._claim(task, state)


class ResumesRunsStillExecuting(Scheduler):
    """Defect 1: re-claim resumes a cancelled run whose cancel has not completed."""

    scheduler_actor_class = _ForgetsReleasingTasks


# -- 2: a run whose outcome is recorded is executed again on claim --------------------


class _ResumesRecordedRuns(TaskActor):
    def _adopt(self, running: Iterable[Run]) -> None:
        super()._adopt([attrs.evolve(r, status=RunStatus.STARTED) for r in running])


class _SpawnsResumesRecorded(SchedulerActor):
    task_actor_class = _ResumesRecordedRuns


class ExecutesRecordedRunsAgain(Scheduler):
    """Defect 2: a run with a terminal status but no finish_run is executed again."""

    scheduler_actor_class = _SpawnsResumesRecorded


# -- 3: a logger that raises while a run finishes jams the slot ---------------------


class _LogsUnguarded(RunnerActor):
    def _finish(
        self, run: QueuedRun, status: RunStatus, lines: tuple[str, ...], error: BaseException | None
    ) -> None:
        self._log.info("run_finished", run_id=run.run_id)  # raises: never completed
        super()._finish(run, status, lines, error)


class _TaskLogsUnguarded(TaskActor):
    runner_class = _LogsUnguarded


class _SpawnsLogsUnguarded(SchedulerActor):
    task_actor_class = _TaskLogsUnguarded


class JamsOnFailingLogger(Scheduler):
    """Defect 3: the logger raising as a run ends leaves its slot busy for good."""

    scheduler_actor_class = _SpawnsLogsUnguarded


# -- 3, of metrics: a metric update that raises as a run starts jams the slot ---------


class _CountsUnguarded(RunnerActor):
    def _count(self, fn: Callable[..., None], *args: object) -> None:
        fn(*args)  # raises in Execute: the run is never executed, its slot stays busy


class _TaskCountsUnguarded(TaskActor):
    runner_class = _CountsUnguarded


class _SpawnsCountsUnguarded(SchedulerActor):
    task_actor_class = _TaskCountsUnguarded


class JamsOnFailingMetrics(Scheduler):
    """Defect 3 (metrics): a metric update that raises leaves its slot busy for good."""

    scheduler_actor_class = _SpawnsCountsUnguarded


# -- 4: a raising cancel() kills the runner ------------------------------------------


class _DiesOnCancel(RunnerActor):
    def _cancel_unguarded(self, message: Cancel) -> None:
        run, promise = self._run, self._promise
        if run is None or promise is None or run.run_id != message.run_id:
            return
        promise.cancel()  # raises: the actor dies, the run stays started
        self._record_outcome(run, promise, cancelling=True)

    _handle_failure = pykka.Actor._handle_failure  # pykka's: stop the actor
    _tells: ClassVar[Mapping[type, Handler]] = {
        k: v for k, v in RunnerActor._tells.items() if k is not Cancel
    }
    _asks: ClassVar[Mapping[type, Handler]] = {
        **RunnerActor._asks,
        Cancel: _cancel_unguarded,  # told, handled as an ask: failures escape
    }


class _TaskDiesOnCancel(TaskActor):
    runner_class = _DiesOnCancel


class _SpawnsDiesOnCancel(SchedulerActor):
    task_actor_class = _TaskDiesOnCancel


class RunnerDiesOnRaisingCancel(Scheduler):
    """Defect 4: a cancel() that raises kills the runner and leaves the run started."""

    scheduler_actor_class = _SpawnsDiesOnCancel


# -- 5: stop(grace) waits for resumed runs that will never start ------------------------


class _CountsWaitingRuns(TaskActor):
    def _in_flight_with_resume(self, message: InFlight) -> int:
        return len(self._busy) + len(self._resume)

    _asks: ClassVar[Mapping[type, Handler]] = {
        **TaskActor._asks,
        InFlight: _in_flight_with_resume,
    }


class _SpawnsCountsWaiting(SchedulerActor):
    task_actor_class = _CountsWaitingRuns


class GraceWaitsForRunsNeverStarted(Scheduler):
    """Defect 5: stop(grace) waits the whole grace for runs waiting to be resumed."""

    scheduler_actor_class = _SpawnsCountsWaiting


# -- 8: the due-time heap leaks -----------------------------------------------------


class _NeverCompacts(SchedulerActor):
    def _unindex(self, entry: _Entry) -> None:
        if entry.seq:
            entry.seq = 0
            self._stale += 1


class LeaksIndexEntries(Scheduler):
    """Defect 8: stale due-time entries are never dropped."""

    scheduler_actor_class = _NeverCompacts


# -- 9: an inactive task with a queued manual run is ticked on every tick ---------------
#
# Both halves of 325427f are put back: the SchedulerActor makes any task with a queue
# change due, and the TaskActor reports after a tick only if its due key changed. With
# only the first half, today's TaskActor (which reports after every queue change) takes
# the task out of the due set one message later, and the defect does not show.


class _ReportsOnlyChanges(TaskActor):
    def _on_tick_unforced(self, message: Tick) -> None:
        self._advance(message)
        self._report()  # an inactive task's key stays NEVER: nothing is reported

    _tells: ClassVar[Mapping[type, Handler]] = {**TaskActor._tells, Tick: _on_tick_unforced}


class _TicksInactiveQueues(SchedulerActor):
    task_actor_class = _ReportsOnlyChanges

    def _queue_changed_always(self, message: QueueChanged) -> bool:
        entry = self._tasks.get(message.task_id)
        if entry is None:
            return False
        entry.has_queue = True
        self._due.add(message.task_id)
        entry.ref.tell(Tick(self._now, queue_changed=True))
        return True

    _asks: ClassVar[Mapping[type, Handler]] = {
        **SchedulerActor._asks,
        QueueChanged: _queue_changed_always,
    }


class TicksInactiveTasks(Scheduler):
    """Defect 9: an inactive task with a queued run stays due, ticked every tick."""

    scheduler_actor_class = _TicksInactiveQueues


# -- 10: a task whose id is "all" corrupts the aggregate summaries ---------------------


class _PlainTaskMetrics(TaskMetrics):
    def __init__(self, scheduler: SchedulerMetrics, task_id: str) -> None:
        super().__init__(scheduler, task_id)
        self._queue = scheduler.run_queue_delta.labels(task_id)
        self._execution = scheduler.run_execution_delta.labels(task_id)

    def release(self) -> None:
        super().release()
        for metric in (self.scheduler.run_queue_delta, self.scheduler.run_execution_delta):
            try:
                metric.remove(self._task_id)
            except KeyError:
                pass


class _PlainMetrics(SchedulerMetrics):
    def for_task(self, task_id: str) -> TaskMetrics:
        return _PlainTaskMetrics(self, task_id)


_plain_metrics: WeakKeyDictionary[CollectorRegistry, _PlainMetrics] = WeakKeyDictionary()


class AggregatesCollideWithTaskAll(Scheduler):
    """Defect 10: task "all" observes the aggregate summaries twice and deletes them."""

    #: It brings its own metric set: a machine must not register another.
    own_metrics = True

    def __init__(self, *args: Any, registry: CollectorRegistry | None = None, **kw: Any) -> None:
        assert registry is not None
        metrics = _plain_metrics.get(registry)
        if metrics is None:  # one metric set per registry, as Scheduler keeps
            metrics = _plain_metrics[registry] = _PlainMetrics(registry)
        super().__init__(*args, registry=registry, metrics=metrics, **kw)


# -- 11: a task removed from the store counts a store error on every tick, forever ------


class _NeverReleasesVanished(TaskActor):
    def _vanished(self) -> None:
        self._svc.metrics.error(STORE_ERROR)  # counted on every tick, never released


class _SpawnsNeverReleases(SchedulerActor):
    task_actor_class = _NeverReleasesVanished


class KeepsTasksGoneFromTheStore(Scheduler):
    """Defect 11: a task removed from the store stays claimed and errs on every tick."""

    scheduler_actor_class = _SpawnsNeverReleases


#: Every variant, by the defect number of issue 7 ("3-metrics": defect 3's metrics half).
VARIANTS: dict[str, type[Scheduler]] = {
    "1": ResumesRunsStillExecuting,
    "2": ExecutesRecordedRunsAgain,
    "3": JamsOnFailingLogger,
    "3-metrics": JamsOnFailingMetrics,
    "4": RunnerDiesOnRaisingCancel,
    "5": GraceWaitsForRunsNeverStarted,
    "8": LeaksIndexEntries,
    "9": TicksInactiveTasks,
    "10": AggregatesCollideWithTaskAll,
    "11": KeepsTasksGoneFromTheStore,
}
