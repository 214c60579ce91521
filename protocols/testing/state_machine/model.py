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
DONE: Final = "done"

TERMINAL: Final = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED})


@attrs.define
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


@attrs.define
class TaskModel:
    """A task in the store."""

    task: Task  # the store's copy
    latest_completed: int
    queue: deque[tuple[int, int]] = attrs.Factory(deque)  # (run id, slot), FIFO
    max_concurrency: int = 1
    scheduled_slots: set[int] = attrs.Factory(set)  # slots with a scheduled run so far


@attrs.define
class ClaimModel:
    """A task the scheduler claimed."""

    task: Task  # the scheduler's copy
    resume: deque[int]
    success: int = 0
    failure: int = 0
    created: bool = False  # the scheduler created a run for it in this step


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

    def left(self, task_id: str) -> list[RunModel]:
        """The runs of ``task_id`` left in progress by a crash, in slot order."""
        return sorted(
            (r for r in self.runs.values() if r.task_id == task_id and r.state == LEFT),
            key=lambda r: (r.slot, r.id),
        )

    def base(self, task_id: str) -> int:
        """max(latest completed, slots of scheduled runs in progress): the store's base."""
        base = self.tasks[task_id].latest_completed
        for run in self.runs.values():
            if run.task_id == task_id and not run.manual and run.state != DONE:
                base = max(base, run.slot)
        return base

    def next_slot(self, task_id: str) -> int:
        """The slot the next scheduled run of ``task_id`` is for (the oracle's)."""
        return expected_next_slot(self.tasks[task_id].task.options, self.base(task_id))

    def due(self, task_id: str, slot: int) -> int:
        """When the run of ``task_id`` for ``slot`` is due (the oracle's)."""
        return expected_due(self.tasks[task_id].task.options, slot)

    def finished(self, run: RunModel, status: RunStatus) -> None:
        """Count ``run`` ending ``status``."""
        run.state = DONE
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


class NullLogger:
    """A structlog-shaped logger that drops everything (keeps test output clean)."""

    def bind(self, **_: Any) -> NullLogger:
        return self

    def _drop(self, *_: Any, **__: Any) -> None:
        return None

    debug = info = warning = error = exception = critical = msg = _drop
