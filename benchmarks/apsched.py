"""``apscheduler``: the latency, throughput and claim workloads on APScheduler 3.11.

A ``BackgroundScheduler`` with its defaults (``MemoryJobStore``, a thread pool
executor of 10 threads) and no-op jobs that return the time they started:
``EVENT_JOB_EXECUTED`` carries it (``retval``) with the slot (``scheduled_run_time``),
so lateness is measured like tickactors' (start minus due time).

- latency: ``IntervalTrigger(seconds=1, start_date=<a whole second>)``, job
  defaults (``misfire_grace_time=1``, ``coalesce=True``, ``max_instances=1``).
  Missed runs: ``EVENT_JOB_MISSED`` are counted; coalesced runs and runs skipped
  at ``max_instances`` get no execution event, so "runs missed" is expected runs
  minus distinct runs executed, whatever the reason.
- throughput: the same backlogs as tickactors'. APScheduler coalesces a backlog by
  default, so the jobs use ``coalesce=False, misfire_grace_time=None`` (and
  ``max_instances=100`` for the "concurrency 100" case): every due slot runs.
  Timed from ``resume()`` until the last execution event.
- claim: ``add_job`` of N hourly jobs to a running scheduler.
"""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
)
from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from benchmarks import claim as claim_scenario
from benchmarks import latency as latency_scenario
from benchmarks import throughput as throughput_scenario
from benchmarks._common import (
    APSCHEDULER,
    Config,
    Progress,
    Results,
    gc_quiet,
    rss_bytes,
    sleep_until_wall,
    wait_until,
)

__all__ = ["noop_job", "run", "steps"]


