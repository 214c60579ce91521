"""The 13 scheduler tests of InfluxDB's scheduler_test.go, ported and made deterministic.

Unless noted: scheduler created with now=5, tasks ``every 1s``, latest_completed=5,
concurrency 1. Time moves only through ``tick(now)``; every step waits for the actor
system to settle instead of sleeping.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from actors import Scheduler
from protocols import MemoryStore, RunNotFound, RunStatus, Task, TaskOptions, TaskStatus
from protocols.testing.manual import ManualExecutor
from tests.conftest import Harness


def test_cancelation(harness: Harness) -> None:
    """Claim creates the run for 5; cancel ends it; a second cancel is RunNotFound."""
    task = harness.add_task(latest_completed=4)
    harness.scheduler.claim_task(task)
    harness.settle()
    assert harness.running() == [5]
    run_id = harness.run_id(5)

    harness.scheduler.cancel_run(task.id, run_id)
    harness.settle()

    assert harness.running() == []
    assert harness.status(run_id) is RunStatus.CANCELED
    assert harness.store.currently_running(task.id) == []
    with pytest.raises(RunNotFound):
        harness.scheduler.cancel_run(task.id, run_id)


def test_start_script_on_claim(harness: Harness) -> None:
    """A due cron task does nothing on claim; a backlogged every-1s task starts both runs."""
    cron = harness.add_task("cron", cron="* * * * *", latest_completed=3)
    harness.scheduler.claim_task(cron)
    harness.settle()
    assert harness.executor.running("cron") == []

    task = harness.add_task("t1", latest_completed=3, concurrency=99)
    harness.scheduler.claim_task(task)
    harness.settle()
    assert harness.running() == [4, 5]

    for run in harness.executor.running("t1"):
        harness.executor.succeed(run.run_id)
    harness.settle()
    assert harness.running() == []
    assert harness.store.currently_running("t1") == []
    statuses = [run.status for run in harness.store.find_runs("t1")]
    assert statuses == [RunStatus.SUCCESS, RunStatus.SUCCESS]


def test_dont_run_inactive_tasks(harness: Harness) -> None:
    """An inactive task creates no run on claim nor on tick."""
    task = harness.add_task(status=TaskStatus.INACTIVE, concurrency=2)
    harness.scheduler.claim_task(task)
    harness.settle()
    assert harness.executor.executed == []
    harness.tick(6)
    assert harness.executor.executed == []
    assert harness.store.find_runs(task.id) == []


def test_create_next_run_on_tick(harness: Harness) -> None:
    """Ticks create one run per slot up to the concurrency; cancelling frees the slots."""
    task = harness.add_task(concurrency=2)
    harness.scheduler.claim_task(task)
    harness.settle()
    assert harness.running() == []

    harness.tick(6)
    assert harness.running() == [6]
    harness.tick(7)
    assert harness.running() == [6, 7]
    harness.tick(8)
    assert harness.running() == [6, 7]

    harness.scheduler.cancel_run(task.id, harness.run_id(6))
    harness.scheduler.cancel_run(task.id, harness.run_id(7))
    harness.settle()
    assert harness.running() == [8]


def test_log_statistics_on_success(harness: Harness) -> None:
    """A successful run's statistics are logged as one JSON line."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)
    harness.tick(6)
    run_id = harness.run_id(6)
    harness.executor.succeed(run_id, statistics={"foo": ["bar"]})
    harness.settle()

    decoded = []
    for entry in harness.find(run_id).log:
        try:
            decoded.append(json.loads(entry.message))
        except ValueError:
            continue
    assert {"foo": ["bar"]} in decoded
    messages = [entry.message for entry in harness.find(run_id).log]
    assert messages[0] == 'Started task from script: "job"'
    assert messages[-1] == "Completed successfully"


def test_release(harness: Harness) -> None:
    """Releasing a task cancels every run in flight."""
    task = harness.add_task(concurrency=99)
    harness.scheduler.claim_task(task)
    harness.tick(6)
    harness.tick(7)
    assert harness.running() == [6, 7]
    run_ids = [harness.run_id(6), harness.run_id(7)]

    harness.scheduler.release_task(task.id)

    # release_task returns with the runs cancelled and recorded.
    assert harness.running() == []
    assert [harness.status(run_id) for run_id in run_ids] == [RunStatus.CANCELED] * 2
    assert harness.store.currently_running(task.id) == []


