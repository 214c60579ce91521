"""The kit finds real bugs: the state machine rejects deliberately broken stores."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, Phase, settings

from actors import Scheduler
from protocols import MemoryStore, RunCreation, Task, TaskStore
from protocols.schedules import due_time, next_slot
from protocols.testing.state_machine import (
    RecordingStore,
    SchedulerMachine,
    run_scheduler_machine,
    scheduler_machine,
)

# Bounded, no shrinking (only finding matters here), no example database.
FIND = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
# Finding a broken store must not depend on luck: the same examples every run (a
# change of the machine that stops one being found fails here every time, not once in
# a while).
CATCH = settings(FIND, derandomize=True)


class SkipsMissedSlot(MemoryStore):
    """Broken: with a backlog, it skips the first missed slot."""

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        with self._lock:
            if not self.manual_runs(task_id):
                task = self.get_task(task_id)
                slot = self.next_due_run(task_id) - task.options.offset
                if due_time(task.options, next_slot(task.options, slot)) <= now:
                    self.update_task(task, latest_completed=slot)
            return super().create_next_run(task_id, now)


class ServesManualLast(MemoryStore):
    """Broken: a due scheduled run goes before the queued manual runs."""

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        with self._lock:
            record = self._tasks[task_id]
            if not record.queue or self.next_due_run(task_id) > now:
                return super().create_next_run(task_id, now)
            queue, record.queue = record.queue, deque()
            try:
                created = super().create_next_run(task_id, now)
            finally:
                record.queue = queue
            return RunCreation(created.created, created.next_due, has_queue=True)


class ForgetsLatestCompleted(MemoryStore):
    """Broken: finishing a run (finish_run, complete_run) does not advance latest
    completed (slots run twice)."""

    def finish_run(self, task_id: str, run_id: int) -> Any:
        base = super().finish_run
        return self._forgetting(task_id, lambda: base(task_id, run_id))

    def complete_run(self, task_id: str, run_id: int, *args: Any) -> Any:
        base = super().complete_run
        return self._forgetting(task_id, lambda: base(task_id, run_id, *args))

    def _forgetting(self, task_id: str, finish: Callable[[], Any]) -> Any:
        with self._lock:
            record = self._tasks[task_id]
            latest = record.latest_completed
            run = finish()
            record.latest_completed = latest
            record.recompute_base()
            return run


class _MisreadsCronZone(MemoryStore):
    """Broken schedule arithmetic: cron slots computed in another zone than the task's.

    The store keeps the task as given, but computes its slots as if its ``timezone``
    were :meth:`zone_for` of it.
    """

    def zone_for(self, timezone: str) -> str:
        raise NotImplementedError

    def _misread(self, task: Task) -> Task:
        if task.options.cron is None:
            return task
        options = attrs.evolve(task.options, timezone=self.zone_for(task.options.timezone))
        return attrs.evolve(task, options=options)

    def add_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        super().add_task(self._misread(task), latest_completed=latest_completed)

    def update_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        super().update_task(self._misread(task), latest_completed=latest_completed)


class CronIgnoresTimezone(_MisreadsCronZone):
    """Broken: cron slots are computed in UTC, whatever the task's time zone."""

    def zone_for(self, timezone: str) -> str:
        return "UTC"


class CronIgnoresDaylightSaving(_MisreadsCronZone):
    """Broken: cron slots use the zone's standard time all year (no daylight saving)."""

    STANDARD: ClassVar[dict[str, str]] = {
        "Europe/Berlin": "Etc/GMT-1",
        "America/New_York": "Etc/GMT+5",
    }

    def zone_for(self, timezone: str) -> str:
        return self.STANDARD.get(timezone, timezone)


class FixedTimeAsWildcard(MemoryStore):
    """Broken daylight saving: fixed-time cron jobs follow the wildcard rule.

    ``30 1 * * *`` is stored as ``30 1/24 * * *`` (the same wall times, but a step in
    the hour field): it then runs twice in a repeated hour and never in a skipped one.
    """

    def _misread(self, task: Task) -> Task:
        cron = task.options.cron
        if cron is None or cron.startswith("@"):
            return task
        minute, hour, *days = cron.split(" ")
        if any(c in minute + hour for c in "*?/"):
            return task
        hour = ",".join(f"{item}/24" for item in hour.split(","))
        options = attrs.evolve(task.options, cron=" ".join([minute, hour, *days]))
        return attrs.evolve(task, options=options)

    def add_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        super().add_task(self._misread(task), latest_completed=latest_completed)

    def update_task(self, task: Task, *, latest_completed: int | None = None) -> None:
        super().update_task(self._misread(task), latest_completed=latest_completed)


BROKEN: list[Callable[[Callable[[], float]], TaskStore]] = [
    lambda clock: SkipsMissedSlot(clock=clock),
    lambda clock: ServesManualLast(clock=clock),
    lambda clock: ForgetsLatestCompleted(clock=clock),
    lambda clock: CronIgnoresTimezone(clock=clock),
    lambda clock: CronIgnoresDaylightSaving(clock=clock),
    lambda clock: FixedTimeAsWildcard(clock=clock),
]


@pytest.mark.parametrize(
    "factory",
    BROKEN,
    ids=[
        "skips-missed-slot",
        "serves-manual-last",
        "forgets-latest",
        "cron-ignores-timezone",
        "cron-ignores-dst",
        "fixed-time-as-wildcard",
    ],
)
def test_state_machine_catches_a_broken_store(
    factory: Callable[[Callable[[], float]], TaskStore],
) -> None:
    """run_scheduler_machine fails on a store that breaks the scheduling invariants."""
    with pytest.raises(AssertionError):
        run_scheduler_machine(factory, scheduler_class=Scheduler, settings=CATCH)


class _CancelIgnoringScheduler(Scheduler):
    """A broken scheduler variant: cancel_run is accepted and does nothing."""

    def cancel_run(self, task_id: str, run_id: int) -> None:
        return None


def test_state_machine_catches_a_broken_scheduler() -> None:
    """run_scheduler_machine fails on a scheduler variant whose cancel_run does nothing."""
    with pytest.raises(AssertionError):
        run_scheduler_machine(
            lambda clock: MemoryStore(clock=clock),
            scheduler_class=_CancelIgnoringScheduler,
            settings=CATCH,
        )


def test_state_machine_passes_on_memory_store() -> None:
    """The same machine, same settings, passes on the reference MemoryStore."""
    run_scheduler_machine(
        lambda clock: MemoryStore(clock=clock), scheduler_class=Scheduler, settings=FIND
    )


def test_a_machine_without_a_scheduler_class_says_what_to_set() -> None:
    """A SchedulerMachine subclass that names no scheduler fails with a clear message."""
    with pytest.raises(TypeError, match=r"scheduler_class = actors\.Scheduler"):
        SchedulerMachine()


def test_scheduler_machine_uses_the_factory() -> None:
    """scheduler_machine builds a SchedulerMachine subclass whose make_store is the factory."""
    made: list[TaskStore] = []
    closed: list[TaskStore] = []

    def factory(clock: Callable[[], float]) -> TaskStore:
        made.append(MemoryStore(clock=clock))
        return made[-1]

    machine_class = scheduler_machine(factory, close=closed.append, scheduler_class=Scheduler)
    assert issubclass(machine_class, SchedulerMachine)
    machine = machine_class()
    try:
        assert machine.store is made[0]
        assert isinstance(machine.recorder, RecordingStore)
    finally:
        machine.teardown()
    assert closed == made
