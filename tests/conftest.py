"""Shared fixtures: a scheduler on a MemoryStore and a ManualExecutor, driven by tick(now)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings
from prometheus_client import CollectorRegistry

from actors import Scheduler
from protocols import MemoryStore, Run, RunStatus, Task, TaskOptions, TaskStatus
from protocols.testing.manual import ManualExecutor

# Hypothesis profiles: "ci" is bounded and prints the failing example; "long" is for
# local runs (HYPOTHESIS_PROFILE=long). "dev" is the default.
settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long",
    max_examples=300,
    deadline=None,
    verbosity=Verbosity.normal,
    suppress_health_check=[HealthCheck.too_slow],
)
# "noshrink": report the first failing example as found (debugging a slow machine).
settings.register_profile(
    "noshrink",
    max_examples=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

SETTLE_TIMEOUT = 30.0


class Harness:
    """A started Scheduler on a MemoryStore and a ManualExecutor, with helpers for tests."""

    def __init__(self, now: int = 5, **scheduler_kwargs: Any) -> None:
        self.store = MemoryStore(clock=lambda: 1_000_000.0)
        self.executor = ManualExecutor()
        self.registry = CollectorRegistry()
        self.scheduler = Scheduler(
            self.store, self.executor, now=now, registry=self.registry, **scheduler_kwargs
        )

    def add_task(
        self,
        task_id: str = "t1",
        *,
        every: int | None = 1,
        cron: str | None = None,
        concurrency: int = 1,
        offset: int = 0,
        latest_completed: int = 5,
        status: TaskStatus = TaskStatus.ACTIVE,
        script: str = "job",
    ) -> Task:
        """Add a task to the store (not claimed yet)."""
        if cron is not None:
            every = None
        options = TaskOptions(
            name=task_id, every=every, cron=cron, concurrency=concurrency, offset=offset
        )
        task = Task(id=task_id, options=options, status=status, script=script)
        self.store.add_task(task, latest_completed=latest_completed)
        return task

    def settle(self) -> None:
        """Wait until the actors are quiet (bounded)."""
        assert self.scheduler.settle(SETTLE_TIMEOUT), "the actor system did not settle"

    def tick(self, now: int) -> None:
        """Tick and wait for every consequence."""
        self.scheduler.tick(now)
        self.settle()

    def running(self, task_id: str = "t1") -> list[int]:
        """scheduled_for of the runs in flight at the executor, sorted."""
        return sorted(run.scheduled_for for run in self.executor.running(task_id))

    def run_id(self, scheduled_for: int, task_id: str = "t1") -> int:
        """The id of the run in flight for ``scheduled_for``."""
        (run_id,) = [
            run.run_id
            for run in self.executor.running(task_id)
            if run.scheduled_for == scheduled_for
        ]
        return run_id

    def find(self, run_id: int, task_id: str = "t1") -> Run:
        """The store's record of a run."""
        return self.store.find_run(task_id, run_id)

    def status(self, run_id: int, task_id: str = "t1") -> RunStatus:
        """The store's status of a run."""
        return self.find(run_id, task_id).status

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A sample from the scheduler's registry."""
        return self.registry.get_sample_value(name, labels or {})


@pytest.fixture
def harness() -> Iterator[Harness]:
    """A started scheduler (now=5) on fresh store, executor and registry."""
    h = Harness()
    h.scheduler.start()
    try:
        yield h
    finally:
        h.executor.release_wait()
        h.scheduler.stop()


@pytest.fixture
def make_harness() -> Iterator[Any]:
    """A factory of started harnesses (for a different ``now``), all stopped at teardown."""
    made: list[Harness] = []

    def make(now: int = 5, **kwargs: Any) -> Harness:
        h = Harness(now, **kwargs)
        h.scheduler.start()
        made.append(h)
        return h

    yield make
    for h in made:
        h.executor.release_wait()
        h.scheduler.stop()
