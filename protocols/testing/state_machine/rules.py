"""The machine's rules: the operations it applies, each followed by the check.

Every rule ends with :meth:`~.invariants.CheckedMachine.step` (saying which runs it
expects to end, and how) or :meth:`~.invariants.CheckedMachine.refused`. To add a
family of rules, subclass :class:`SchedulerMachine` (or add methods here) with
``@rule`` methods that end the same way, and extend ``check_after_step`` for their
invariants.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Iterable

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from protocols.errors import (
    RunAlreadyQueued,
    RunNotDueYet,
    RunNotFinished,
    RunNotFound,
    TaskAlreadyClaimed,
    TaskAlreadyExists,
    TaskNotClaimed,
    TaskNotFound,
)
from protocols.model import RunStatus
from protocols.testing.hostile import CancelMode, FailingLogger, FailingMetrics, HostileExecutor
from protocols.testing.state_machine.base import ScheduleSpec
from protocols.testing.state_machine.faults import RUN_PATH
from protocols.testing.state_machine.invariants import CheckedMachine
from protocols.testing.state_machine.model import DONE, EXECUTING, LEFT, ClaimModel

__all__ = ["SchedulerMachine"]


class SchedulerMachine(CheckedMachine):
    """Random operations on a real Scheduler, checked against a model after every step.

    Override :meth:`make_store` (and :meth:`close_store`) to check another store;
    ``task_ids``, ``max_concurrency``, ``max_every``, ``epochs``, ``zones``,
    ``crons`` and ``settle_timeout`` tune the machine.
    """

    def teardown(self) -> None:
        """Stop the scheduler and check nothing is left behind (unless a step failed)."""
        # A rule that failed outside step() leaves the model behind too: clean up only,
        # or a second failure would hide the first.
        failed = self._broken or sys.exc_info()[1] is not None
        try:
            if self._stopper is not None:
                self._stopper.join(self.settle_timeout)
            if self.faulty is not None:
                self.faulty.disarm()
            if failed:
                self.executor.release_wait()
                for run in self.executor.running():
                    self.executor.cancel(run.run_id)
                self.scheduler.stop()
            elif not self._stopped:
                self._stop()
        finally:
            self.close_store(self.store)

    # -- tasks and claims -----------------------------------------------------------

    @initialize(data=st.data(), lead=st.one_of(st.integers(0, 15 * 60), st.integers(0, 90 * 60)))
    def setup_tasks(self, data: st.DataObject, lead: int) -> None:
        """Move to an epoch (``lead`` s before it); add 1-3 tasks, claim most of them."""
        instant, zone = data.draw(st.sampled_from(self.epochs), label="epoch")
        self.set_epoch(instant, zone)
        self.now = max(self.now, instant - lead)
        self.scheduler.tick(self.now)
        count = data.draw(st.integers(1, len(self.task_ids)), label="tasks")
        for task_id in self.task_ids[:count]:
            spec = data.draw(self.task_specs(), label=task_id)
            self._add(task_id, spec)
            if data.draw(st.sampled_from([True, True, True, False]), label="claim"):
                task = self.model.tasks[task_id].task
                self.scheduler.claim_task(task)
                self.model.claims_ok += 1
                self.model.claims[task_id] = ClaimModel(task, deque())
            self.step({})

    @rule(data=st.data())
    def add_task(self, data: st.DataObject) -> None:
        """Add a task to the store (an existing id is refused with TaskAlreadyExists)."""
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        spec = data.draw(self.task_specs(), label="spec")
        if task_id in self.model.claims and task_id not in self.model.tasks:
            return  # removed underneath, still claimed: the scheduler must notice first
        if task_id in self.model.tasks:
            task = self._task(task_id, spec.schedule, spec.offset, spec.concurrency, spec.active)
            self.refused(TaskAlreadyExists, lambda: self.store.add_task(task))
            return
        self._add(task_id, spec)
        self.step({})

    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        """Claim a task: refused if claimed already or unknown to the store."""
        task_id = data.draw(st.sampled_from((*self.task_ids, "ghost")), label="task_id")
        self._claim(task_id)

    def _claim(self, task_id: str) -> None:
        model = self.model
        if task_id in model.claims:
            model.claims_failed += 1
            task = model.claims[task_id].task
            self.refused(TaskAlreadyClaimed, lambda: self.scheduler.claim_task(task))
            return
        if task_id not in model.tasks:
            model.claims_failed += 1
            ghost = self._ghost(task_id)
            self.refused(TaskNotFound, lambda: self.scheduler.claim_task(ghost))
            return
        in_store = sorted(run.id for run in self.store.currently_running(task_id))
        expected = sorted(r.id for r in model.in_store(task_id))
        assert in_store == expected, (
            f"currently_running({task_id!r}) lists {in_store}, expected {expected}"
        )
        # Runs whose outcome the store has are completed, not executed; runs whose
        # finish_run failed and whose status is not terminal are executed again.
        for run in model.in_store(task_id):
            if run.state == DONE and run.unfinished and not run.recorded:
                run.state = LEFT
            run.completing = run.recorded
        # A run left started after max_executions executions (the store counts them) is
        # abandoned: completed failed, not executed again.
        for run in model.left(task_id):
            if run.recorded:
                continue
            stored = self.store.find_run(task_id, run.id)
            executions = max(stored.executions, 1)
            if stored.status is RunStatus.STARTED and executions >= self.max_executions:
                run.completing = run.abandoned = True
        resume = deque(r.id for r in model.left(task_id) if not (r.recorded or r.abandoned))
        task = model.tasks[task_id].task
        self.scheduler.claim_task(task)
        model.claims_ok += 1
        model.claims[task_id] = ClaimModel(task, resume)
        self.step({})

    @rule(
        data=st.data(),
        concurrency=st.integers(1, 3),
        active=st.sampled_from([True, True, False]),
        skip_missed=st.sampled_from([False, False, False, True]),
    )
    def update(
        self, data: st.DataObject, concurrency: int, active: bool, skip_missed: bool
    ) -> None:
        """Update a task in the store, then in the scheduler (TaskNotClaimed if not claimed).

        The schedule and the offset change or stay; ``skip_missed`` passes
        ``latest_completed=now`` (no catch-up).
        """
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        model = self.model.tasks.get(task_id)
        if model is None:
            ghost = self._ghost(task_id)
            if task_id not in self.model.claims:
                self.refused(TaskNotClaimed, lambda: self.scheduler.update_task(ghost))
                return
            # Removed from the store underneath: the update finds out, and releases it.
            expect: dict[int, RunStatus] = {}
            try:
                self.scheduler.update_task(ghost)
            except TaskNotFound:
                pass
            else:
                raise AssertionError(f"update_task({task_id!r}) of a removed task raised nothing")
            self._vanished(task_id, expect)
            self.step(expect)
            return
        old = model.task.options
        kept = ScheduleSpec(every=old.every, cron=old.cron, timezone=old.timezone)
        schedule = data.draw(st.one_of(st.just(kept), self.schedules()), label="schedule")
        offset = data.draw(st.one_of(st.just(old.offset), self.offsets()), label="offset")
        task = self._task(task_id, schedule, offset, concurrency, active)
        if skip_missed:
            self.store.update_task(task, latest_completed=self.now)
            model.latest_completed = max(model.latest_completed, self.now)
        else:
            self.store.update_task(task)
        model.task = task
        model.max_concurrency = max(model.max_concurrency, concurrency)
        claim = self.model.claims.get(task_id)
        if claim is None:
            self.refused(TaskNotClaimed, lambda: self.scheduler.update_task(task))
            return
        claim.task = task
        self.scheduler.update_task(task)
        self.step({})

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """Release a task: its runs in flight end canceled (TaskNotClaimed if not claimed)."""
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        self._release(task_id)

    def _release(self, task_id: str) -> None:
        claim = self.model.claims.get(task_id)
        if claim is None:
            self.refused(TaskNotClaimed, lambda: self.scheduler.release_task(task_id))
            return
        expect: dict[int, RunStatus] = {}
        self.cancel_runs(self.model.executing(task_id), expect)
        del self.model.claims[task_id]
        for run_id in claim.resume:  # never started: still in progress in the store
            self.model.runs[run_id].state = LEFT
        self.scheduler.release_task(task_id)
        self.step(expect)

    @precondition(lambda self: bool(self._claimed_executing()))
    @rule(data=st.data(), mode=st.sampled_from(["slow", "raise"]))
    def release_and_claim_again(self, data: st.DataObject, mode: str) -> None:
        """Release a task whose runs execute, their cancels completing later (a remote
        job) or raising, and claim it again at once: those runs keep their slots until
        they end, and none is executed a second time while it still executes."""
        task_id = data.draw(st.sampled_from(self._claimed_executing()), label="task_id")
        executor = self.executor
        before = executor.cancel_mode if isinstance(executor, HostileExecutor) else None
        if isinstance(executor, HostileExecutor):
            executor.cancel_mode = CancelMode(mode)
        try:
            self._release(task_id)
        finally:
            if isinstance(executor, HostileExecutor) and before is not None:
                executor.cancel_mode = before
        self._claim(task_id)

    def _claimed_executing(self) -> list[str]:
        """Claimed tasks with runs executing, by id."""
        return sorted({r.task_id for r in self.model.executing() if r.task_id in self.model.claims})

    # -- runs -----------------------------------------------------------------------

    @rule(data=st.data(), index=st.integers(0, 10))
    def cancel_run(self, data: st.DataObject, index: int) -> None:
        """Cancel a run in flight through the scheduler; refused for unknown tasks and runs."""
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        if task_id not in self.model.claims:
            self.refused(TaskNotFound, lambda: self.scheduler.cancel_run(task_id, 1))
            return
        executing = self.model.executing(task_id)
        if not executing:
            finished = [r.id for r in self.model.runs.values() if r.task_id == task_id]
            run_id = finished[index % len(finished)] if finished else 10**9
            self.refused(RunNotFound, lambda: self.scheduler.cancel_run(task_id, run_id))
            return
        run = executing[index % len(executing)]
        expect: dict[int, RunStatus] = {}
        self.cancel_runs([run], expect)
        self.scheduler.cancel_run(task_id, run.id)
        self.step(expect)

    @precondition(lambda self: bool(self.executor.running()))
    @rule(
        picks=st.lists(
            st.tuples(
                st.integers(0, 10),
                st.sampled_from(["success", "success", "fail", "fail_wait", "cancel"]),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def complete(self, picks: list[tuple[int, str]]) -> None:
        """Settle 1-3 runs at the executor: success, failure, wait error, or cancel."""
        expect: dict[int, RunStatus] = {}
        for index, outcome in picks:
            running = sorted(self.executor.running(), key=lambda r: r.run_id)
            running = [r for r in running if r.run_id not in expect]
            if not running:
                break
            run_id = running[index % len(running)].run_id
            if outcome == "success":
                self.executor.succeed(run_id, {"n": run_id})
                expect[run_id] = RunStatus.SUCCESS
            elif outcome == "fail":
                self.executor.fail(run_id, "boom")
                expect[run_id] = RunStatus.FAILED
            elif outcome == "fail_wait":
                self.executor.fail_wait(run_id, ConnectionError("lost"))
                expect[run_id] = RunStatus.FAILED
            else:
                self.executor.cancel(run_id)
                expect[run_id] = RunStatus.CANCELED
        self.step(expect)

    @precondition(lambda self: self.pending_execute_errors < 2)
    @rule()
    def fail_next_execute(self) -> None:
        """Make the next ``execute`` call raise (the run then fails)."""
        self.executor.fail_next_execute(OSError("no worker"))
        self.pending_execute_errors += 1
        self.step({})

    @rule(data=st.data(), delta=st.integers(-20, 20))
    def force_run(self, data: st.DataObject, delta: int) -> None:
        """Queue a manual run through the scheduler (for a past or future slot)."""
        task_id = data.draw(st.sampled_from((*self.task_ids, "ghost")), label="task_id")
        slot = self.now + delta
        model = self.model.tasks.get(task_id)
        if model is None:
            self.refused(TaskNotFound, lambda: self.scheduler.force_run(task_id, slot))
            return
        if any(s == slot for _, s in model.queue):
            self.refused(RunAlreadyQueued, lambda: self.scheduler.force_run(task_id, slot))
            return
        run = self.scheduler.force_run(task_id, slot)
        self._queued(model, run, slot)
        self.step({})

    @rule(data=st.data(), index=st.integers(0, 10))
    def retry_run(self, data: st.DataObject, index: int) -> None:
        """Retry a finished run through the scheduler; refused for runs in flight or unknown."""
        task_id = data.draw(st.sampled_from(self.task_ids), label="task_id")
        model = self.model.tasks.get(task_id)
        if model is None:
            self.refused(TaskNotFound, lambda: self.scheduler.retry_run(task_id, 1))
            return
        mine = self.model.of_task(task_id)
        # Finished in the store: finish_run called, or at least a terminal status.
        finished = [r for r in mine if r.state == DONE and (not r.unfinished or r.recorded)]
        if not finished:
            unfinished = [r for r in mine if r.state == EXECUTING]
            if unfinished:
                run_id = unfinished[index % len(unfinished)].id
                self.refused(RunNotFinished, lambda: self.scheduler.retry_run(task_id, run_id))
            else:
                self.refused(RunNotFound, lambda: self.scheduler.retry_run(task_id, 10**9))
            return
        old = finished[index % len(finished)]
        if any(s == old.slot for _, s in model.queue):
            self.refused(RunAlreadyQueued, lambda: self.scheduler.retry_run(task_id, old.id))
            return
        run = self.scheduler.retry_run(task_id, old.id)
        assert run.scheduled_for == old.slot, (run, old)
        assert run.id != old.id, (run, old)
        self._queued(model, run, old.slot)
        self.step({})

    @rule(data=st.data())
    def remove_task(self, data: st.DataObject) -> None:
        """Remove a task from the store underneath the scheduler (claimed or not).

        A claimed one is released by the scheduler when it next asks the store about
        it (counted once as ``not found``); its runs in flight are cancelled.
        """
        present = sorted(self.model.tasks)
        if not present:
            return
        task_id = data.draw(st.sampled_from(present), label="task_id")
        self._remove(task_id)

    @precondition(lambda self: bool(self._claimed_in_store()))
    @rule(data=st.data())
    def remove_claimed_task_and_tick(self, data: st.DataObject) -> None:
        """Remove a claimed task from the store, then move time to when it is next due:
        the scheduler asks the store about it, finds it gone, counts it once as ``not
        found`` and releases it (unless its slots are all busy: then when one frees)."""
        task_id = data.draw(st.sampled_from(self._claimed_in_store()), label="task_id")
        model = self.model
        due = self.now
        if model.tasks[task_id].task.active and not model.tasks[task_id].queue:
            due = max(due, model.due(task_id, model.next_slot(task_id)))
        self._remove(task_id)
        self.tick(due - self.now)

    def _claimed_in_store(self) -> list[str]:
        """Claimed tasks the store still has, by id."""
        return sorted(task_id for task_id in self.model.claims if task_id in self.model.tasks)

    def _remove(self, task_id: str) -> None:
        self.store.remove_task(task_id)
        removed = self.model.tasks.pop(task_id)
        self.model.concurrency_ever[task_id] = removed.max_concurrency
        for run in self.model.runs.values():
            if run.task_id == task_id:
                run.removed = True
        # Runs of a claim waiting to be resumed stay with it: the scheduler learns of
        # the removal when it next asks the store, and may start them before (their
        # store writes then fail, and are counted).
        self.step({})

    @rule(data=st.data(), count=st.integers(80, 120))
    def churn(self, data: st.DataObject, count: int) -> None:
        """Claim and release an idle task many times: what the scheduler holds stays bounded.

        An active task (due later) is chosen when there is one: each claim of it indexes
        its due time, and each release leaves that item to be dropped.
        """
        model = self.model
        idle = [
            task_id
            for task_id, task in sorted(model.tasks.items())
            if task_id not in model.claims
            and not model.executing(task_id)
            and not model.in_store(task_id)
            and not task.queue
            and (not task.task.active or model.due(task_id, model.next_slot(task_id)) > self.now)
        ]
        if not idle:
            return
        active = [task_id for task_id in idle if model.tasks[task_id].task.active]
        task = model.tasks[data.draw(st.sampled_from(active or idle), label="task_id")].task
        for _ in range(count):
            self.scheduler.claim_task(task)
            self.scheduler.release_task(task.id)
        model.claims_ok += count
        self.step({})

    # -- hostile surroundings -------------------------------------------------------

    @rule(mode=st.sampled_from(["prompt", "slow", "raise"]))
    def set_cancel_mode(self, mode: str) -> None:
        """From now on a cancel completes at once, later (a remote job), or raises."""
        if isinstance(self.executor, HostileExecutor):
            self.executor.cancel_mode = CancelMode(mode)
        self.step({}, quiet=True)

    @precondition(
        lambda self: (
            isinstance(self.executor, HostileExecutor) and bool(self.executor.pending_cancels)
        )
    )
    @rule()
    def finish_cancels(self) -> None:
        """The slow cancels complete: those runs end canceled."""
        assert isinstance(self.executor, HostileExecutor)
        pending = self.executor.pending_cancels
        self.executor.finish_cancels()
        self.step(dict.fromkeys(pending, RunStatus.CANCELED))

    @rule(
        events=st.sampled_from(
            [
                None,
                ("run_finished",),
                ("run_failed",),
                ("run_finished", "run_failed", "store_call_failed", "run_cancel_failed"),
            ]
        )
    )
    def break_logger(self, events: tuple[str, ...] | None) -> None:
        """The logger raises from now on (for every event, or for some)."""
        if isinstance(self.logger, FailingLogger):
            self.logger.events = None if events is None else frozenset(events)
            self.logger.enabled = True
        self.step({}, quiet=True)

    @rule()
    def mend_logger(self) -> None:
        """The logger works again."""
        if isinstance(self.logger, FailingLogger):
            self.logger.enabled = False
        self.step({}, quiet=True)

    @rule(broken=st.booleans())
    def break_metrics(self, broken: bool) -> None:
        """Metric updates of runs raise from now on (after updating), or work again."""
        if isinstance(self.metrics, FailingMetrics):
            self.metrics.enabled = broken
        self.step({}, quiet=True)

    @precondition(lambda self: self.faulty is not None)
    @rule(call=st.sampled_from(RUN_PATH), count=st.integers(1, 3))
    def arm_store_fault(self, call: str, count: int) -> None:
        """The next ``count`` calls of one store call of the run path fail (transiently)."""
        assert self.faulty is not None
        self.faulty.arm(call, count)
        self.step({}, quiet=True)

    @precondition(lambda self: bool(self.model.executing()) and not self._stopped)
    @rule()
    def stop_with_grace(self) -> None:
        """stop(grace) while runs execute: they finish within the grace; runs waiting to
        be resumed never start, and stop does not wait for them."""
        if isinstance(self.logger, FailingLogger):
            self._stop_with_grace(sorted(self.model.claims))

    @precondition(lambda self: bool(self.model.tasks) and not self._stopped)
    @rule(data=st.data(), extra=st.integers(1, 3), mark=st.sampled_from(["created", "started"]))
    def resume_backlog_and_stop_with_grace(
        self, data: st.DataObject, extra: int, mark: str
    ) -> None:
        """A crash leaves more runs of a task in progress than its concurrency; a new
        scheduler claims it (runs beyond the concurrency wait to be resumed) and stops
        with a grace: it waits for the runs executing only, never for those waiting."""
        if not isinstance(self.logger, FailingLogger):
            return
        task_id = data.draw(st.sampled_from(sorted(self.model.tasks)), label="task_id")
        model = self.model.tasks[task_id]
        claimed = sorted(self.model.claims)
        self._stop()
        for _ in range(model.task.options.concurrency + extra):
            if not model.queue:  # a manual run: created at once, whatever the schedule
                self._queued(model, self.store.force_run(task_id, self.now), self.now)
            self._crash([task_id], mark)
        self._start_again()
        self._claim(task_id)
        self._stop_with_grace(claimed)

    def _stop_with_grace(self, reclaim: Iterable[str]) -> None:
        """stop(grace) with the runs of claimed tasks ending while it drains; then a new
        scheduler starts and claims ``reclaim``.

        Runs of released tasks whose cancel is still completing are not waited for:
        they end canceled when stop waits for the executor.
        """
        logger = self.logger
        assert isinstance(logger, FailingLogger)
        grace, bound = 4.0, 2.0
        draining = logger.calls.get("scheduler_draining", 0) + 1
        executing = [r for r in self.model.executing() if r.task_id in self.model.claims]
        lingering = [r for r in self.model.executing() if r.task_id not in self.model.claims]
        stopper = threading.Thread(
            target=self.scheduler.stop, kwargs={"grace": grace}, name="machine-stop"
        )
        self._stopper = stopper
        stopper.start()
        if not logger.wait_for("scheduler_draining", self.settle_timeout, count=draining):
            self._broken = True
            raise AssertionError("stop(grace) never started draining")
        for run in executing:
            self.executor.succeed(run.id)
        stopper.join(bound)
        if stopper.is_alive():
            self._broken = True
            waiting = sorted(r for c in self.model.claims.values() for r in c.resume)
            raise AssertionError(
                f"stop(grace={grace}) still waits {bound} s after every run executing ended: "
                f"it waits for runs that will never start (waiting to be resumed: {waiting})"
            )
        for claim in self.model.claims.values():
            for run_id in claim.resume:
                self.model.runs[run_id].state = LEFT
        self.model.claims.clear()
        self._stopped = True
        expect = dict.fromkeys((r.id for r in lingering), RunStatus.CANCELED)
        expect.update(dict.fromkeys((r.id for r in executing), RunStatus.SUCCESS))
        self.step(expect)
        self._check_nothing_left()
        self._start_again(reclaim)

    # -- time -----------------------------------------------------------------------

    @rule(delta=st.integers(0, 4))
    def tick(self, delta: int) -> None:
        """Move time forward a little (tasks whose store call failed are retried)."""
        self.now += delta
        self.scheduler.tick(self.now)
        self._ticking = True
        try:
            self.step({})
        finally:
            self._ticking = False

    @rule(delta=st.integers(5, 60))
    def jump(self, delta: int) -> None:
        """Move time forward a lot: a backlog of due slots, caught up one run per slot."""
        self.tick(delta)

    @rule(delta=st.integers(60, 45 * 60))
    def jump_minutes(self, delta: int) -> None:
        """Move time forward by minutes: cron slots come due, across a DST change too."""
        self.tick(delta)

    @rule(delta=st.integers(3600, 3 * 3600))
    def jump_hours(self, delta: int) -> None:
        """Move time forward by hours: through the repeated or skipped hour of a DST change."""
        self.tick(delta)

    @rule(delta=st.integers(1, 5))
    def tick_backwards(self, delta: int) -> None:
        """A tick into the past changes nothing."""
        self.scheduler.tick(self.now - delta)
        self.step({}, quiet=True)
        assert self.scheduler.now() == self.now

    # -- crash and restart ----------------------------------------------------------

    @rule(
        data=st.data(),
        mark=st.sampled_from(["created", "started", "started", "recorded"]),
        reclaim=st.sampled_from([True, True, False]),
    )
    def restart(self, data: st.DataObject, mark: str, reclaim: bool) -> None:
        """Stop; leave runs in progress as a crashed process would; start a new Scheduler,
        which claims the tasks claimed before (``reclaim``) or none.

        The crashed process got each run as far as ``mark``: created, started, or its
        outcome recorded without finish_run (the next claim must complete it, not
        execute it again).
        """
        crashed = data.draw(st.lists(st.sampled_from(self.task_ids), max_size=4), label="crashed")
        claimed = sorted(self.model.claims) if reclaim else []
        self._stop()
        self._crash(crashed, mark)
        self._start_again(claimed)

    def _crash(self, crashed: list[str], mark: str) -> None:
        for task_id in crashed:
            if task_id not in self.model.tasks:
                continue
            try:
                created = self.store.create_next_run(task_id, self.now)
            except RunNotDueYet as exc:
                self._not_due(task_id, exc.due_at)
                continue
            run = created.created
            self._created(task_id, self.now, run, claimed=False)
            if mark != "created":
                self.store.update_run_state(task_id, run.run_id, self.clock(), RunStatus.STARTED)
            if mark == "recorded":
                self.store.update_run_state(task_id, run.run_id, self.clock(), RunStatus.SUCCESS)
                model = self.model.runs[run.run_id]
                model.recorded = True
                model.statuses = [RunStatus.STARTED, RunStatus.SUCCESS]

    def _start_again(self, claim: Iterable[str] = ()) -> None:
        """A new Scheduler on the same store; it claims ``claim`` (those still in the store)."""
        self._stopped = False
        self._threads_before = set(threading.enumerate())
        self._reopen()  # a new process opens the store again
        self.scheduler = self._new_scheduler()
        self.step({})
        for task_id in claim:
            if task_id in self.model.tasks:
                self._claim(task_id)

    def _stop(self) -> None:
        """Stop the scheduler: every run in flight ends canceled; nothing is left behind.

        The executor's wait() completes slow and refused cancels, as a remote
        executor's does in the end; a raising cancel() is counted for every run of
        a claimed task (a released task's runs were cancelled already).
        """
        executing = self.model.executing()
        expect = {r.id: RunStatus.CANCELED for r in executing}
        if self.cancel_mode() == "raise":
            self.model.executor_errors += sum(r.task_id in self.model.claims for r in executing)
        for claim in self.model.claims.values():
            for run_id in claim.resume:
                self.model.runs[run_id].state = LEFT
        self.model.claims.clear()
        self.scheduler.stop()
        self._stopped = True
        self.step(expect)
        self._check_nothing_left()

    def _check_nothing_left(self) -> None:
        assert self.executor.running() == [], (
            f"runs still in flight at the executor after stop: {self.executor.running()}"
        )
        left = set(threading.enumerate()) - self._threads_before
        assert not left, f"threads left behind after stop: {sorted(t.name for t in left)}"
