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
  ``max_instances=100`` for the "concurrency 100" case): every due slot runs. The
  trigger ends at the last slot of the backlog (``end_date``), so a job has exactly
  its backlog's slots however long adding the jobs took (then it is removed).
  Timed from ``resume()`` until the last execution event; "CPU per run" is the
  process's CPU time over that (every thread) divided by the runs executed.
- claim: ``add_job`` of N hourly jobs to a running scheduler.

The durable peer (system ``apscheduler+sqlite``) is the same scheduler with a
``SQLAlchemyJobStore(url="sqlite:///<file>")`` (the file in a fresh
``tempfile.mkdtemp()`` directory, deleted after the case; SQLAlchemy's and SQLite's
defaults otherwise) as its default job store, on the latency workload at
``sqlite_latency_sizes`` and the "N tasks, 1 run each" throughput case at
``apscheduler_sqlite_single`` tasks (the case's name states that N). The store
pickles jobs: the job is the module-level :func:`noop_job`.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
)
from apscheduler.jobstores.sqlalchemy import (  # type: ignore[import-untyped]
    SQLAlchemyJobStore,
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
    APSCHEDULER_SQLITE,
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


def _scheduler(recorder: _Recorder, jobstores: dict[str, Any] | None = None) -> Any:
    sched = BackgroundScheduler(timezone=UTC, jobstores=jobstores or {})
    sched.add_listener(recorder, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    return sched


@contextmanager
def _jobstores(results: Results, durable: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """(system, job stores) for a scheduler; a durable one's file is deleted after.

    Shut the scheduler down inside the block: that disposes of the store's engine.
    """
    if not durable:
        yield APSCHEDULER, {}
        return
    directory = tempfile.mkdtemp(prefix="apscheduler-bench-")
    try:
        store = SQLAlchemyJobStore(url=f"sqlite:///{os.path.join(directory, 'jobs.sqlite')}")
        _note_sqlite_settings(results, store)
        yield APSCHEDULER_SQLITE, {"default": store}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _note_sqlite_settings(results: Results, store: Any) -> None:
    """Say once how the durable peer's SQLite file is set up (as SQLAlchemy leaves it)."""
    with store.engine.connect() as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    results.note(
        f"{APSCHEDULER_SQLITE}: SQLAlchemyJobStore(url='sqlite:///<file in a fresh "
        f"temporary directory>'), SQLite as SQLAlchemy opens it (journal_mode="
        f"{journal}, synchronous={_SYNCHRONOUS.get(sync, sync)}); one commit per job "
        "added, updated after a run or removed."
    )


def _plan(cfg: Config) -> tuple[list[tuple[int, bool]], list[tuple[str, int, int, int, bool]]]:
    """Latency (N, durable) and throughput (case, N, concurrency, runs, durable) cases.

    A case that runs on both stores runs on both in each repeat, back to back.
    """
    latency = [
        (n, durable)
        for n, stores in latency_scenario.plan(cfg)
        for durable in (False, True)
        if ("sqlite" if durable else "memory") in stores
    ]
    throughput: list[tuple[str, int, int, int, bool]] = [
        (*case, False) for case in throughput_scenario.cases(cfg)
    ]
    throughput.append((*throughput_scenario.single_case(cfg.apscheduler_sqlite_single), True))
    return latency, throughput


def steps(cfg: Config) -> int:
    latency, throughput = _plan(cfg)
    return (
        len(latency) * cfg.repeat
        + len(throughput) * cfg.repeat
        + len(cfg.claim_sizes) * (cfg.repeat + 1)
    )


def run(cfg: Config, results: Results, progress: Progress) -> None:
    latency, throughput = _plan(cfg)
    # Sizes measured on both stores alternate, repeat by repeat (like tickactors').
    for n in dict.fromkeys(n for n, _ in latency):
        for r in range(cfg.repeat):
            for durable in (d for m, d in latency if m == n):
                label = " on sqlite" if durable else ""
                progress.step(
                    f"apscheduler latency N={n:,}{label} "
                    f"({r + 1}/{cfg.repeat}, {cfg.latency_window:g} s)"
                )
                _latency(cfg, results, n, durable)
                progress.done()
    for case, n, concurrency, per_task, durable in throughput:
        for r in range(cfg.repeat):
            label = " on sqlite" if durable else ""
            progress.step(f"apscheduler throughput {case}{label} ({r + 1}/{cfg.repeat})")
            _throughput(cfg, results, case, n, concurrency, per_task, durable)
            progress.done()
    for n in cfg.claim_sizes:
        for r in range(cfg.repeat):
            progress.step(f"apscheduler claim N={n:,} ({r + 1}/{cfg.repeat})")
            _claim_timed(results, n)
            progress.done()
        progress.step(f"apscheduler claim N={n:,} (tracemalloc)")
        _claim_traced(results, n)
        progress.done()


def _latency(cfg: Config, results: Results, n: int, durable: bool = False) -> None:
    recorder = _Recorder()
    with _jobstores(results, durable) as (system, jobstores):
        sched = _scheduler(recorder, jobstores)
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
        system,
        latency_scenario.case_name(n),
        recorder.records,
        expected,
        missed_events=recorder.missed_in_window,
    )


def _throughput(
    cfg: Config,
    results: Results,
    case: str,
    n: int,
    concurrency: int,
    per_task: int,
    durable: bool = False,
) -> None:
    recorder = _Recorder()
    with _jobstores(results, durable) as (system, jobstores):
        sched = _scheduler(recorder, jobstores)
        sched.start(paused=True)
        now = int(time.time())
        first = _utc(now - per_task + 1)  # slots now-per_task+1 ... now: per_task due each
        last = first + timedelta(seconds=per_task - 1)  # and no more, however long adding takes
        try:
            for i in range(n):
                sched.add_job(
                    noop_job,
                    IntervalTrigger(seconds=1, start_date=first, end_date=last, timezone=UTC),
                    id=f"t{i}",
                    next_run_time=first,  # else a past start_date skips to the next slot
                    coalesce=False,
                    misfire_grace_time=None,
                    max_instances=concurrency,
                )
            expected = n * per_task
            with gc_quiet():
                cpu0 = time.process_time()
                t0 = time.perf_counter()
                sched.resume()
                done = wait_until(
                    lambda: recorder.executed >= expected, time.monotonic() + cfg.timeout, 0.001
                )
                elapsed = time.perf_counter() - t0
                cpu = time.process_time() - cpu0
            executed = recorder.executed
        finally:
            # A durable store's engine is disposed of once the current pass is over.
            sched.shutdown(wait=False)
    executed = min(executed, expected)  # the trigger ends at the backlog: no more run
    if not done:
        results.errors.append(
            f"{system} throughput {case}: {executed:,} of {expected:,} runs in {elapsed:.1f} s"
        )
    throughput_scenario.record_drain(results, case, system, executed, elapsed, cpu)


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