def test_update_task(make_harness) -> None:  # type: ignore[no-untyped-def]
    """Updating schedule and concurrency takes effect from the next tick."""
    harness: Harness = make_harness(now=3059)
    task = harness.add_task(cron="* * * * *", latest_completed=3000)
    harness.scheduler.claim_task(task)
    harness.tick(3060)
    assert harness.running() == [3060]
    harness.executor.succeed(harness.run_id(3060))
    harness.settle()
    assert harness.running() == []

    updated = Task(
        id=task.id,
        options=TaskOptions(name=task.id, cron="0 * * * *", concurrency=50),
        script=task.script,
    )
    harness.store.update_task(updated)
    harness.scheduler.update_task(updated)
    harness.tick(3061)
    assert harness.running() == []
    harness.tick(3600)
    assert harness.running() == [3600]


def test_queue(make_harness) -> None:  # type: ignore[no-untyped-def]
    """Manual runs are served first, in order, before the due scheduled run."""
    harness: Harness = make_harness(now=3059)
    task = harness.add_task(cron="* * * * *", latest_completed=3000)
    for scheduled_for in (120, 180, 240):
        harness.store.force_run(task.id, scheduled_for)

    harness.scheduler.claim_task(task)
    harness.settle()
    assert harness.running() == [120]
    harness.executor.succeed(harness.run_id(120))
    harness.settle()
    assert harness.running() == [180]

    harness.tick(3062)
    assert harness.running() == [180]
    harness.scheduler.cancel_run(task.id, harness.run_id(180))
    harness.settle()
    assert harness.running() == [240]
    harness.scheduler.cancel_run(task.id, harness.run_id(240))
    harness.settle()
    assert harness.running() == [3060]
    harness.scheduler.cancel_run(task.id, harness.run_id(3060))
    harness.settle()
    assert harness.running() == []
    order = [run.scheduled_for for run in harness.executor.executed]
    assert order == [120, 180, 240, 3060]


def test_run_status(harness: Harness) -> None:
    """Each outcome is recorded as the run's final status."""
    task = harness.add_task(concurrency=99)
    harness.scheduler.claim_task(task)

    harness.tick(6)
    ok = harness.run_id(6)
    assert harness.status(ok) is RunStatus.STARTED
    harness.executor.succeed(ok)
    harness.settle()
    assert harness.status(ok) is RunStatus.SUCCESS

    harness.tick(7)
    wait_error = harness.run_id(7)
    harness.executor.fail_wait(wait_error, RuntimeError("wait broke"))
    harness.settle()
    assert harness.status(wait_error) is RunStatus.FAILED

    harness.tick(8)
    result_error = harness.run_id(8)
    harness.executor.fail(result_error, RuntimeError("query broke"))
    harness.settle()
    assert harness.status(result_error) is RunStatus.FAILED

    harness.tick(9)
    canceled = harness.run_id(9)
    harness.scheduler.cancel_run(task.id, canceled)
    harness.settle()
    assert harness.status(canceled) is RunStatus.CANCELED
    for run_id in (ok, wait_error, result_error, canceled):
        assert harness.find(run_id).finished_at is not None


def test_run_failure_cleanup(harness: Harness) -> None:
    """Failures do not block later runs and their log lines name the stage and reason."""
    task = harness.add_task()
    harness.scheduler.claim_task(task)

    harness.tick(6)
    first = harness.run_id(6)
    harness.executor.fail_wait(first, RuntimeError("forced wait failure"))
    harness.settle()
    assert "Waiting for execution result: forced wait failure" in [
        entry.message for entry in harness.find(first).log
    ]

    harness.tick(7)
    second = harness.run_id(7)
    harness.executor.fail(second, RuntimeError("forced run failure"))
    harness.settle()
    assert "Run failed to execute: forced run failure" in [
        entry.message for entry in harness.find(second).log
    ]

    harness.executor.fail_next_execute(RuntimeError("forced execute failure"))
    harness.tick(8)
    (third,) = [run for run in harness.store.find_runs(task.id) if run.scheduled_for == 8]
    assert third.status is RunStatus.FAILED
    assert "Run failed to begin execution: forced execute failure" in [
        entry.message for entry in third.log
    ]
    assert harness.running() == []

    harness.tick(9)
    assert harness.running() == [9]


