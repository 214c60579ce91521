"""``latency``: N tasks ``every 1s`` on the wall-clock ticker, for a fixed window.

Each run's lateness is the time the executor is called minus the run's ``due_at``.
Tasks are first due a little after the claims are expected to be done (a claim is
an ask, which would otherwise queue behind the runs of the tasks claimed before
it); the window starts at that first slot, or at the next second boundary if the
claims took longer, and lasts ``latency_window`` seconds; only runs scheduled
inside it count. After the window the harness waits (up to ``LATE_GRACE`` seconds)
for late runs, so a run that is late is counted late, and only a run that never
comes is counted missed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from benchmarks._common import (
    TICKACTORS,
    Config,
    Progress,
    Results,
    percentile,
    sleep_until_wall,
    wait_until,
)
from benchmarks._setup import Rig, make_tasks

__all__ = ["TICK_INTERVAL", "record_window", "run", "steps"]

TICK_INTERVAL = 0.01
LATE_GRACE = 10.0
STOP_TIMEOUT = 30.0


def steps(cfg: Config) -> int:
    return len(cfg.latency_sizes) * cfg.repeat


def case_name(n: int) -> str:
    return f"N={n:,}"


def run(cfg: Config, results: Results, progress: Progress) -> None:
    for n in cfg.latency_sizes:
        for r in range(cfg.repeat):
            progress.step(f"latency N={n:,} ({r + 1}/{cfg.repeat}, {cfg.latency_window:g} s)")
            _one(cfg, results, n)
            progress.done()


def _one(cfg: Config, results: Results, n: int) -> None:
    rig = Rig.make(now=None, tick_interval=TICK_INTERVAL)
    exe = rig.executor
    # No task is due until every claim is in: claims are asks, which queue behind runs.
    first = int(time.time()) + 2 + n // 2_000
    tasks = rig.add(make_tasks(n, every=1), first - 1)
    sched = rig.scheduler
    sched.start()
    try:
        rig.claim(tasks)
        start = max(first, int(time.time()) + 1)
        end = start + int(cfg.latency_window)
        exe.window = (start, end)
        expected = n * (end - start)
        sleep_until_wall(end + 0.5)
        wait_until(lambda: len(exe.records) >= expected, time.monotonic() + LATE_GRACE)
        exe.window = None
    finally:
        stopped = stop_within(sched.stop, STOP_TIMEOUT)
    record_window(results, TICKACTORS, case_name(n), exe.records, expected)
    if not stopped:
        results.errors.append(
            f"latency N={n:,}: Scheduler.stop() did not return within {STOP_TIMEOUT:g} s "
            "(left running in the background: later figures of this invocation are disturbed)"
        )


def stop_within(stop: Callable[[], None], timeout: float) -> bool:
    """Call ``stop`` in a daemon thread; False if it has not returned after ``timeout``."""
    thread = threading.Thread(target=stop, name="benchmark-stop", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def record_window(
    results: Results,
    system: str,
    case: str,
    records: Sequence[tuple[str, int, float]],
    expected: int,
    *,
    missed_events: int | None = None,
) -> None:
    """Lateness percentiles and run accounting of one window."""
    lateness = sorted(r[2] for r in records)
    distinct = len({(r[0], r[1]) for r in records})
    results.add("latency", case, system, "p50 lateness", percentile(lateness, 50) * 1e3, "ms")
    results.add("latency", case, system, "p99 lateness", percentile(lateness, 99) * 1e3, "ms")
    results.add("latency", case, system, "max lateness", percentile(lateness, 100) * 1e3, "ms")
    results.add("latency", case, system, "runs expected", expected, "runs", "higher")
    results.add("latency", case, system, "runs executed", distinct, "runs", "higher")
    results.add("latency", case, system, "runs missed", max(0, expected - distinct), "runs")
    results.add("latency", case, system, "duplicate runs", len(records) - distinct, "runs")
    if missed_events is not None:
        results.add("latency", case, system, "EVENT_JOB_MISSED", missed_events, "runs")
    results.add_lateness(system, case, lateness)
