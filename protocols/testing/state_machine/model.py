"""The machine's model: what the store and the scheduler should hold, step by step.

:class:`Model` keeps the tasks (:class:`TaskModel`), the claims
(:class:`ClaimModel`), every run the scheduler created (:class:`RunModel`) and the
counts the metrics must show. Its expected slots come from
:mod:`~protocols.testing.state_machine.oracle`, never from
:mod:`protocols.schedules`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

import attrs

from protocols.model import RunStatus, Task
from protocols.testing.state_machine.oracle import expected_due, expected_next_slot

__all__ = [
    "CREATED",
    "DONE",
    "EXECUTING",
    "LEFT",
    "RECORDING",
    "TERMINAL",
    "ClaimModel",
    "Model",
    "NullLogger",
    "RunModel",
    "TaskModel",
]

# A run's life in the model.
CREATED: Final = "created"  # created by the scheduler, not executed yet
LEFT: Final = "left"  # in progress in the store, no scheduler has it (a crash left it)
EXECUTING: Final = "executing"
#: Ended, its completion refused by the store: the slot stays busy, later ticks retry it.
RECORDING: Final = "recording"
DONE: Final = "done"

TERMINAL: Final = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED})


@attrs.define(eq=False)
class RunModel:
    """A run the scheduler (or a crashed process) created."""

    id: int
    task_id: str
    slot: int
    manual: bool
    state: str
    statuses: list[RunStatus] = attrs.Factory(list)
    finishes: int = 0
    expected: RunStatus | None = None
    executions: int = 0
    #: The claim that executed it (its per-task series count it), if any.
    claim: ClaimModel | None = None
    #: A cancel was asked and has not taken effect: "slow" (accepted, completes
    #: later) or "refused" (cancel() raised; the run goes on).
    cancel: str | None = None
    #: A store write about it failed: its statuses and log may be incomplete.
    faulted: bool = False
    #: Ended, but finish_run failed: still in progress in the store.
    unfinished: bool = False
    #: Its outcome is in the store but it is still in progress there (a crash
    #: before finish_run, or finish_run failed): the next claim completes it.
    recorded: bool = False
    #: The next claim completes it (finish_run) instead of executing it.
    completing: bool = False
    #: Its task was removed from the store: nothing about it can be recorded.
    removed: bool = False
    #: Left started after max_executions executions: the next claim completes it failed.
    abandoned: bool = False


@attrs.define
class TaskModel:
    """A task in the store."""

    task: Task  # the store's copy
    latest_completed: int
    queue: deque[tuple[int, int]] = attrs.Factory(deque)  # (run id, slot), FIFO
    max_concurrency: int = 1
    scheduled_slots: set[int] = attrs.Factory(set)  # slots with a scheduled run so far


@attrs.define(eq=False)
class ClaimModel:
    """A task the scheduler claimed."""

    task: Task  # the scheduler's copy
    resume: deque[int]
    success: int = 0
    failure: int = 0
    created: bool = False  # the scheduler created a run for it in this step
    started: int = 0  # runs it executed (its run_queue_delta count)


@attrs.define
class Model:
    """Tasks, claims, runs and the counts the metrics must show."""

    tasks: dict[str, TaskModel] = attrs.Factory(dict)
    claims: dict[str, ClaimModel] = attrs.Factory(dict)
    runs: dict[int, RunModel] = attrs.Factory(dict)
    total_success: int = 0
    total_failure: int = 0
    errors: int = 0  # runs that failed (the "internal error" counter)
    claims_ok: int = 0
    claims_failed: int = 0
    started: int = 0  # runs executed, ever (the aggregate run_queue_delta count)
    executor_errors: int = 0  # cancel() calls that raised
    store_errors: int = 0  # store calls of the actors that raised
    not_found: int = 0  # claims released because their task left the store
    #: The highest concurrency each task id ever had (a removed task's runs may linger).
    concurrency_ever: dict[str, int] = attrs.Factory(dict)
    #: Claimed tasks whose create_next_run failed: due until a tick retries them.
    faulted_tasks: set[str] = attrs.Factory(set)

    def executing(self, task_id: str | None = None) -> list[RunModel]:
        """The runs in flight (of ``task_id``, or all), by id."""
        return sorted(
            (
                r
                for r in self.runs.values()
                if r.state == EXECUTING and (task_id is None or r.task_id == task_id)
            ),
            key=lambda r: r.id,
        )

    def recording(self, task_id: str | None = None) -> list[RunModel]:
        """The runs ended whose completion the scheduler retries (of ``task_id``, or all)."""
        return [
            r
            for r in self.runs.values()
            if r.state == RECORDING and (task_id is None or r.task_id == task_id)
        ]

    def left(self, task_id: str) -> list[RunModel]:
        """The runs of ``task_id`` left in progress by a crash, in slot order."""
        return sorted(
            (r for r in self.of_task(task_id) if r.state == LEFT),
            key=lambda r: (r.slot, r.id),
        )

    def of_task(self, task_id: str) -> list[RunModel]:
        """The runs of the task now in the store under ``task_id`` (not of a removed one)."""
        return [r for r in self.runs.values() if r.task_id == task_id and not r.removed]

    def in_store(self, task_id: str) -> list[RunModel]:
        """The runs the store has in progress for ``task_id``."""
        return [r for r in self.of_task(task_id) if r.state != DONE or r.unfinished]

    def base(self, task_id: str) -> int:
        """max(latest completed, slots of scheduled runs in progress): the store's base."""
        base = self.tasks[task_id].latest_completed
        for run in self.in_store(task_id):
            if not run.manual:
                base = max(base, run.slot)
        return base

    def lingering(self) -> set[str]:
        """Unclaimed tasks with runs still executing (a cancel slow or refused)."""
        return {r.task_id for r in self.executing() if r.task_id not in self.claims}

    def next_slot(self, task_id: str) -> int:
        """The slot the next scheduled run of ``task_id`` is for (the oracle's)."""
        return expected_next_slot(self.tasks[task_id].task.options, self.base(task_id))

    def due(self, task_id: str, slot: int) -> int:
        """When the run of ``task_id`` for ``slot`` is due (the oracle's)."""
        return expected_due(self.tasks[task_id].task.options, slot)

    def finished(self, run: RunModel, status: RunStatus, *, recorded: bool = True) -> None:
        """Count ``run`` ending ``status`` (``recorded``: and its completion is durable)."""
        run.state = DONE if recorded else RECORDING
        run.expected = status
        if status is RunStatus.SUCCESS:
            self.total_success += 1
        else:
            self.total_failure += 1
        if status is RunStatus.FAILED:
            self.errors += 1
        run.cancel = None
        claim = run.claim  # its series; a released claim's are gone
        if claim is not None:
            if status is RunStatus.SUCCESS:
                claim.success += 1
            else:
                claim.failure += 1


class NullLogger:
    """A structlog-shaped logger that drops everything (keeps test output clean)."""

    def bind(self, **_: Any) -> NullLogger:
        return self

    def _drop(self, *_: Any, **__: Any) -> None:
        return None

    debug = info = warning = error = exception = critical = msg = _drop
