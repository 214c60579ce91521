"""``throughput``: runs per second, end to end, while a backlog of due runs drains.

Tasks run ``every=1`` with ``latest_completed`` far enough in the past that
``backlog`` slots are due; one ``tick(now)`` starts the drain, and the time runs
until ``settle()`` returns: every run created by the store, started by its
runner, executed (no-op), its outcome recorded (state, log lines, metrics) and
``finish_run`` called. Bounded by ``timeout``: runs done by then are counted.

Every case runs on ``MemoryStore`` (system ``tickactors``); the "N tasks, 1 run
each" case also on ``SQLiteStore`` (``tickactors+sqlite``: a file in a fresh
temporary directory, default durability), each repeat of both back to back so
that the ratio compares like with like. "CPU per run" is the process's CPU time
(every thread, ``time.process_time()``) over the measured section divided by the
runs executed.
"""

from __future__ import annotations

import time

from benchmarks._common import Config, Progress, Results, gc_quiet
from benchmarks._setup import BASE, Rig, StoreName, make_tasks

__all__ = ["cases", "record_drain", "run", "single_case", "steps", "stores"]


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
        single_case(cfg.throughput_single),
    ]


def single_case(n: int) -> tuple[str, int, int, int]:
    """The "N tasks, 1 run each" case: the one the durable stores run too."""
    return (f"{n:,} tasks, 1 run each", n, 1, 1)


def stores(cfg: Config, case: str) -> tuple[StoreName, ...]:
    """The stores ``case`` runs on: SQLite only for the "N tasks, 1 run each" case."""
    if case == single_case(cfg.throughput_single)[0]:
        return ("memory", "sqlite")
    return ("memory",)


def steps(cfg: Config) -> int:
    return sum(len(stores(cfg, case[0])) for case in cases(cfg)) * cfg.repeat


def run(cfg: Config, results: Results, progress: Progress) -> None:
    for case, n, concurrency, per_task in cases(cfg):
        for r in range(cfg.repeat):
            for store in stores(cfg, case):
                label = "" if store == "memory" else f" on {store}"
                progress.step(f"throughput {case}{label} ({r + 1}/{cfg.repeat})")
                _one(cfg, results, case, n, concurrency, per_task, store)
                progress.done()


def _one(
    cfg: Config,
    results: Results,
    case: str,
    n: int,
    concurrency: int,
    per_task: int,
    store: StoreName = "memory",
) -> None:
    # The scheduler starts before the backlog is due, so claiming creates no run.
    rig = Rig.make(now=BASE - per_task, store=store)
    try:
        rig.note_store(results)
        tasks = rig.add(make_tasks(n, every=1, concurrency=concurrency), BASE - per_task)
        sched = rig.scheduler
        sched.start()
        try:
            rig.claim(tasks)
            sched.settle(cfg.timeout)
            expected = n * per_task
            with gc_quiet():
                cpu0 = time.process_time()
                t0 = time.perf_counter()
                sched.tick(BASE)
                settled = sched.settle(cfg.timeout)
                elapsed = time.perf_counter() - t0
                cpu = time.process_time() - cpu0
            done = rig.executor.count
        finally:
            sched.stop()
    finally:
        rig.close()
    if not settled or done != expected:
        results.errors.append(
            f"throughput {case} ({rig.system}): {done:,} of {expected:,} runs in {elapsed:.1f} s"
            + ("" if settled else " (timed out)")
        )
    record_drain(results, case, rig.system, done, elapsed, cpu)


def record_drain(
    results: Results, case: str, system: str, runs: int, elapsed: float, cpu: float
) -> None:
    """Runs/s, drain time and CPU µs per run of one drain (``cpu``: process CPU seconds)."""
    results.add("throughput", case, system, "runs/s", runs / elapsed, "runs/s", "higher")
    results.add("throughput", case, system, "drain time", elapsed, "s")
    per_run = cpu / runs * 1e6 if runs else float("nan")
    results.add("throughput", case, system, "CPU per run", per_run, "µs")
