"""RunnerActor: executes one run at a time for one concurrency slot of a task."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pykka import ActorDeadError, ActorRef

from actors._base import Handler, SafeActor
from actors._shared import log_safely
from actors.metrics import EXECUTOR_ERROR, METRICS_ERROR, TaskMetrics, error_type
from actors.store_actor import PENDING, StorePort
from protocols.contracts import CompleteRun, Executor, RunPromise
from protocols.errors import RunCanceled
from protocols.messages import Cancel, Execute, Flush, PromiseDone, StoreReply
from protocols.model import QueuedRun, RunStatus

__all__ = ["RunnerActor"]


class RunnerActor(SafeActor):
    """One busy concurrency slot.

    On :class:`Execute` (a run whose start is already recorded) it calls the
    executor. It never waits on the promise: the promise's done-callback sends
    :class:`PromiseDone`. It then records the outcome in one atomic step, a
    :class:`~protocols.contracts.CompleteRun` (the log lines, the statistics of a
    successful run as one JSON line when there are any, the terminal status and the
    finish) sent to the store's port with the TaskActor as the one to reply to, and
    updates the metrics. The TaskActor frees the slot on the reply, once the
    completion is durable.

    Whatever fails on the way (a metric, the logger, the executor's ``cancel``) is
    counted in ``task_scheduler_errors_counter`` by kind and the run goes on to be
    recorded: the completion is always sent, so a slot is never left busy with
    nothing in flight.
    """

    def __init__(
        self,
        *,
        task_ref: ActorRef[Any],
        port: StorePort,
        executor: Executor,
        metrics: TaskMetrics,
        log: Any,
        clock: Callable[[], float],
    ) -> None:
        super().__init__()
        self._task_ref = task_ref
        self._port = port
        self._executor = executor
        self._metrics = metrics
        self._errors = metrics.scheduler
        self._log = log
        self._clock = clock
        self._run: QueuedRun | None = None
        self._promise: RunPromise | None = None
        self._started = 0.0

    # -- messages -------------------------------------------------------------------

    def _on_execute(self, message: Execute) -> None:
        run = message.run
        self._run = run
        self._promise = None
        now = self._started = self._clock()
        self._count(self._metrics.start_run, now - run.due_at)
        try:
            promise = self._executor.execute(run)
        except Exception as exc:
            self._fail(run, "Run failed to begin execution", exc)
            return
        self._promise = promise
        # A promise that is already complete calls back at once, in this thread: record
        # the outcome inline instead of sending ourselves a message (a hop saved per run).
        ident = threading.get_ident()
        registering = [True]
        inline: list[RunPromise] = []

        def on_done(done: RunPromise) -> None:
            if registering[0] and threading.get_ident() == ident:
                inline.append(done)
            else:
                self._on_promise_done(done)

        try:
            promise.add_done_callback(on_done)
        except Exception as exc:
            self._promise = None
            self._fail(run, "Waiting for execution result", exc)
            return
        finally:
            registering[0] = False
        if inline:
            self._record_outcome(run, promise, cancelling=False)

    def _on_promise_done_message(self, message: PromiseDone) -> None:
        if self._run is None or self._run.run_id != message.run_id or self._promise is None:
            return  # a run this runner already recorded (e.g. cancelled inline)
        self._record_outcome(self._run, self._promise, cancelling=False)

    def _on_cancel(self, message: Cancel) -> None:
        """Cancel the current run if it is ``run_id``; record it at once if it completed.

        A ``cancel()`` that raises is counted (``executor error``) and logged; the run
        then goes on, and its outcome is recorded when its promise completes. A
        cancel that completes later (a remote job) is recorded then, by PromiseDone.
        """
        run, promise = self._run, self._promise
        if run is None or promise is None or run.run_id != message.run_id:
            return
        try:
            promise.cancel()
        except Exception as exc:
            self._metrics.scheduler.error(EXECUTOR_ERROR)
            log_safely(
                self._log,
                self._errors,
                "warning",
                "run_cancel_failed",
                run_id=run.run_id,
                error=str(exc),
            )
            return
        if self._run is run:  # not recorded yet by a callback of cancel()
            self._record_outcome(run, promise, cancelling=True)

    def _on_flush(self, message: Flush) -> tuple[ActorRef[Any], ...]:
        return ()

    # -- the outcome ----------------------------------------------------------------

    def _on_promise_done(self, promise: RunPromise) -> None:
        """The done-callback: runs in whatever thread completed the promise."""
        try:
            self.actor_ref.tell(PromiseDone(promise.run.run_id))
        except ActorDeadError:
            pass

    def _record_outcome(self, run: QueuedRun, promise: RunPromise, *, cancelling: bool) -> None:
        try:
            result = promise.wait(0)
        except RunCanceled:
            self._finish(run, RunStatus.CANCELED, ("Canceled",), None)
        except TimeoutError as exc:
            if cancelling:
                return  # not complete yet: PromiseDone will follow
            self._fail(run, "Waiting for execution result", exc)
        except Exception as exc:
            self._fail(run, "Waiting for execution result", exc)
        else:
            if result.error is not None:
                self._fail(run, "Run failed to execute", result.error)
            elif not result.statistics:
                self._finish(run, RunStatus.SUCCESS, ("Completed successfully",), None)
            else:
                try:
                    stats = json.dumps(dict(result.statistics), default=str, sort_keys=True)
                except (TypeError, ValueError) as exc:
                    stats = json.dumps({"statistics_error": str(exc)})
                self._finish(run, RunStatus.SUCCESS, (stats, "Completed successfully"), None)

    def _fail(self, run: QueuedRun, stage: str, error: BaseException) -> None:
        self._finish(run, RunStatus.FAILED, (f"{stage}: {error}",), error)

    def _finish(
        self,
        run: QueuedRun,
        status: RunStatus,
        lines: tuple[str, ...],
        error: BaseException | None,
    ) -> None:
        """Record the outcome; whatever fails on the way, the completion is sent."""
        now = self._started
        try:
            now = self._clock()
            self._count(self._metrics.finish_run, status is RunStatus.SUCCESS, now - self._started)
            if error is not None:
                self._metrics.scheduler.error(error_type(error))
                log_safely(
                    self._log,
                    self._errors,
                    "warning",
                    "run_failed",
                    run_id=run.run_id,
                    scheduled_for=run.scheduled_for,
                    error=lines[0],
                )
            else:
                log_safely(
                    self._log,
                    self._errors,
                    "info",
                    "run_finished",
                    run_id=run.run_id,
                    scheduled_for=run.scheduled_for,
                    status=status.value,
                )
        finally:
            self._run = None
            self._promise = None
            # One atomic step: the lines, the status and the finish, or none of them.
            self._complete(CompleteRun(run.task_id, run.run_id, now, status, lines))

    def _complete(self, op: CompleteRun) -> None:
        """Send the completion; its result reaches the TaskActor, which frees the slot."""
        task_ref = self._task_ref
        try:
            result = self._port.call(op, task_ref)
        except Exception as exc:  # a port never raises; a broken one must not jam the slot
            result = exc
        if result is not PENDING:
            try:
                task_ref.tell(StoreReply(op, result))
            except ActorDeadError:
                pass  # the scheduler is shutting down

    # -- calls that never kill the actor --------------------------------------------

    def _count(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self._metrics.scheduler.error(METRICS_ERROR)
            log_safely(self._log, self._errors, "warning", "metrics_update_failed", error=str(exc))

    _tells: ClassVar[Mapping[type, Handler]] = {
        Execute: _on_execute,
        PromiseDone: _on_promise_done_message,
        Cancel: _on_cancel,
    }
    _asks: ClassVar[Mapping[type, Handler]] = {Flush: _on_flush}
