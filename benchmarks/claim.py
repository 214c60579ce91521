"""``claim``: time, memory and threads to claim N idle tasks.

Timed passes (``repeat`` of them, no tracing): wall time of N ``claim_task`` calls
plus the ``settle()`` after them (and, separately, of the same claims through
``claim_tasks`` in requests of 1,000), the RSS growth over that, the threads alive, and
the time ``stop()`` takes to release them all. Then one traced pass
(``tracemalloc``, not timed) splits the memory per task into what the task and the
store's copy cost (``Task`` objects + ``add_task``) and what claiming adds (actors,
index entries): the latter is "memory per idle claimed task"; the sum is what is
compared with an APScheduler job.
"""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

from benchmarks._common import TICKACTORS, Config, Progress, Results, gc_quiet, rss_bytes
from benchmarks._setup import BASE, Rig, make_tasks

__all__ = ["run", "steps"]

IDLE_EVERY = 604_800
BULK = 1_000


def steps(cfg: Config) -> int:
    return len(cfg.claim_sizes) * (cfg.repeat + 1)


def case_name(n: int) -> str:
    return f"N={n:,}"


def run(cfg: Config, results: Results, progress: Progress) -> None:
    for n in cfg.claim_sizes:
        for r in range(cfg.repeat):
            progress.step(f"claim N={n:,} ({r + 1}/{cfg.repeat})")
            _timed(cfg, results, n)
            progress.done()
        progress.step(f"claim N={n:,} (tracemalloc)")
        _traced(cfg, results, n)
        progress.done()


def _timed(cfg: Config, results: Results, n: int) -> None:
    case = case_name(n)
    rig = Rig.make()
    tasks = rig.add(make_tasks(n, every=IDLE_EVERY), BASE)
    sched = rig.scheduler
    threads_before = set(threading.enumerate())
    sched.start()
    try:
        with gc_quiet():
            rss0 = rss_bytes()
            t0 = time.perf_counter()
            rig.claim(tasks)
            sched.settle(cfg.timeout)
            elapsed = time.perf_counter() - t0
            rss1 = rss_bytes()
        threads = len(set(threading.enumerate()) - threads_before)
    finally:
        t0 = time.perf_counter()
        sched.stop()
        stop_time = time.perf_counter() - t0
    results.add("claim", case, TICKACTORS, "claim time", elapsed, "s")
    results.add("claim", case, TICKACTORS, "claims/s", n / elapsed, "claims/s", "higher")
    results.add("claim", case, TICKACTORS, "RSS growth per task", (rss1 - rss0) / n, "B")
    results.add("claim", case, TICKACTORS, "threads added", threads, "threads")
    results.add("claim", case, TICKACTORS, "stop time", stop_time, "s")
    _timed_bulk(cfg, results, n)


def _timed_bulk(cfg: Config, results: Results, n: int) -> None:
    """The same claims through ``claim_tasks`` (one request per 1,000 tasks)."""
    case = case_name(n)
    rig = Rig.make()
    tasks = rig.add(make_tasks(n, every=IDLE_EVERY), BASE)
    sched = rig.scheduler
    sched.start()
    try:
        with gc_quiet():
            t0 = time.perf_counter()
            for i in range(0, n, BULK):
                failures = sched.claim_tasks(tasks[i : i + BULK])
                assert not failures, failures
            sched.settle(cfg.timeout)
            elapsed = time.perf_counter() - t0
    finally:
        sched.stop()
    results.add("claim", case, TICKACTORS, "claim time (claim_tasks)", elapsed, "s")


def _traced(cfg: Config, results: Results, n: int) -> None:
    case = case_name(n)
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        rig = Rig.make()
        rig.scheduler.start()
        started, _ = tracemalloc.get_traced_memory()
        tasks = rig.add(make_tasks(n, every=IDLE_EVERY), BASE)
        gc.collect()
        stored, _ = tracemalloc.get_traced_memory()
        rig.claim(tasks)
        rig.scheduler.settle(cfg.timeout)
        gc.collect()
        claimed, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rig.scheduler.stop()
    results.add(
        "claim", case, TICKACTORS, "memory per idle claimed task", (claimed - stored) / n, "B"
    )
    results.add(
        "claim",
        case,
        TICKACTORS,
        "memory per task (task + store + claim)",
        (claimed - started) / n,
        "B",
    )
    results.add("claim", case, TICKACTORS, "scheduler fixed memory", started - base, "B")
