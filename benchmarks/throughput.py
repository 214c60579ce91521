"""``throughput``: runs per second, end to end, while a backlog of due runs drains.

Tasks run ``every=1`` with ``latest_completed`` far enough in the past that
``backlog`` slots are due; one ``tick(now)`` starts the drain, and the time runs
until ``settle()`` returns: every run created by the store, started by its
runner, executed (no-op), its outcome recorded (state, log lines, metrics) and
``finish_run`` called. Bounded by ``timeout``: runs done by then are counted.
"""

from __future__ import annotations

import time

from benchmarks._common import TICKACTORS, Config, Progress, Results, gc_quiet
from benchmarks._setup import BASE, Rig, make_tasks

__all__ = ["cases", "run", "steps"]


def cases(cfg: Config) -> list[tuple[str, int, int, int]]:
    """(case name, tasks, concurrency, due runs per task)."""
    return [
        (
            f"1 task, concurrency 100, {cfg.throughput_backlog:,} runs",
            1,
            100,
            cfg.throughput_backlog,
        ),
        (
            f"{cfg.throughput_tasks:,} tasks, {cfg.throughput_per_task} runs each",
            cfg.throughput_tasks,
            1,
            cfg.throughput_per_task,
        ),
        (f"{cfg.throughput_single:,} tasks, 1 run each", cfg.throughput_single, 1, 1),
    ]


def steps(cfg: Config) -> int:
    return len(cases(cfg)) * cfg.repeat


def run(cfg: Config, results: Results, progress: Progress) -> None:
    for case, n, concurrency, per_task in cases(cfg):
        for r in range(cfg.repeat):
            progress.step(f"throughput {case} ({r + 1}/{cfg.repeat})")
            _one(cfg, results, case, n, concurrency, per_task)
            progress.done()


def _one(cfg: Config, results: Results, case: str, n: int, concurrency: int, per_task: int) -> None:
    # The scheduler starts before the backlog is due, so claiming creates no run.
    rig = Rig.make(now=BASE - per_task)
    tasks = rig.add(make_tasks(n, every=1, concurrency=concurrency), BASE - per_task)
    sched = rig.scheduler
    sched.start()
    try:
        rig.claim(tasks)
        sched.settle(cfg.timeout)
        expected = n * per_task
        with gc_quiet():
            t0 = time.perf_counter()
            sched.tick(BASE)
            settled = sched.settle(cfg.timeout)
            elapsed = time.perf_counter() - t0
        done = rig.executor.count
    finally:
        sched.stop()
    if not settled or done != expected:
        results.errors.append(
            f"throughput {case}: {done:,} of {expected:,} runs in {elapsed:.1f} s"
            + ("" if settled else " (timed out)")
        )
    results.add("throughput", case, TICKACTORS, "runs/s", done / elapsed, "runs/s", "higher")
    results.add("throughput", case, TICKACTORS, "drain time", elapsed, "s")
