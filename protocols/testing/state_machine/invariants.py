"""The check after every step: replay what the scheduler did against the model.

:meth:`CheckedMachine.step` settles the actors, replays the store's recorded events
and the executor's ``execute`` calls against the :class:`~.model.Model`, checks
that the runs the step expected to end ended as expected, and then calls
:meth:`CheckedMachine.check_after_step`, which checks every invariant. A subclass
adding rules adds its own invariants by extending ``check_after_step``
(``super().check_after_step(step)`` first).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from protocols.model import QueuedRun, RunStatus, TaskStatus
from protocols.testing.state_machine.base import MachineBase
from protocols.testing.state_machine.model import (
    CREATED,
    DONE,
    EXECUTING,
    LEFT,
    RECORDING,
    TERMINAL,
    RunModel,
)
from protocols.testing.state_machine.recording import CREATE, NOT_DUE, STATE, StoreEvent

__all__ = ["CheckedMachine", "StepRecord"]


@attrs.define
class StepRecord:
    """What happened in one step, as the checks saw it."""

    events: list[StoreEvent]  # the recorded store calls
    executed: list[QueuedRun]  # the executor's execute calls
    executing_before: dict[str, int]  # runs in flight per task before the step's events
    started: set[int]  # runs executed in this step
    finishing: set[int]  # runs finish_run was called for in this step


class CheckedMachine(MachineBase):
    """:class:`~.base.MachineBase` plus the check after every step."""

    def step(self, expect: dict[int, RunStatus], *, quiet: bool = False) -> None:
        """Settle, replay what happened against the model, and check every invariant.

        ``expect`` maps the runs the step ends to the status each must end in;
        ``quiet`` says the step must change nothing.
        """
        try:
            self._check_step(expect, quiet=quiet)
        except BaseException:
            self._broken = True
            raise

    def refused(self, error: type[BaseException], call: Callable[[], object]) -> None:
        """``call`` raises ``error``, and nothing else happens."""
        try:
            call()
        except error:
            pass
        else:
            raise AssertionError(f"expected {error.__name__}, nothing was raised")
        self.step({}, quiet=True)

    def check_after_step(self, step: StepRecord) -> None:
        """Every invariant, once the step's events are replayed (extend in a subclass)."""
        self._check_runs()
        self._check_tasks(step.executing_before, step.started)
        self._check_metrics()
        self._check_held()

    def _check_held(self) -> None:
        """What the scheduler holds is bounded by what is claimed (``stats()``)."""
        stats = getattr(self.scheduler, "stats", None)
        if stats is None or self._stopped:
            return
        held = stats()
        model = self.model
        assert held.claimed == len(model.claims), (held, sorted(model.claims))
        assert held.releasing == len(model.lingering()), (
            f"{held.releasing} released tasks still finishing runs, expected "
            f"{sorted(model.lingering())}"
        )
        assert held.indexed <= 2 * held.claimed + 64, (
            f"the due-time index holds {held.indexed} items for {held.claimed} claimed tasks"
        )
        faulted = model.faulted_tasks & set(model.claims)
        assert held.due <= len(faulted), (
            f"{held.due} tasks stay due after the step (ticked on every tick); only tasks "
            f"whose store call failed may: {sorted(faulted)}"
        )

    # -- replaying the step ---------------------------------------------------------

    def _check_step(self, expect: dict[int, RunStatus], *, quiet: bool) -> None:
        assert self.scheduler.settle(self.settle_timeout), "the actors did not settle"
        model = self.model
        executing_before = {
            task_id: len(model.executing(task_id)) + len(model.recording(task_id))
            for task_id in (*self.task_ids, "ghost")
        }
        for claim in model.claims.values():
            claim.created = False
        events = self.recorder.take_events()
        executed = self.executor.executed[self._executed_seen :]
        self._executed_seen += len(executed)
        if quiet:
            changed = [e for e in events if e.kind != NOT_DUE]
            assert not changed, f"a refused or empty operation changed something: {changed}"
            assert not executed, f"a refused or empty operation executed runs: {executed}"

        finishing: set[int] = set()
        for event in events:
            if event.kind == CREATE:
                assert event.run is not None
                self._created(event.task_id, event.now, event.run, claimed=True)
            elif event.kind == NOT_DUE:
                self._not_due(event.task_id, event.due_at)
            elif event.kind == STATE:
                run = self._known(event.run_id, event.task_id)
                assert event.status is not None
                run.statuses.append(event.status)
            else:
                run = self._known(event.run_id, event.task_id)
                run.finishes += 1
                assert run.finishes == 1, f"finish_run called twice for run {run.id}"
                if run.completing:  # its outcome was recorded: the claim completed it
                    run.completing = run.recorded = run.unfinished = False
                    run.state = DONE
                elif run.state == RECORDING:  # a completion the store refused, retried
                    statuses = run.statuses[-2:] if run.faulted else run.statuses
                    assert statuses == [RunStatus.STARTED, run.expected], (
                        f"run {run.id}: states {[s.value for s in run.statuses]} once its "
                        f"completion was retried, expected started -> {run.expected}"
                    )
                    run.state = DONE
                else:  # (a run whose finish_run failed before is finished now)
                    run.unfinished = run.recorded = False
                    finishing.add(run.id)
                if not run.manual:
                    task = model.tasks[run.task_id]
                    task.latest_completed = max(task.latest_completed, run.slot)

        overlapping = list(getattr(self.executor, "overlapping", ()))
        assert not overlapping, (
            f"runs executed while they were still executing (one run never executes twice "
            f"at once): {[(r.task_id, r.run_id) for r in overlapping]}"
        )
        started: set[int] = set()
        execute_failed: set[int] = set()
        for queued in executed:
            run = self._known(queued.run_id, queued.task_id)
            owner = model.claims.get(queued.task_id)
            assert owner is not None, f"run {run.id} of unclaimed task {run.task_id} executed"
            claim = owner
            assert queued.script == claim.task.script, (queued, claim.task)
            assert queued.scheduled_for == run.slot, (queued, run)
            if claim.resume and run.id in claim.resume:
                assert run.id == claim.resume[0], (
                    f"runs left in progress are resumed in slot order: expected "
                    f"{claim.resume[0]}, got {run.id}"
                )
                claim.resume.popleft()
            else:
                assert run.state == CREATED, (
                    f"run {run.id} executed in state {run.state!r}: runs are executed once, "
                    "after they are created, and never while they execute"
                )
            assert not run.recorded, f"run {run.id} executed again, its outcome was recorded"
            run.executions += 1
            run.state = EXECUTING
            run.claim = claim
            claim.started += 1
            model.started += 1
            started.add(run.id)
            if self.pending_execute_errors:
                self.pending_execute_errors -= 1
                expect[run.id] = RunStatus.FAILED
                execute_failed.add(run.id)

        refused = self._replay_faults(expect)
        for run_id in finishing:
            run = model.runs[run_id]
            assert run_id in expect, (
                f"run {run_id} ({run.task_id}, slot {run.slot}) finished, but nothing ended it"
            )
        for run_id, status in expect.items():
            run = model.runs[run_id]
            if run_id in refused and run.state == EXECUTING:
                # Its completion was refused: counted as ended, recorded when a retry lands.
                self.model.finished(run, status, recorded=False)
                continue
            self._check_finished(run, status, run_id in finishing)
        # A release gives up the completions still to retry: the store keeps those runs
        # in progress, and the next claim executes them again. (A claim right after a
        # release, before the run ended, revives the TaskActor holding it: it retries.)
        for run in model.recording():
            if run.task_id not in model.claims:
                run.state = DONE
                run.unfinished = run.faulted = True
                run.recorded = False
        model.faulted_tasks |= {run.task_id for run in model.recording()}
        for run_id in execute_failed:
            run = model.runs[run_id]
            if run.faulted or run.removed or run.state == RECORDING:
                continue
            log = [entry.message for entry in self.store.find_run(run.task_id, run_id).log]
            assert any(line.startswith("Run failed to begin execution") for line in log), log
        self.check_after_step(StepRecord(events, executed, executing_before, started, finishing))

    def _known(self, run_id: int, task_id: str) -> RunModel:
        run = self.model.runs.get(run_id)
        assert run is not None, f"the scheduler used run {run_id} ({task_id}) it never created"
        assert run.task_id == task_id, (run, task_id)
        return run

    def _created(self, task_id: str, now: int, queued: QueuedRun, *, claimed: bool) -> None:
        """A create_next_run result: the queue head, else the next due slot."""
        model = self.model.tasks[task_id]
        if claimed:
            claim = self.model.claims.get(task_id)
            assert claim is not None, f"a run was created for unclaimed task {task_id}"
            assert claim.task.status is TaskStatus.ACTIVE, (
                f"a run was created for inactive task {task_id}"
            )
            claim.created = True
            assert now <= self.now, f"create_next_run({task_id!r}, {now}) is ahead of {self.now}"
        assert queued.run_id not in self.model.runs, f"run id {queued.run_id} handed out twice"
        assert queued.task_id == task_id, queued
        assert queued.script == model.task.script, (queued, model.task)
        if model.queue:
            run_id, slot = model.queue.popleft()
            assert queued.run_id == run_id, (
                f"manual runs come first, in order: expected manual run {run_id} (slot "
                f"{slot}), got run {queued.run_id} for {queued.scheduled_for} "
                f"(requested_at={queued.requested_at})"
            )
            assert queued.requested_at != 0, f"manual run {queued} has requested_at 0"
            assert queued.scheduled_for == slot, (queued, slot)
            manual = True
        else:
            expected = self.model.next_slot(task_id)
            due = self.model.due(task_id, expected)
            options = model.task.options
            assert queued.requested_at == 0, f"unexpected manual run {queued}"
            assert queued.scheduled_for == expected, (
                f"{task_id} ({options.every or options.cron!r} in {options.timezone}): "
                f"expected the run for slot {expected} (the first slot after "
                f"{self.model.base(task_id)}), got {queued.scheduled_for}"
            )
            assert due <= now, f"{task_id}: run for {expected} created at {now}, due {due}"
            assert expected not in model.scheduled_slots, (
                f"{task_id}: a second scheduled run for slot {expected}"
            )
            model.scheduled_slots.add(expected)
            assert queued.due_at == due, (queued, due)
            manual = False
        self.model.runs[queued.run_id] = RunModel(
            queued.run_id,
            task_id,
            queued.scheduled_for,
            manual,
            CREATED if claimed else LEFT,
        )

    def _not_due(self, task_id: str, due_at: int) -> None:
        model = self.model.tasks[task_id]
        assert not model.queue, f"{task_id}: RunNotDueYet with manual runs queued"
        slot = self.model.next_slot(task_id)
        expected = self.model.due(task_id, slot)
        assert due_at == expected, (
            f"{task_id}: RunNotDueYet says due {due_at}, expected {expected} (slot {slot}, "
            f"the first after {self.model.base(task_id)})"
        )

    def _check_finished(self, run: RunModel, status: RunStatus, finished: bool) -> None:
        if run.removed:  # nothing can be recorded of a run whose task left the store
            self.model.finished(run, status)
            return
        assert finished, (
            f"run {run.id} ({run.task_id}, slot {run.slot}) should have ended {status.value} "
            "in this step, finish_run was not called"
        )
        if run.faulted:  # a store write failed: what was recorded is a prefix
            expected = [RunStatus.STARTED, status]
            assert all(s in expected for s in run.statuses), (run.id, run.statuses, status)
        else:
            assert run.statuses == [RunStatus.STARTED, status], (
                f"run {run.id}: states {[s.value for s in run.statuses]}, expected started -> "
                f"{status.value}"
            )
            stored = self.store.find_run(run.task_id, run.id)
            assert stored.status is status, (stored, status)
        self.model.finished(run, status)
        if run.unfinished:
            stored = self.store.find_run(run.task_id, run.id)
            run.recorded = stored.status in TERMINAL

    def _replay_faults(self, expect: dict[int, RunStatus]) -> set[int]:
        """Apply the store ops that failed in this step; the runs whose completion the
        store refused (their slots stay busy: the scheduler retries them on ticks).

        An injected fault refuses a whole op (nothing of it is written). Of the store's
        own errors, TaskNotFound (the task was removed underneath) releases the claim,
        counted once; any other error of an actor's op counts a store error.
        """
        refused: set[int] = set()
        faulty = self.faulty
        if faulty is None:
            return refused
        model = self.model
        faulted: set[str] = set()
        for fault in faulty.take_faults():
            if fault.injected:
                model.store_errors += 1
                if fault.call in ("CreateRun", "StartRun"):
                    faulted.add(fault.task_id)  # tried again on the next tick
                elif fault.call == "CompleteRun":
                    run = model.runs.get(fault.run_id)
                    if run is not None and not (run.completing or run.abandoned):
                        refused.add(run.id)
                # FinishRun, or a claim's completion of a run: the next claim tries again.
                continue
            if not fault.op:
                continue  # a call of the facade's: the rule that made it checks it
            if fault.not_found:
                if fault.task_id in model.claims:
                    self._vanished(fault.task_id, expect)
                continue
            model.store_errors += 1
        # A tick retries every task still due: only this step's failures stay excused.
        if self._ticking:
            model.faulted_tasks = faulted
        else:
            model.faulted_tasks |= faulted
        return refused

    def _vanished(self, task_id: str, expect: dict[int, RunStatus]) -> None:
        """The scheduler found ``task_id`` gone from the store: it releases the claim."""
        model = self.model
        claim = model.claims.pop(task_id, None)
        assert claim is not None, f"{task_id}: the scheduler asked the store for an unclaimed task"
        model.not_found += 1
        for run_id in claim.resume:
            model.runs[run_id].state = LEFT
        # Its runs still executing are cancelled (those that ended in this step ended).
        self.cancel_runs([r for r in model.executing(task_id) if r.id not in expect], expect)

    def cancel_runs(self, runs: list[RunModel], expect: dict[int, RunStatus]) -> None:
        """What the executor's cancel mode makes of cancelling ``runs`` (the model's side)."""
        mode = self.cancel_mode()
        for run in runs:
            if mode == "prompt":
                expect[run.id] = RunStatus.CANCELED
            elif mode == "slow":
                run.cancel = "slow"
            else:
                run.cancel = "refused"
                self.model.executor_errors += 1

    # -- the invariants -------------------------------------------------------------

    def _check_runs(self) -> None:
        running = {r.run_id for r in self.executor.running()}
        runs = self.model.runs
        for run in runs.values():
            if run.state == RECORDING:
                assert run.id not in running, run
                assert run.finishes == 0, run
                if not (run.faulted or run.removed):  # else executed before: a longer list
                    assert run.statuses == [RunStatus.STARTED], (run.id, run.statuses)
            elif run.state == EXECUTING:
                assert run.id in running, f"run {run.id} should be in flight at the executor"
                if not (run.faulted or run.removed):
                    assert run.statuses == [RunStatus.STARTED], (run.id, run.statuses)
                assert run.finishes == 0
            elif run.state == DONE:
                assert run.id not in running, run
                if run.removed or run.faulted or run.abandoned:
                    assert run.finishes <= 1, run
                    continue
                assert run.finishes == 1, run
                assert len(run.statuses) == 2, run
                assert run.statuses[-1] in TERMINAL, run
            else:
                assert run.id not in running, run
                assert run.finishes == 0, run
                assert run.state == LEFT, (
                    f"run {run.id} ({run.task_id}, slot {run.slot}) was created and never executed"
                )
        assert running <= set(runs), f"unknown runs in flight: {running - set(runs)}"

    def _check_tasks(self, executing_before: dict[str, int], started: set[int]) -> None:
        max_seen = self.executor.max_in_flight
        for task_id, model in self.model.tasks.items():
            executing = self.model.executing(task_id)
            claim = self.model.claims.get(task_id)
            assert max_seen.get(task_id, 0) <= model.max_concurrency, (
                f"{task_id}: the executor saw {max_seen[task_id]} runs at once, concurrency "
                f"was at most {model.max_concurrency}"
            )
            if claim is None:
                assert all(r.cancel for r in executing), (
                    f"unclaimed {task_id} has runs in flight that nothing is cancelling: "
                    f"{[r.id for r in executing if not r.cancel]}"
                )
                continue
            concurrency = claim.task.options.concurrency
            count = len(executing) + len(self.model.recording(task_id))
            assert count <= max(concurrency, executing_before[task_id]), (
                f"{task_id}: {count} runs in flight, concurrency {concurrency}"
            )
            if any(r.id in started for r in executing):
                assert count <= concurrency, (
                    f"{task_id}: a run started with {count} in flight, concurrency {concurrency}"
                )
            assert not (claim.created and claim.resume), (
                f"{task_id}: a run was created while runs left in progress wait to be "
                f"resumed: {list(claim.resume)}"
            )
            if count < concurrency and task_id not in self.model.faulted_tasks:
                assert not claim.resume, (
                    f"{task_id}: a free slot, and runs left in progress not resumed: "
                    f"{list(claim.resume)}"
                )
                if claim.task.status is TaskStatus.ACTIVE:
                    assert not model.queue, (
                        f"{task_id}: a free slot, and manual runs waiting: {list(model.queue)}"
                    )
                    slot = self.model.next_slot(task_id)
                    due = self.model.due(task_id, slot)
                    assert due > self.now, (
                        f"{task_id}: a free slot ({count}/{concurrency} busy) at {self.now}, "
                        f"and the run for slot {slot} is due since {due}"
                    )

    def _sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value

    def _check_metrics(self) -> None:
        sample = self.registry.get_sample_value
        model = self.model
        complete = "task_scheduler_total_runs_complete_total"
        claims = "task_scheduler_claims_complete_total"
        errors = "task_scheduler_errors_counter_total"
        for kind, count in (
            ("executor error", model.executor_errors),
            ("store error", model.store_errors),
            ("not found", model.not_found),
            ("log error", self.log_failures()),
            ("metrics error", self.metrics_failures()),
        ):
            assert self._sample(errors, {"error_type": kind}) == count, (
                f"errors_counter{{error_type={kind!r}}} is "
                f"{self._sample(errors, {'error_type': kind})}, expected {count}"
            )
        queue, execution = (
            "task_scheduler_run_queue_delta_count",
            "task_scheduler_run_execution_delta_count",
        )
        ended = model.total_success + model.total_failure
        assert self._sample(queue, {"task_id": "all"}) == model.started, (
            f"run_queue_delta{{task_id='all'}} counts {self._sample(queue, {'task_id': 'all'})} "
            f"runs started, expected {model.started}"
        )
        assert self._sample(execution, {"task_id": "all"}) == ended
        for task_id in self.task_ids:
            if task_id == "all":
                continue  # its per-task summaries are the aggregates
            claim = model.claims.get(task_id)
            started = sample(queue, {"task_id": task_id})
            finished = sample(execution, {"task_id": task_id})
            if claim is None:
                assert (started, finished) == (None, None), (task_id, started, finished)
            else:
                assert (started or 0) == claim.started, (task_id, started, claim.started)
                assert (finished or 0) == claim.success + claim.failure, (task_id, finished)
        assert self._sample("task_scheduler_total_runs_active") == len(model.executing())
        assert self._sample(complete, {"status": "success"}) == model.total_success
        assert self._sample(complete, {"status": "failure"}) == model.total_failure
        assert self._sample("task_scheduler_claims_active") == len(model.claims)
        assert self._sample(claims, {"status": "success"}) == model.claims_ok
        assert self._sample(claims, {"status": "failure"}) == model.claims_failed
        assert (
            self._sample("task_scheduler_errors_counter_total", {"error_type": "internal error"})
            == model.errors
        )
        for task_id in self.task_ids:
            claim = model.claims.get(task_id)
            active = sample("task_scheduler_runs_active", {"task_id": task_id})
            success = sample(
                "task_scheduler_runs_complete_total", {"task_id": task_id, "status": "success"}
            )
            failure = sample(
                "task_scheduler_runs_complete_total", {"task_id": task_id, "status": "failure"}
            )
            if claim is None:
                assert (active, success, failure) == (None, None, None), (
                    f"{task_id} is not claimed, its series remain: {active} {success} {failure}"
                )
                continue
            mine = [r for r in model.executing(task_id) if r.claim is claim]
            assert (active or 0) == len(mine), (task_id, active, len(mine))
            assert (success or 0) == claim.success, (task_id, success, claim.success)
            assert (failure or 0) == claim.failure, (task_id, failure, claim.failure)
