"""Building tickactors schedulers for the scenarios."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from actors import Scheduler
from benchmarks._common import NoopExecutor
from protocols import MemoryStore, Task, TaskOptions

__all__ = ["BASE", "Rig", "make_tasks"]

#: A fixed, hour-aligned instant for deterministic scenarios (tick(now) only, no ticker).
BASE = 1_700_002_800  # 2023-11-14T23:00:00Z, a multiple of 3600


def make_tasks(count: int, *, every: int, prefix: str = "t", concurrency: int = 1) -> list[Task]:
    return [
        Task(
            id=f"{prefix}{i}",
            options=TaskOptions(name=f"{prefix}{i}", every=every, concurrency=concurrency),
            script="noop",
        )
        for i in range(count)
    ]


@dataclass
class Rig:
    """A store, a no-op executor and a (not yet started) scheduler on a fresh registry."""

    store: MemoryStore
    executor: NoopExecutor
    scheduler: Scheduler

    @classmethod
    def make(
        cls,
        *,
        now: int | None = BASE,
        tick_interval: float | None = None,
        max_finished_runs: int | None = 16,
    ) -> Rig:
        store = MemoryStore(max_finished_runs=max_finished_runs)
        executor = NoopExecutor()
        scheduler = Scheduler(
            store, executor, now=now, registry=CollectorRegistry(), tick_interval=tick_interval
        )
        return cls(store, executor, scheduler)

    def add(self, tasks: Iterable[Task], latest_completed: int) -> list[Task]:
        added = list(tasks)
        for task in added:
            self.store.add_task(task, latest_completed=latest_completed)
        return added

    def claim(self, tasks: Iterable[Task]) -> None:
        claim = self.scheduler.claim_task
        for task in tasks:
            claim(task)
