"""The InfluxDB scheduler's metric set (``task_scheduler_*``), on a registry of the caller's.

prometheus_client objects are thread-safe; actors update them directly. Each task's
label children are looked up once and cached (a ``labels()`` lookup costs more than
the update itself), and a released task's series are removed: its cached children then
update detached objects, so a late run completion never resurrects a released series.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Summary

__all__ = [
    "ERROR_TYPES",
    "EXECUTOR_ERROR",
    "INTERNAL_ERROR",
    "LOG_ERROR",
    "METRICS_ERROR",
    "NOT_FOUND",
    "STORE_ERROR",
    "SchedulerMetrics",
    "TaskMetrics",
    "error_type",
]

_SUCCESS = "success"
_FAILURE = "failure"
#: The label of the aggregate summaries (InfluxDB's); a task with this id shares it.
AGGREGATE = "all"

#: The ``error_type`` InfluxDB used for a run that failed (its ``EInternal`` code).
INTERNAL_ERROR = "internal error"
#: A store call raised.
STORE_ERROR = "store error"
#: An executor call other than ``execute`` raised (``cancel``).
EXECUTOR_ERROR = "executor error"
#: The logger raised (the run is recorded all the same).
LOG_ERROR = "log error"
#: A metric update raised (the run is recorded all the same).
METRICS_ERROR = "metrics error"
#: A claimed task vanished from the store (InfluxDB's ``ENotFound`` code).
NOT_FOUND = "not found"

#: Every ``error_type`` label value: ours, and InfluxDB's error codes, which a run's
#: error may carry as its ``code``. Anything else is counted as ``internal error``, so
#: the number of series stays fixed whatever exceptions a job raises.
ERROR_TYPES = frozenset(
    {
        INTERNAL_ERROR,
        STORE_ERROR,
        EXECUTOR_ERROR,
        LOG_ERROR,
        METRICS_ERROR,
        NOT_FOUND,
        "conflict",
        "invalid",
        "unprocessable entity",
        "empty value",
        "unavailable",
        "forbidden",
        "too many requests",
        "unauthorized",
        "method not allowed",
        "request too large",
        "unsupported media type",
    }
)


def error_type(error: BaseException) -> str:
    """The ``error_type`` label for a run that failed with ``error``.

    Its ``code`` attribute when that is one of :data:`ERROR_TYPES`, else
    ``internal error``.
    """
    code = getattr(error, "code", None)
    return code if isinstance(code, str) and code in ERROR_TYPES else INTERNAL_ERROR


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
        self._queue_all = self.run_queue_delta.labels(AGGREGATE)
        self._execution_all = self.run_execution_delta.labels(AGGREGATE)
        self._claim_success = self.claims_complete.labels(_SUCCESS)
        self._claim_failure = self.claims_complete.labels(_FAILURE)

    def claim(self, succeeded: bool) -> None:
        """Count a claim attempt; a successful one is also held."""
        if succeeded:
            self._claim_success.inc()
            self.claims_active.inc()
        else:
            self._claim_failure.inc()

    def error(self, kind: str) -> None:
        """Count an error by kind (one of :data:`ERROR_TYPES`; others count as internal).

        Never raises: a metric that fails must not stop what is being counted.
        """
        if kind not in ERROR_TYPES:
            kind = INTERNAL_ERROR
        try:
            self.errors_counter.labels(kind).inc()
        except Exception:
            pass

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
        # A task whose id is the aggregate label ("all") would share the aggregate
        # summaries' series: it observes them once (as every task does), not twice.
        aggregate = task_id == AGGREGATE
        self._queue = None if aggregate else scheduler.run_queue_delta.labels(task_id)
        self._execution = None if aggregate else scheduler.run_execution_delta.labels(task_id)

    def start_run(self, queue_delta: float) -> None:
        """A run started ``queue_delta`` seconds after it was due."""
        s = self.scheduler
        s.total_runs_active.inc()
        s._queue_all.observe(queue_delta)
        if self._queue is not None:
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
        if self._execution is not None:
            self._execution.observe(execution_delta)

    def release(self) -> None:
        """Remove this task's series (claims_active is the SchedulerActor's to adjust)."""
        s = self.scheduler
        tid = self._task_id
        series: list[tuple[Any, tuple[str, ...]]] = [
            (s.runs_active, (tid,)),
            (s.runs_complete, (tid, _SUCCESS)),
            (s.runs_complete, (tid, _FAILURE)),
        ]
        if tid != AGGREGATE:  # never the aggregates
            series += [(s.run_queue_delta, (tid,)), (s.run_execution_delta, (tid,))]
        for metric, labels in series:
            try:
                metric.remove(*labels)
            except KeyError:
                pass