def noop_job() -> float:
    """The job: does nothing, returns when it started."""
    return time.time()


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class _Recorder:
    """Counts APScheduler's job events (the listener runs in pool threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.window: tuple[int, int] | None = None
        self.records: list[tuple[str, int, float]] = []
        self.executed = 0
        self.missed = 0
        self.max_instances = 0
        self.missed_in_window = 0

    def __call__(self, event: Any) -> None:
        code = event.code
        with self._lock:
            if code == EVENT_JOB_EXECUTED:
                self.executed += 1
                window = self.window
                if window is not None:
                    slot = event.scheduled_run_time.timestamp()
                    if window[0] <= slot < window[1]:
                        self.records.append((event.job_id, int(slot), event.retval - slot))
            elif code == EVENT_JOB_MISSED:
                self.missed += 1
                window = self.window
                if window is not None:
                    slot = event.scheduled_run_time.timestamp()
                    if window[0] <= slot < window[1]:
                        self.missed_in_window += 1
            elif code == EVENT_JOB_MAX_INSTANCES:
                self.max_instances += 1


def _scheduler(recorder: _Recorder) -> Any:
    sched = BackgroundScheduler(timezone=UTC)
    sched.add_listener(recorder, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    return sched


def steps(cfg: Config) -> int:
    return (
        len(cfg.latency_sizes) * cfg.repeat
        + len(throughput_scenario.cases(cfg)) * cfg.repeat
        + len(cfg.claim_sizes) * (cfg.repeat + 1)
    )


def run(cfg: Config, results: Results, progress: Progress) -> None:
    for n in cfg.latency_sizes:
        for r in range(cfg.repeat):
            progress.step(
                f"apscheduler latency N={n:,} ({r + 1}/{cfg.repeat}, {cfg.latency_window:g} s)"
            )
            _latency(cfg, results, n)
            progress.done()
    for case, n, concurrency, per_task in throughput_scenario.cases(cfg):
        for r in range(cfg.repeat):
            progress.step(f"apscheduler throughput {case} ({r + 1}/{cfg.repeat})")
            _throughput(cfg, results, case, n, concurrency, per_task)
            progress.done()
    for n in cfg.claim_sizes:
        for r in range(cfg.repeat):
            progress.step(f"apscheduler claim N={n:,} ({r + 1}/{cfg.repeat})")
            _claim_timed(results, n)
            progress.done()
        progress.step(f"apscheduler claim N={n:,} (tracemalloc)")
        _claim_traced(results, n)
        progress.done()


def _latency(cfg: Config, results: Results, n: int) -> None:
    recorder = _Recorder()
    sched = _scheduler(recorder)
    sched.start(paused=True)
    try:
        # Adding jobs to a paused scheduler; their first slot is a whole second to come.
        first = int(time.time()) + 2 + n // 5_000
        trigger_start = _utc(first)
        for i in range(n):
            sched.add_job(
                noop_job,
                IntervalTrigger(seconds=1, start_date=trigger_start, timezone=UTC),
                id=f"t{i}",
            )
        start = max(first, int(time.time()) + 2)
        end = start + int(cfg.latency_window)
        recorder.window = (start, end)
        expected = n * (end - start)
        sched.resume()
        sleep_until_wall(end + 0.5)
        wait_until(
            lambda: len(recorder.records) + recorder.missed_in_window >= expected,
            time.monotonic() + latency_scenario.LATE_GRACE,
        )
        recorder.window = None
    finally:
        sched.shutdown(wait=True)
    latency_scenario.record_window(
        results,
        APSCHEDULER,
        latency_scenario.case_name(n),
        recorder.records,
        expected,
        missed_events=recorder.missed_in_window,
    )


def _throughput(
    cfg: Config, results: Results, case: str, n: int, concurrency: int, per_task: int
) -> None:
    recorder = _Recorder()
    sched = _scheduler(recorder)
    sched.start(paused=True)
    now = int(time.time())
    first = _utc(now - per_task + 1)  # slots now-per_task+1 ... now: per_task due each
    try:
        for i in range(n):
            sched.add_job(
                noop_job,
                IntervalTrigger(seconds=1, start_date=first, timezone=UTC),
                id=f"t{i}",
                next_run_time=first,  # else a past start_date skips to the next slot
                coalesce=False,
                misfire_grace_time=None,
                max_instances=concurrency,
            )
        expected = n * per_task
        with gc_quiet():
            t0 = time.perf_counter()
            sched.resume()
            done = wait_until(
                lambda: recorder.executed >= expected, time.monotonic() + cfg.timeout, 0.001
            )
            elapsed = time.perf_counter() - t0
        executed = recorder.executed
    finally:
        sched.shutdown(wait=False)
    # Slots that came due while draining also run: count only the backlog.
    executed = min(executed, expected)
    if not done:
        results.errors.append(
            f"apscheduler throughput {case}: {executed:,} of {expected:,} runs in {elapsed:.1f} s"
        )
    results.add("throughput", case, APSCHEDULER, "runs/s", executed / elapsed, "runs/s", "higher")
    results.add("throughput", case, APSCHEDULER, "drain time", elapsed, "s")


def _add_idle_jobs(sched: Any, n: int) -> None:
    start = _utc(int(time.time()) + 3600)
    for i in range(n):
        sched.add_job(
            noop_job, IntervalTrigger(hours=1, start_date=start, timezone=UTC), id=f"t{i}"
        )


def _claim_timed(results: Results, n: int) -> None:
    case = claim_scenario.case_name(n)
    sched = _scheduler(_Recorder())
    threads_before = set(threading.enumerate())
    sched.start()
    try:
        with gc_quiet():
            rss0 = rss_bytes()
            t0 = time.perf_counter()
            _add_idle_jobs(sched, n)
            elapsed = time.perf_counter() - t0
            rss1 = rss_bytes()
        threads = len(set(threading.enumerate()) - threads_before)
    finally:
        t0 = time.perf_counter()
        sched.shutdown(wait=True)
        stop_time = time.perf_counter() - t0
    results.add("claim", case, APSCHEDULER, "claim time", elapsed, "s")
    results.add("claim", case, APSCHEDULER, "claims/s", n / elapsed, "claims/s", "higher")
    results.add("claim", case, APSCHEDULER, "RSS growth per task", (rss1 - rss0) / n, "B")
    results.add("claim", case, APSCHEDULER, "threads added", threads, "threads")
    results.add("claim", case, APSCHEDULER, "stop time", stop_time, "s")


def _claim_traced(results: Results, n: int) -> None:
    case = claim_scenario.case_name(n)
    gc.collect()
    tracemalloc.start()
    try:
        sched = _scheduler(_Recorder())
        sched.start()
        gc.collect()
        started, _ = tracemalloc.get_traced_memory()
        _add_idle_jobs(sched, n)
        gc.collect()
        added, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    sched.shutdown(wait=True)
    results.add(
        "claim",
        case,
        APSCHEDULER,
        "memory per task (task + store + claim)",
        (added - started) / n,
        "B",
    )
