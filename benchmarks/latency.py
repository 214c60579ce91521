"""``latency``: N tasks ``every 1s`` on the wall-clock ticker, for a fixed window.

Each run's lateness is the time the executor is called minus the run's ``due_at``.
Tasks are first due a little after the claims are expected to be done (a claim is
an ask, which would otherwise queue behind the runs of the tasks claimed before
it); the window starts at that first slot, or at the next second boundary if the
claims took longer, and lasts ``latency_window`` seconds; only runs scheduled
inside it count. After the window the harness waits (up to ``LATE_GRACE`` seconds)
for late runs, so a run that is late is counted late, and only a run that never
comes is counted missed.

Every size runs on ``MemoryStore`` (system ``tickactors``); ``sqlite_latency_sizes``
also on ``SQLiteStore`` (``tickactors+sqlite``: a file in a fresh temporary
directory, default durability). Where a size runs on both, each repeat runs on both
back to back, so that the ratio compares like with like.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from benchmarks._common import (
    Config,
    Progress,
    Results,
    percentile,
    sleep_until_wall,
    wait_until,
)
from benchmarks._setup import Rig, StoreName, make_tasks

__all__ = ["TICK_INTERVAL", "plan", "record_window", "run", "steps"]

TICK_INTERVAL = 0.01
LATE_GRACE = 10.0
STOP_TIMEOUT = 30.0


def plan(cfg: Config) -> list[tuple[int, tuple[StoreName, ...]]]:
    """(N, stores to run it on), every size once, in the order first listed."""
    sizes = list(dict.fromkeys((*cfg.latency_sizes, *cfg.sqlite_latency_sizes)))
    out: list[tuple[int, tuple[StoreName, ...]]] = []
    for n in sizes:
        stores: list[StoreName] = []
        if n in cfg.latency_sizes:
            stores.append("memory")
        if n in cfg.sqlite_latency_sizes:
            stores.append("sqlite")
        out.append((n, tuple(stores)))
    return out


def steps(cfg: Config) -> int:
    return sum(len(stores) for _, stores in plan(cfg)) * cfg.repeat


def case_name(n: int) -> str:
    return f"N={n:,}"


def run(cfg: Config, results: Results, progress: Progress) -> None:
    for n, stores in plan(cfg):
        for r in range(cfg.repeat):
            for store in stores:
                label = "" if store == "memory" else f" on {store}"
                progress.step(
                    f"latency N={n:,}{label} ({r + 1}/{cfg.repeat}, {cfg.latency_window:g} s)"
                )
                _one(cfg, results, n, store)
                progress.done()


def _one(cfg: Config, results: Results, n: int, store: StoreName = "memory") -> None:
    rig = Rig.make(now=None, tick_interval=TICK_INTERVAL, store=store)
    rig.note_store(results)
    stopped = True  # until started; a scheduler that does not stop keeps its store open
    try:
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
    finally:
        if stopped:
            rig.close()
    record_window(results, rig.system, case_name(n), exe.records, expected)
    if not stopped:
        results.errors.append(
            f"latency N={n:,} ({rig.system}): Scheduler.stop() did not return within "
            f"{STOP_TIMEOUT:g} s (left running in the background, its store open: later "
            "figures of this invocation are disturbed)"
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
    """Lateness percentiles, the share started within 1 s, and run accounting of one window."""
    lateness = sorted(r[2] for r in records)
    distinct = len({(r[0], r[1]) for r in records})
    results.add("latency", case, system, "p50 lateness", percentile(lateness, 50) * 1e3, "ms")
    results.add("latency", case, system, "p99 lateness", percentile(lateness, 99) * 1e3, "ms")
    results.add("latency", case, system, "max lateness", percentile(lateness, 100) * 1e3, "ms")
    # Of the runs expected, the share that started less than a second after due.
    prompt = len({(r[0], r[1]) for r in records if r[2] < 1.0})
    share = 100 * prompt / expected if expected else float("nan")
    results.add("latency", case, system, "started within 1 s", share, "%", "higher")
    results.add("latency", case, system, "runs expected", expected, "runs", "higher")
    results.add("latency", case, system, "runs executed", distinct, "runs", "higher")
    results.add("latency", case, system, "runs missed", max(0, expected - distinct), "runs")
    results.add("latency", case, system, "duplicate runs", len(records) - distinct, "runs")
    if missed_events is not None:
        results.add("latency", case, system, "EVENT_JOB_MISSED", missed_events, "runs")
    results.add_lateness(system, case, lateness)