def test_metrics(harness: Harness) -> None:
    """Claims, runs in flight, completions, errors and queue deltas are counted per task."""
    task = harness.add_task(concurrency=99)
    harness.scheduler.claim_task(task)
    m = harness.metric
    assert m("task_scheduler_claims_active") == 1
    assert m("task_scheduler_claims_complete_total", {"status": "success"}) == 1

    harness.tick(6)
    assert m("task_scheduler_total_runs_active") == 1
    assert m("task_scheduler_runs_active", {"task_id": task.id}) == 1
    assert m("task_scheduler_run_queue_delta_count", {"task_id": "all"}) == 1
    assert m("task_scheduler_run_queue_delta_count", {"task_id": task.id}) == 1

    harness.tick(7)
    assert m("task_scheduler_total_runs_active") == 2
    assert m("task_scheduler_runs_active", {"task_id": task.id}) == 2
    assert m("task_scheduler_run_queue_delta_count", {"task_id": "all"}) == 2

    harness.executor.succeed(harness.run_id(6))
    harness.settle()
    assert m("task_scheduler_total_runs_active") == 1
    assert m("task_scheduler_runs_active", {"task_id": task.id}) == 1
    assert m("task_scheduler_runs_complete_total", {"task_id": task.id, "status": "success"}) == 1
    assert m("task_scheduler_total_runs_complete_total", {"status": "success"}) == 1
    assert m("task_scheduler_run_execution_delta_count", {"task_id": "all"}) == 1

    harness.executor.fail(harness.run_id(7), RuntimeError("forced failure"))
    harness.settle()
    assert m("task_scheduler_total_runs_active") == 0
    assert m("task_scheduler_runs_active", {"task_id": task.id}) == 0
    assert m("task_scheduler_runs_complete_total", {"task_id": task.id, "status": "failure"}) == 1
    assert m("task_scheduler_errors_counter_total", {"error_type": "internal error"}) == 1

    harness.scheduler.release_task(task.id)
    assert m("task_scheduler_runs_active", {"task_id": task.id}) is None
    for status in ("success", "failure"):
        labels = {"task_id": task.id, "status": status}
        assert m("task_scheduler_runs_complete_total", labels) is None
    assert m("task_scheduler_run_queue_delta_count", {"task_id": task.id}) is None
    assert m("task_scheduler_claims_active") == 0


def test_stop_waits_for_executor() -> None:
    """stop() does not return while executor.wait() blocks, and returns once it is released."""
    store = MemoryStore()
    executor = ManualExecutor()
    scheduler = Scheduler(store, executor, now=5, registry=None)
    task = Task(id="t1", options=TaskOptions(name="t1", every=1), script="job")
    store.add_task(task, latest_completed=5)
    scheduler.start()
    scheduler.claim_task(task)
    executor.block_wait()

    stopper = threading.Thread(target=scheduler.stop)
    stopper.start()
    assert executor.wait_until(lambda ex: ex.waiters >= 1, timeout=30)
    assert stopper.is_alive()

    executor.release_wait()
    stopper.join(timeout=30)
    assert not stopper.is_alive()


def test_with_ticker() -> None:
    """With the wall-clock ticker, exactly one run is created once the second changes."""
    store = MemoryStore()
    executor = ManualExecutor()
    now = int(time.time())
    task = Task(id="t1", options=TaskOptions(name="t1", every=1), script="job")
    store.add_task(task, latest_completed=now)
    scheduler = Scheduler(store, executor, now=now, tick_interval=0.01)
    scheduler.start()
    try:
        scheduler.claim_task(task)
        assert executor.wait_until(lambda ex: len(ex.executed) >= 1, timeout=30)
        assert scheduler.settle(30)
        # Concurrency 1 and the run still in flight: nothing else can start.
        runs = store.find_runs(task.id)
        assert len(runs) == 1
        assert runs[0].scheduled_for > now
        assert len(executor.executed) == 1
    finally:
        scheduler.stop()
