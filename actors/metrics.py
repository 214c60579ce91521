"""The InfluxDB scheduler's metric set (``task_scheduler_*``), on a registry of the caller's.

prometheus_client objects are thread-safe; actors update them directly. Each task's
label children are looked up once and cached (a ``labels()`` lookup costs more than
the update itself), and a released task's series are removed: its cached children then
update detached objects, so a late run completion never resurrects a released series.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Summary

__all__ = ["SchedulerMetrics", "TaskMetrics"]

_SUCCESS = "success"
_FAILURE = "failure"
#: The ``error_type`` InfluxDB used for a run that failed (its ``EInternal`` code).
INTERNAL_ERROR = "internal error"


class SchedulerMetrics:
    """The scheduler-wide metrics; :meth:`for_task` gives one task's cached series."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = REGISTRY if registry is None else registry
        common: dict[str, Any] = {
            "namespace": "task",
            "subsystem": "scheduler",
            "registry": registry,
        }
        self.total_runs_complete = Counter(
            "total_runs_complete",
            "Total number of runs completed across all tasks, split out by success or failure.",
            ["status"],
            **common,
        )
        self.total_runs_active = Gauge(
            "total_runs_active",
            "Total number of runs across all tasks that have started but not yet completed.",
            **common,
        )
        self.runs_complete = Counter(
            "runs_complete",
            "Number of runs completed, split out by task ID and success or failure.",
            ["task_id", "status"],
            **common,
        )
        self.runs_active = Gauge(
            "runs_active",
            "Total number of runs that have started but not yet completed, split out by task ID.",
            ["task_id"],
            **common,
        )
        self.errors_counter = Counter(
            "errors_counter",
            "The number of errors thrown by scheduler with the type of error "
            "(ex. internal error, store error).",
            ["error_type"],
            **common,
        )
        self.claims_complete = Counter(
            "claims_complete",
            "Total number of claims completed, split out by success or failure.",
            ["status"],
            **common,
        )
        self.claims_active = Gauge(
            "claims_active",
            "Total number of claims currently held.",
            **common,
        )
        self.run_queue_delta = Summary(
            "run_queue_delta",
            "The duration in seconds between a run being due to start and actually starting.",
            ["task_id"],
            **common,
        )
        self.run_execution_delta = Summary(
            "run_execution_delta",
            "The duration in seconds between a run starting and complete execution.",
            ["task_id"],
            **common,
        )
        self._total_success = self.total_runs_complete.labels(_SUCCESS)
        self._total_failure = self.total_runs_complete.labels(_FAILURE)
        self._queue_all = self.run_queue_delta.labels("all")
        self._execution_all = self.run_execution_delta.labels("all")
        self._claim_success = self.claims_complete.labels(_SUCCESS)
        self._claim_failure = self.claims_complete.labels(_FAILURE)

    def claim(self, succeeded: bool) -> None:
        """Count a claim attempt; a successful one is also held."""
        if succeeded:
            self._claim_success.inc()
            self.claims_active.inc()
        else:
            self._claim_failure.inc()

    def error(self, error_type: str) -> None:
        """Count an error by kind."""
        self.errors_counter.labels(error_type).inc()

    def for_task(self, task_id: str) -> TaskMetrics:
        """The cached series of one task."""
        return TaskMetrics(self, task_id)


class TaskMetrics:
    """One task's label children, looked up once."""

    __slots__ = (
        "_active",
        "_execution",
        "_failure",
        "_queue",
        "_success",
        "_task_id",
        "scheduler",
    )

    def __init__(self, scheduler: SchedulerMetrics, task_id: str) -> None:
        self.scheduler = scheduler
        self._task_id = task_id
        self._active = scheduler.runs_active.labels(task_id)
        self._success = scheduler.runs_complete.labels(task_id, _SUCCESS)
        self._failure = scheduler.runs_complete.labels(task_id, _FAILURE)
        self._queue = scheduler.run_queue_delta.labels(task_id)
        self._execution = scheduler.run_execution_delta.labels(task_id)

    def start_run(self, queue_delta: float) -> None:
        """A run started ``queue_delta`` seconds after it was due."""
        s = self.scheduler
        s.total_runs_active.inc()
        s._queue_all.observe(queue_delta)
        self._queue.observe(queue_delta)
        self._active.inc()

    def finish_run(self, succeeded: bool, execution_delta: float) -> None:
        """A started run completed (a cancelled run counts as a failure)."""
        s = self.scheduler
        s.total_runs_active.dec()
        if succeeded:
            s._total_success.inc()
            self._success.inc()
        else:
            s._total_failure.inc()
            self._failure.inc()
        self._active.dec()
        s._execution_all.observe(execution_delta)
        self._execution.observe(execution_delta)

    def release(self) -> None:
        """Remove this task's series (claims_active is the SchedulerActor's to adjust)."""
        s = self.scheduler
        tid = self._task_id
        for metric, labels in (
            (s.runs_active, (tid,)),
            (s.runs_complete, (tid, _SUCCESS)),
            (s.runs_complete, (tid, _FAILURE)),
            (s.run_queue_delta, (tid,)),
            (s.run_execution_delta, (tid,)),
        ):
            try:
                metric.remove(*labels)
            except KeyError:
                pass
