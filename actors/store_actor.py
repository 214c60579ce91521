"""How the actors reach their store: inline, or through the store actor (group commit).

Every store call of the run path is a :class:`~protocols.contracts.StoreOp` handed to a
port with ``call(op, reply_to)``:

- :class:`InlinePort`, for a store that never blocks (``does_io`` false, MemoryStore):
  the op is applied at once, in the caller, and its result returned.
- :class:`StoreActor`, for a store that does I/O (SQLite, PostgreSQL): the op is queued
  and :data:`PENDING` returned. The store actor's own thread takes every op queued, applies
  them with ``store.apply`` in one transaction (one commit for the whole batch), and only
  then tells each requester :class:`~protocols.messages.StoreReply`. So no actor on the
  pool waits on the disk, and a run is handed to the executor only once its start is
  durable: the reply to :class:`~protocols.contracts.CreateRun` comes after the commit.

Either way the requester handles the result in one place; the inline path only saves
the message hop. Replies to one actor arrive in the order its ops were applied (one
thread sends them all), which the TaskActor relies on: a :class:`ReadClaimState` sent
after a completion reads that completion.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, Protocol

from pykka import ActorDeadError, ActorRef

from actors.runtime import Runtime
from protocols.contracts import CreateRun, StartRun, StoreOp, TaskControlService
from protocols.errors import SchedulerError
from protocols.messages import StoreReply

__all__ = [
    "DEFAULT_MAX_BATCH",
    "PENDING",
    "InlinePort",
    "StoreActor",
    "StorePort",
]

logger = logging.getLogger("tickactors.store")


class _Pending:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PENDING"


#: What ``call`` returns when the result will arrive as a :class:`StoreReply` message.
PENDING: Final[Any] = _Pending()

#: Ops applied in one transaction at most. Bigger batches cost less per op (SQLite
#: writes runs of creates and completions set-wise); at 1,000 runs due at once, 64
#: made the last run start about 40 % later than 512 (benchmarks: latency).
DEFAULT_MAX_BATCH = 512

_STARTS = (CreateRun, StartRun)


def _take(items: deque[tuple[StoreOp, ActorRef[Any]]], count: int) -> list[Any]:
    return [items.popleft() for _ in range(min(count, len(items)))]


class StorePort(Protocol):
    """Where the actors send their store ops."""

    def call(self, op: StoreOp, reply_to: ActorRef[Any]) -> object:
        """The op's result (or the exception it raised), or :data:`PENDING`: then the
        result reaches ``reply_to`` as ``StoreReply(op, result)``. Never raises."""
        ...

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every op called so far is applied and replied to; False on timeout."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Apply what is queued, then accept no more ops."""
        ...


class InlinePort:
    """Ops applied in the caller's thread: for a store that never blocks."""

    __slots__ = ("_apply",)

    def __init__(self, store: TaskControlService) -> None:
        self._apply = store.apply

    def call(self, op: StoreOp, reply_to: ActorRef[Any]) -> object:
        try:
            return self._apply((op,))[0]
        except Exception as exc:
            return exc

    def sync(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        pass


class _Barrier:
    """A queued marker: set once every op queued before it is applied and replied to."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


_STOP: Final = None


class StoreActor:
    """Owns a store that does I/O, on a thread of its own, and group-commits its ops.

    It is an actor in all but its runtime: its state (the store's connection) is touched
    by its thread only, and others reach it only by messages (``call`` queues one).
    It gets a thread because it blocks (on the disk, on the database), which an actor on
    the pool must never do. Each pass takes every op queued and applies a batch of them
    (starts first; at most ``max_batch``) with ``store.apply`` in one transaction, and
    replies to each requester.

    A batch whose commit fails fails each of its ops with that error: the requesters
    decide (the TaskActor retries a completion on later ticks, its slot kept busy).
    Ops in the queue count as work in flight for ``Runtime.settle``, so tests that
    settle see their replies. ``batches`` and ``ops`` count what was applied.
    """

    def __init__(
        self,
        store: TaskControlService,
        runtime: Runtime,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        name: str = "tickactors-store",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch!r}")
        self._store = store
        self._runtime = runtime
        self._max_batch = max_batch
        self._inbox: queue.SimpleQueue[tuple[StoreOp, ActorRef[Any]] | _Barrier | None] = (
            queue.SimpleQueue()
        )
        self._closed = False
        self.batches = 0
        self.ops = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<StoreActor {self._store!r} batches={self.batches} ops={self.ops}>"

    def call(self, op: StoreOp, reply_to: ActorRef[Any]) -> object:
        if self._closed:
            return SchedulerError(f"store actor closed: {type(op).__name__} not applied")
        self._runtime.hold()
        self._inbox.put((op, reply_to))
        return PENDING

    def sync(self, timeout: float | None = None) -> bool:
        if self._closed or not self._thread.is_alive():
            return True
        barrier = _Barrier()
        self._inbox.put(barrier)
        return barrier.event.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            return
        # An op that raced with close() (queued after the stop): answered, not applied.
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Barrier):
                item.event.set()
            elif item is not None:
                op, reply_to = item
                closed = SchedulerError(f"store actor closed: {type(op).__name__} not applied")
                try:
                    reply_to.tell(StoreReply(op, closed))
                except Exception:
                    pass
                finally:
                    self._runtime.unhold()

    # -- the store actor's thread ----------------------------------------------------

    def _loop(self) -> None:
        """Take what is queued; apply starts first, then the rest, ``max_batch`` at a time.

        A run waits for its :class:`CreateRun` (or :class:`StartRun`) before it can
        execute, while a completion only frees a slot: so starts overtake the other ops
        queued (each kind keeps its own order, and a start never depends on another
        task's op nor on a completion of its own task).
        A barrier (``sync``) or ``close`` first applies everything queued before it.
        """
        inbox = self._inbox
        starts: deque[tuple[StoreOp, ActorRef[Any]]] = deque()
        others: deque[tuple[StoreOp, ActorRef[Any]]] = deque()
        while True:
            barrier: _Barrier | None = None
            stopping = False
            idle = not (starts or others)
            while True:
                try:
                    item = inbox.get() if idle else inbox.get_nowait()
                except queue.Empty:
                    break
                idle = False
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, _Barrier):
                    barrier = item
                    break
                (starts if isinstance(item[0], _STARTS) else others).append(item)
            if barrier is not None or stopping:
                while starts or others:
                    self._apply(_take(starts or others, self._max_batch))
                if barrier is not None:
                    barrier.event.set()
                if stopping:
                    return
            elif starts:
                self._apply(_take(starts, self._max_batch))
            elif others:
                self._apply(_take(others, self._max_batch))

    def _apply(self, batch: Sequence[tuple[StoreOp, ActorRef[Any]]]) -> None:
        ops = [op for op, _ in batch]
        try:
            try:
                results: list[object] = self._store.apply(ops)
            except Exception as exc:
                results = [exc] * len(ops)
            if len(results) != len(ops):
                broken = SchedulerError(
                    f"store error: {type(self._store).__name__}.apply returned "
                    f"{len(results)} results for {len(ops)} ops (expected one per op)"
                )
                results = [broken] * len(ops)
            self.batches += 1
            self.ops += len(ops)
            for (op, reply_to), result in zip(batch, results, strict=True):
                try:
                    reply_to.tell(StoreReply(op, result))
                except ActorDeadError:
                    pass  # the requester is gone (shutdown): the op is applied regardless
                except Exception:
                    logger.exception("Replying to %r failed", reply_to)
        finally:
            self._runtime.unhold(len(batch))
