"""The machine's hostile surroundings: a store that fails on purpose, and its log.

:class:`FaultyStore` sits below the recorder (see
:meth:`~.base.MachineBase.store_below_recorder`): every exception it passes up to
the scheduler, injected or the store's own (``TaskNotFound`` for a task removed
underneath), is logged as a :class:`StoreFault`, so the model knows which calls
failed and what the scheduler must have counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

import attrs

from protocols.contracts import StoreOp, TaskControlService, TaskStore
from protocols.errors import RunNotDueYet, TaskNotFound
from protocols.model import ClaimState, Run, RunCreation, RunStatus
from protocols.testing.state_machine.recording import ForwardingStore, unwrap_op

__all__ = ["RUN_PATH", "FaultyStore", "StoreFault", "StoreUnavailable"]

T = TypeVar("T")

#: The store ops a fault may be armed on (the scheduler's run path): an armed op fails
#: as a whole, as a transaction that could not commit does.
RUN_PATH: Final = ("CreateRun", "StartRun", "CompleteRun", "FinishRun")


@attrs.frozen
class _InOp(StoreOp):
    """``op`` applied through a FaultyStore, which notes which op its calls serve."""

    op: StoreOp
    faulty: FaultyStore

    def call(self, store: TaskControlService) -> object:
        local = self.faulty._local
        local.op = type(unwrap_op(self.op)).__name__
        try:
            return self.op.call(self.faulty)
        finally:
            local.op = ""


@attrs.frozen
class _Refused(StoreOp):
    """An op a FaultyStore refused: it raises, and changes nothing."""

    error: Exception

    def call(self, store: TaskControlService) -> object:
        raise self.error


class StoreUnavailable(ConnectionError):
    """What a :class:`FaultyStore` raises on purpose (a transient store failure)."""


@attrs.frozen
class StoreFault:
    """A call the scheduler made that raised (``injected``: on purpose)."""

    call: str
    task_id: str
    run_id: int = 0
    status: RunStatus | None = None  # update_run_state's
    injected: bool = True
    not_found: bool = False  # the store raised TaskNotFound
    op: str = ""  # the store op the call served ("": called directly, not by an actor)


class FaultyStore(ForwardingStore):
    """Forwards to ``inner``; :meth:`arm` makes the next calls of one kind raise.

    Thread-safe. The scheduler's manual-run calls (``force_run``, ``retry_run``) and
    the reads at claim time can be armed too (``arm("claim_state")``).
    """

    def __init__(self, inner: TaskStore) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self._armed: dict[str, int] = {}
        self._faults: list[StoreFault] = []
        self._local = threading.local()

    def arm(self, call: str, count: int = 1) -> None:
        """Make the next ``count`` calls of ``call`` raise :class:`StoreUnavailable`."""
        with self._lock:
            self._armed[call] = self._armed.get(call, 0) + count

    def disarm(self) -> None:
        """No more injected failures."""
        with self._lock:
            self._armed.clear()

    @property
    def armed(self) -> dict[str, int]:
        """The injected failures still to come, by call."""
        with self._lock:
            return {call: n for call, n in self._armed.items() if n}

    def take_faults(self) -> list[StoreFault]:
        """The faults since the last call, oldest first."""
        with self._lock:
            faults, self._faults = self._faults, []
            return faults

    def apply(self, ops: Sequence[StoreOp]) -> list[object]:
        """The inner store's, but an op whose name is armed fails whole, untouched."""
        return self.inner.apply([_InOp(self._check(op), self) for op in ops])

    def _check(self, op: StoreOp) -> StoreOp:
        inner = unwrap_op(op)
        name = type(inner).__name__
        with self._lock:
            left = self._armed.get(name, 0)
            if not left:
                return op
            self._armed[name] = left - 1
            task_id: str = getattr(inner, "task_id", "")
            run_id: int = getattr(inner, "run_id", 0)
            status: RunStatus | None = getattr(inner, "status", None)
            self._faults.append(StoreFault(name, task_id, run_id, status))
        return _Refused(StoreUnavailable(f"{name}({task_id!r}): store unavailable (FaultyStore)"))

    def _call(
        self,
        call: str,
        fn: Callable[[], T],
        task_id: str,
        run_id: int = 0,
        status: RunStatus | None = None,
    ) -> T:
        with self._lock:
            left = self._armed.get(call, 0)
            if left:
                self._armed[call] = left - 1
                self._faults.append(StoreFault(call, task_id, run_id, status))
        if left:
            raise StoreUnavailable(f"{call}({task_id!r}): store unavailable (FaultyStore)")
        try:
            return fn()
        except RunNotDueYet:
            raise
        except Exception as exc:
            with self._lock:
                self._faults.append(
                    StoreFault(
                        call,
                        task_id,
                        run_id,
                        status,
                        injected=False,
                        not_found=isinstance(exc, TaskNotFound),
                        op=getattr(self._local, "op", ""),
                    )
                )
            raise

    def create_next_run(self, task_id: str, now: int) -> RunCreation:
        """The inner store's, unless armed."""
        return self._call(
            "create_next_run", lambda: self.inner.create_next_run(task_id, now), task_id
        )

    def update_run_state(self, task_id: str, run_id: int, when: float, status: RunStatus) -> None:
        """The inner store's, unless armed."""
        self._call(
            "update_run_state",
            lambda: self.inner.update_run_state(task_id, run_id, when, status),
            task_id,
            run_id,
            RunStatus(status),
        )

    def add_run_log(self, task_id: str, run_id: int, when: float, message: str) -> None:
        """The inner store's, unless armed."""
        self._call(
            "add_run_log",
            lambda: self.inner.add_run_log(task_id, run_id, when, message),
            task_id,
            run_id,
        )

    def finish_run(self, task_id: str, run_id: int) -> Run:
        """The inner store's, unless armed."""
        return self._call(
            "finish_run", lambda: self.inner.finish_run(task_id, run_id), task_id, run_id
        )

    def start_run(self, task_id: str, run_id: int, when: float, lines: Sequence[str]) -> None:
        """The inner store's, unless armed."""
        self._call(
            "start_run",
            lambda: self.inner.start_run(task_id, run_id, when, lines),
            task_id,
            run_id,
            RunStatus.STARTED,
        )

    def complete_run(
        self, task_id: str, run_id: int, when: float, status: RunStatus, lines: Sequence[str]
    ) -> Run | None:
        """The inner store's, unless armed."""
        return self._call(
            "complete_run",
            lambda: self.inner.complete_run(task_id, run_id, when, status, lines),
            task_id,
            run_id,
            RunStatus(status),
        )

    def next_due_run(self, task_id: str) -> int:
        """The inner store's, unless armed."""
        return self._call("next_due_run", lambda: self.inner.next_due_run(task_id), task_id)

    def claim_state(self, task_id: str) -> ClaimState:
        """The inner store's, unless armed."""
        return self._call("claim_state", lambda: self.inner.claim_state(task_id), task_id)

    def force_run(self, task_id: str, scheduled_for: int) -> Run:
        """The inner store's, unless armed."""
        return self._call(
            "force_run", lambda: self.inner.force_run(task_id, scheduled_for), task_id
        )
