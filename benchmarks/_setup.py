"""Building tickactors schedulers for the scenarios."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry

from actors import Scheduler
from benchmarks._common import TICKACTORS, TICKACTORS_SQLITE, NoopExecutor, Results
from protocols import MemoryStore, SQLiteStore, Task, TaskOptions

__all__ = ["BASE", "STORE_SYSTEMS", "Rig", "StoreName", "make_tasks"]

#: A fixed, hour-aligned instant for deterministic scenarios (tick(now) only, no ticker).
BASE = 1_700_002_800  # 2023-11-14T23:00:00Z, a multiple of 3600

#: The stores a rig can be built on.
StoreName = Literal["memory", "sqlite"]

#: The system a rig's figures are reported under, by store.
STORE_SYSTEMS: dict[StoreName, str] = {"memory": TICKACTORS, "sqlite": TICKACTORS_SQLITE}


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
    """A store, a no-op executor and a (not yet started) scheduler on a fresh registry.

    ``store="memory"``: a :class:`MemoryStore`. ``store="sqlite"``: a
    :class:`SQLiteStore` (default durability, ``"process"``) on a file in a fresh
    ``tempfile.mkdtemp()`` directory, which :meth:`close` closes and deletes (call it
    once the scheduler has stopped).
    """

    store: MemoryStore | SQLiteStore
    executor: NoopExecutor
    scheduler: Scheduler
    store_name: StoreName = "memory"
    directory: str | None = None  # the SQLite file's temporary directory

    @classmethod
    def make(
        cls,
        *,
        now: int | None = BASE,
        tick_interval: float | None = None,
        max_finished_runs: int | None = 16,
        store: StoreName = "memory",
    ) -> Rig:
        directory: str | None = None
        task_store: MemoryStore | SQLiteStore
        if store == "memory":
            task_store = MemoryStore(max_finished_runs=max_finished_runs)
        elif store == "sqlite":
            directory = tempfile.mkdtemp(prefix="tickactors-bench-")
            try:
                task_store = SQLiteStore(os.path.join(directory, "tickactors.db"))
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
        else:
            raise ValueError(f"unknown store {store!r}; choose from {list(STORE_SYSTEMS)}")
        executor = NoopExecutor()
        scheduler = Scheduler(
            task_store,
            executor,
            now=now,
            registry=CollectorRegistry(),
            tick_interval=tick_interval,
        )
        return cls(task_store, executor, scheduler, store, directory)

    @property
    def system(self) -> str:
        """The name this rig's figures are reported under (``tickactors+sqlite``, ...)."""
        return STORE_SYSTEMS[self.store_name]

    def note_store(self, results: Results) -> None:
        """Say once, in the report's notes, how a SQLite store was set up."""
        if isinstance(self.store, SQLiteStore):
            mode = {"process": "WAL, synchronous=NORMAL", "power": "WAL, synchronous=FULL"}
            results.note(
                f"{self.system}: SQLiteStore('<file in a fresh temporary directory>'), "
                f"durability={self.store.durability!r} ({mode[self.store.durability]}); "
                "the run path's writes group-committed by the store actor (one "
                "transaction per batch of ops)."
            )

    def add(self, tasks: Iterable[Task], latest_completed: int) -> list[Task]:
        added = list(tasks)
        for task in added:
            self.store.add_task(task, latest_completed=latest_completed)
        return added

    def claim(self, tasks: Iterable[Task]) -> None:
        claim = self.scheduler.claim_task
        for task in tasks:
            claim(task)

    def close(self) -> None:
        """Close a SQLite store and delete its directory (nothing to do for memory)."""
        if isinstance(self.store, SQLiteStore):
            self.store.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
