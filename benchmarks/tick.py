"""``tick``: the cost of one tick with N claimed tasks of which none, 1% or all are due.

Time runs only through ``tick(now)`` (no ticker). Due tasks run ``every=1`` from
``BASE``; idle tasks run weekly (their next slot is 90,000 s after ``BASE``), so
the measured ticks ``BASE+1, BASE+2, ...`` find the same due set each time. A
measurement is the wall time from ``tick(now)`` until ``settle()`` returns (every
due task has created, executed and finished its run). For "none due" it also
measures many ticks in a row (sent back to back, then one settle): µs per tick.
"""

from __future__ import annotations

import time

from benchmarks._common import TICKACTORS, Config, Progress, Results, gc_quiet
from benchmarks._setup import BASE, Rig, make_tasks

__all__ = ["run", "steps"]

IDLE_EVERY = 604_800  # weekly: the next slot is BASE + 90,000
CASES = (("none due", 0.0), ("1% due", 0.01), ("all due", 1.0))


def steps(cfg: Config) -> int:
    return len(cfg.tick_sizes) * len(CASES)


def case_name(n: int, label: str) -> str:
    return f"N={n:,}, {label}"


def run(cfg: Config, results: Results, progress: Progress) -> None:
    for n in cfg.tick_sizes:
        for label, fraction in CASES:
            progress.step(f"tick {case_name(n, label)}")
            _one(cfg, results, n, label, fraction)
            progress.done()


def _one(cfg: Config, results: Results, n: int, label: str, fraction: float) -> None:
    case = case_name(n, label)
    due = round(n * fraction)
    rig = Rig.make()
    tasks = rig.add(make_tasks(due, every=1, prefix="d"), BASE)
    tasks += rig.add(make_tasks(n - due, every=IDLE_EVERY, prefix="i"), BASE)
    sched = rig.scheduler
    sched.start()
    try:
        rig.claim(tasks)
        if not sched.settle(cfg.timeout):
            results.errors.append(f"tick {case}: claims did not settle")
            return
        now = BASE
        if due:
            # The first tick also spawns each due task's runner and its metric series.
            now += 1
            with gc_quiet():
                t0 = time.perf_counter()
                sched.tick(now)
                sched.settle(cfg.timeout)
                first = time.perf_counter() - t0
            results.add("tick", case, TICKACTORS, "first tick to settle", first * 1e3, "ms")
        for _ in range(cfg.repeat):
            now += 1
            before = rig.executor.count
            with gc_quiet():
                t0 = time.perf_counter()
                sched.tick(now)
                settled = sched.settle(cfg.timeout)
                elapsed = time.perf_counter() - t0
            if not settled:
                results.errors.append(f"tick {case}: tick {now} did not settle")
            results.add("tick", case, TICKACTORS, "tick to settle", elapsed * 1e3, "ms")
            results.add(
                "tick",
                case,
                TICKACTORS,
                "runs per tick",
                rig.executor.count - before,
                "runs",
                "higher",
            )
        if due == 0:
            _idle_ticks(cfg, results, rig, case, now)
    finally:
        sched.stop()


def _idle_ticks(cfg: Config, results: Results, rig: Rig, case: str, now: int) -> None:
    sched = rig.scheduler
    k = cfg.idle_ticks
    for _ in range(cfg.repeat):
        with gc_quiet():
            t0 = time.perf_counter()
            for _ in range(k):
                now += 1
                sched.tick(now)
            sched.settle(cfg.timeout)
            pipelined = time.perf_counter() - t0
        results.add("tick", case, TICKACTORS, "idle tick (back to back)", pipelined / k * 1e6, "µs")
        rounds = max(1, k // 10)
        with gc_quiet():
            t0 = time.perf_counter()
            for _ in range(rounds):
                now += 1
                sched.tick(now)
                sched.settle(cfg.timeout)
            round_trip = time.perf_counter() - t0
        results.add(
            "tick",
            case,
            TICKACTORS,
            "idle tick (tick+settle each)",
            round_trip / rounds * 1e6,
            "µs",
        )
    if rig.executor.count:
        results.errors.append(f"tick {case}: {rig.executor.count} runs with nothing due")
