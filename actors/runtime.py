"""A pooled pykka runtime: many actors share a small pool of worker threads.

pykka's :class:`~pykka.ThreadingActor` gives every actor its own thread (about 24 KiB
and a thread start each). Here actors are plain objects with an inbox; a small, fixed
pool of worker threads runs whichever actors have messages. pykka's semantics are kept:

* per-actor message order, and one message at a time per actor (an actor is run by at
  most one worker at a time: whoever holds its *token*);
* ``tell`` / ``ask`` / proxies / ``stop`` / futures / :class:`~pykka.ActorRegistry`
  work unchanged, because this plugs in through pykka's three hooks
  (``_create_actor_inbox``, ``_create_future``, ``_start_actor_loop``);
* ``on_start`` runs in the actor's first job, ``on_stop`` when it handles its stop
  message; messages still queued at stop are answered with
  :class:`~pykka.ActorDeadError` (asks) or dropped (tells), as pykka's teardown does;
* an exception from a ``tell`` handler stops that actor (pykka's ``_handle_failure``);
  it never kills a worker thread nor loses other actors' messages. A
  ``BaseException`` stops the actor and asks every registered actor to stop
  (non-blocking, unlike pykka, so a worker never waits on a peer).

How it works (see ``shared/design/RUNTIME.md``): an inbox is a lazily created ``deque``
plus a token (a non-blocking lock used as test-and-set). ``put`` appends, then tries to
take the token; whoever takes it submits the actor to the runtime's job queue (a
``queue.SimpleQueue``). A worker runs up to ``batch`` messages of the actor, then
either re-submits it still holding the token (fairness between actors, order kept) or
releases the token and re-checks the deque, so a ``put`` racing with the release is
never lost.

Blocking: a handler must not block on another actor's reply (ARCHITECTURE rule 3). If
one does anyway (``ask(...)``/``future.get()`` from inside a handler), the runtime
starts a compensating worker for as long as the handler is blocked, so pykka-style code
still works instead of deadlocking a one-worker pool. Blocking on anything else (an
event, a socket, ``time.sleep``) parks a worker with no compensation. ``ask()`` from a
plain thread outside the runtime works as usual.

Shutdown (:meth:`Runtime.shutdown`): the runtime asks each of its live actors to stop
(messages already queued are handled first, then ``on_stop`` runs), waits for the
runtime to settle, and stops its worker threads. From then on the runtime is closed:
``tell`` to one of its actors raises :class:`~pykka.ActorDeadError` (the actor is marked
stopped), an ``ask`` gets a future failed with :class:`~pykka.ActorDeadError`, and
:meth:`Runtime.spawn` raises :class:`RuntimeError`.

This module is one of the two places in ``actors/`` allowed to use locks
(ARCHITECTURE rule 1). Relies on private pykka members (``_actor_loop_setup``,
``_actor_loop_teardown``, ``_handle_receive``, ``_handle_failure``, ``_stop``,
``messages._ActorStop``, ``Envelope``) present in pykka 4.x: the suite
``.ci/pykka-suite`` runs pykka's own tests against this runtime.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue as _queue
import sys
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import pykka
from pykka import ActorDeadError, ActorRef, ActorRegistry, ThreadingFuture, messages

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    from pykka._actor import ActorInbox
    from pykka._envelope import Envelope

__all__ = ["PooledActor", "PooledFuture", "Runtime", "default_runtime"]


class _Wake:
    """A job that only wakes a worker, which then takes an urgent job first."""

    __slots__ = ()


_WAKE: Any = _Wake()

logger = logging.getLogger("tickactors.runtime")
_pykka_logger = logging.getLogger("pykka")

A = TypeVar("A", bound=pykka.Actor)
R = TypeVar("R", bound="Runtime")

#: Messages a worker handles for one actor before it lets other actors run.
DEFAULT_BATCH = 32

# Guards the lazy creation of an inbox's deque and of a stop flag's event (rare paths).
_lazy_lock = threading.Lock()


class _StopFlag(threading.Event):
    """A light stand-in for ``threading.Event`` as an actor's ``actor_stopped``.

    pykka only calls ``is_set()`` and ``set()`` on the hot paths; the underlying
    ``threading.Event`` (a Condition and a lock, ~1.6 KB) is created only when someone
    calls ``wait()``.
    """

    __slots__ = ("_event", "_is_set")

    def __init__(self) -> None:  # deliberately no Event.__init__: no Condition
        self._is_set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> None:
        self._is_set = True
        event = self._event
        if event is not None:
            event.set()

    def clear(self) -> None:
        self._is_set = False
        event = self._event
        if event is not None:
            event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        if self._is_set:
            return True
        event = self._event
        if event is None:
            with _lazy_lock:
                event = self._event
                if event is None:
                    event = self._event = threading.Event()
        # A set() that ran before the event was published did not see it.
        if self.is_set():
            event.set()
        return event.wait(timeout)

    def __repr__(self) -> str:
        return f"<_StopFlag set={self._is_set}>"


class PooledFuture(ThreadingFuture[Any]):
    """``ThreadingFuture`` that keeps a runtime live while a worker blocks on it."""

    def get(self, *, timeout: float | None = None) -> Any:
        if self._result is None and self._get_hook is None:
            thread = threading.current_thread()
            if isinstance(thread, _Worker):
                runtime = thread.runtime
                runtime._enter_blocking()
                try:
                    return super().get(timeout=timeout)
                finally:
                    runtime._exit_blocking()
        return super().get(timeout=timeout)


class _Worker(threading.Thread):
    """A worker thread; its type is how a future knows it is blocking a worker."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.runtime = runtime

    def run(self) -> None:
        self.runtime._work()


class _Inbox:
    """An actor's mailbox and its scheduling token; implements pykka's ``ActorInbox``."""

    __slots__ = (
        "_actor",
        "_dead",
        "_popped",
        "_queue",
        "_runtime",
        "_started",
        "_token",
        "_urgent",
    )

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._actor: PooledActor | None = None  # set by PooledActor.__init__
        self._queue: deque[Envelope[Any]] | None = None  # created on first put
        self._token = threading.Lock()
        self._token.acquire()  # held until start: messages sent before only queue
        self._started = False
        self._dead = False
        self._popped = 0  # envelopes taken by get() (teardown); only the token holder
        self._urgent = False  # jobs jump the queue (PooledActor.urgent)

    # pykka's ActorInbox protocol ------------------------------------------------

    def put(self, envelope: Envelope[Any], /) -> None:
        if self._dead:
            _reject(envelope, self._actor)
            return
        q = self._queue
        if q is None:
            with _lazy_lock:
                q = self._queue
                if q is None:
                    q = self._queue = deque()
        runtime = self._runtime
        with runtime._lock:
            runtime._in_flight += 1
        q.append(envelope)
        if self._token.acquire(False):
            runtime._submit(self)

    def get(self) -> Envelope[Any]:
        """Take the next envelope (only called by the token holder, never blocks)."""
        assert self._queue is not None
        envelope = self._queue.popleft()
        self._popped += 1
        return envelope

    def empty(self) -> bool:
        return not self._queue

    # Scheduling ------------------------------------------------------------------

    def _start(self) -> None:
        """Let the actor run: the first job runs on_start, then the queued messages."""
        actor = self._actor
        assert actor is not None
        self._runtime._track(self)
        if type(actor).on_start is pykka.Actor.on_start and not self._queue:
            # Nothing to run yet: skip the job, just hand the token back.
            self._started = True
            self._release()
        else:
            self._runtime._submit(self)

    def _release(self) -> None:
        """Give the token back; take it again if a message arrived meanwhile."""
        self._token.release()
        if self._queue and self._token.acquire(False):
            self._runtime._submit(self)

    def _run(self, batch: int) -> None:
        """One job, run by a worker holding the token."""
        actor = self._actor
        assert actor is not None
        stopped = cast("_StopFlag", actor.actor_stopped)
        handled = 0
        self._popped = 0
        try:
            if not self._started:
                self._started = True
                actor._actor_loop_setup()
            q = self._queue
            if q is not None:
                while handled < batch and not stopped._is_set:
                    try:
                        envelope = q.popleft()
                    except IndexError:
                        break
                    handled += 1
                    _handle(actor, envelope)
            if stopped._is_set:
                self._die(actor)
        finally:
            done = handled + self._popped
            runtime = self._runtime
            if done:
                runtime._done(done)
            if self._queue and not self._dead:
                runtime._submit(self)  # more to do: keep the token, go to the back
            else:
                self._release()

    def _die(self, actor: PooledActor) -> None:
        """The actor is stopped: answer whatever is still queued (pykka's teardown)."""
        if not self._dead:
            self._dead = True
            self._runtime._untrack(self)
        actor._actor_loop_teardown()

    def _reject_all(self) -> None:
        """Runtime closed: mark the actor stopped and fail its queued messages."""
        actor = self._actor
        assert actor is not None
        self._popped = 0
        try:
            if not actor.actor_stopped.is_set():
                actor.actor_stopped.set()
                ActorRegistry.unregister(actor.actor_ref)
            self._die(actor)
        finally:
            if self._popped:
                self._runtime._done(self._popped)
            self._release()


def _reject(envelope: Envelope[Any], actor: PooledActor | None) -> None:
    """Answer an envelope sent to a dead actor, as pykka's teardown would."""
    reply_to = envelope.reply_to
    if reply_to is None:
        return
    if isinstance(envelope.message, messages._ActorStop):
        reply_to.set(None)
    else:
        who = actor.actor_ref if actor is not None else "actor"
        reply_to.set_exception(
            exc_info=(
                ActorDeadError,
                ActorDeadError(f"{who} stopped before handling the message"),
                None,
            )
        )


def _handle(actor: PooledActor, envelope: Envelope[Any]) -> None:
    """Handle one envelope exactly as pykka's ``_actor_loop_running`` does."""
    try:
        response = actor._handle_receive(envelope.message)
        if envelope.reply_to is not None:
            envelope.reply_to.set(response)
    except Exception:
        if envelope.reply_to is not None:
            _pykka_logger.info(
                f"Exception returned from {actor} to caller:", exc_info=sys.exc_info()
            )
            envelope.reply_to.set_exception()
        else:
            actor._handle_failure(*sys.exc_info())
            try:
                actor.on_failure(*sys.exc_info())
            except Exception:
                actor._handle_failure(*sys.exc_info())
    except BaseException:
        exception_value = sys.exc_info()[1]
        _pykka_logger.debug(f"{exception_value!r} in {actor}. Stopping all actors.")
        actor._stop()
        # pykka blocks here (stop_all()); a worker must not wait on its peers.
        ActorRegistry.stop_all(block=False)


class Runtime:
    """A pool of worker threads that runs :class:`PooledActor` instances.

    ``workers`` threads (daemon threads named ``f"{name}-worker-{i}"``) are started at
    construction. Under CPython's GIL one worker is usually the fastest; more help only
    when handlers release the GIL (I/O). ``batch`` is how many messages a worker
    handles for one actor before it moves on to the next actor with messages.
    """

    def __init__(
        self, workers: int = 1, *, name: str = "tickactors", batch: int = DEFAULT_BATCH
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.name = name
        self.workers = workers
        self._batch = batch
        self._jobs: _queue.SimpleQueue[_Inbox | None] = _queue.SimpleQueue()
        # Jobs of urgent actors: workers take these before the next ordinary job; each
        # is announced by a _WAKE in _jobs, so an idle worker wakes up for it.
        self._urgent: deque[_Inbox] = deque()
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)
        self._in_flight = 0
        self._actors: set[_Inbox] = set()
        self._threads: set[_Worker] = set()
        self._numbers = itertools.count()
        self._closed = False
        self._shutdown_lock = threading.Lock()
        for _ in range(workers):
            self._start_worker()

    def __repr__(self) -> str:
        return (
            f"<Runtime {self.name!r} workers={self.workers} actors={len(self._actors)}"
            f" in_flight={self._in_flight}{' closed' if self._closed else ''}>"
        )

    # Public API ------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Envelopes put but not yet fully handled (approximate when read unlocked)."""
        return self._in_flight

    @property
    def actor_count(self) -> int:
        """Actors started on this runtime and not stopped yet."""
        return len(self._actors)

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has begun."""
        return self._closed

    def spawn(self, actor_cls: type[A], *args: Any, **kwargs: Any) -> ActorRef[A]:
        """Construct and start an actor on this runtime, without registering it.

        This is the fast path: pykka's global ``ActorRegistry`` is a list that is
        O(n) to unregister from. ``actor_cls`` must be a :class:`PooledActor`.
        """
        if not issubclass(actor_cls, PooledActor):
            raise TypeError(f"{actor_cls!r} is not a PooledActor subclass")
        if self._closed:
            raise RuntimeError(f"{self!r} is shut down")
        actor = actor_cls.__new__(actor_cls)
        actor._tickactors_runtime = self
        actor.__init__(*args, **kwargs)  # type: ignore[misc]
        if actor.__dict__.get("_actor_ref") is None:
            raise RuntimeError(f"{actor_cls.__name__}.__init__() did not call super().__init__()")
        actor._start_actor_loop()
        return cast("ActorRef[A]", actor.actor_ref)

    def settle(self, timeout: float | None = None) -> bool:
        """Block until no message is queued or being handled; False on timeout.

        An envelope counts from its ``put`` until its handler has returned and its
        reply is set, so messages sent by a handler keep the runtime busy. Messages
        sent to an actor constructed but not started yet count too. Must not be
        called from a handler (raises ``RuntimeError``).
        """
        self._check_not_worker("settle")
        with self._quiet:
            return self._quiet.wait_for(lambda: self._in_flight <= 0, timeout)

    def hold(self, count: int = 1) -> None:
        """Count ``count`` pieces of work in flight outside the actors (a store actor's
        queued ops): :meth:`settle` waits for them until :meth:`unhold`. Whoever holds
        sends the work's replies (messages, counted from their ``put``) before it unholds,
        so settle never sees a gap between the work and its reply."""
        with self._lock:
            self._in_flight += count

    def unhold(self, count: int = 1) -> None:
        """The end of :meth:`hold`."""
        self._done(count)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop this runtime's actors, then its worker threads. Idempotent.

        Each live actor is told to stop (queued messages are handled first, then
        ``on_stop``); once quiet (or ``timeout`` spent) the workers exit and are
        joined. Actors still alive are then marked stopped, their queued asks failed
        with ``ActorDeadError``. Returns True if everything finished within
        ``timeout`` (worker threads may outlive a False return if a handler is stuck).
        """
        self._check_not_worker("shutdown")
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        with self._shutdown_lock:
            clean = True
            if not self._closed:
                with self._lock:
                    live = list(self._actors)
                for inbox in live:
                    actor = inbox._actor
                    if actor is None:
                        continue
                    with contextlib.suppress(ActorDeadError):
                        actor.actor_ref.tell(messages._ActorStop())
                clean = self.settle(remaining())
                with self._lock:
                    self._closed = True
                    threads = list(self._threads)
                for _ in threads:
                    self._jobs.put(None)
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join(remaining())
                clean = clean and not thread.is_alive()
            self._drain_jobs()
            with self._lock:
                live = list(self._actors)
            for inbox in live:
                if inbox._token.acquire(False):
                    inbox._reject_all()
                else:
                    clean = False  # held by a handler that did not finish
            return clean

    def __enter__(self: R) -> R:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # Internals -------------------------------------------------------------------

    def _check_not_worker(self, what: str) -> None:
        thread = threading.current_thread()
        if isinstance(thread, _Worker) and thread.runtime is self:
            raise RuntimeError(f"Runtime.{what}() called from one of its own handlers")

    def _start_worker(self) -> None:
        thread = _Worker(self, f"{self.name}-worker-{next(self._numbers)}")
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        get = self._jobs.get
        batch = self._batch
        try:
            urgent = self._urgent
            while True:
                inbox: _Inbox | None
                if urgent:
                    try:
                        inbox = urgent.popleft()
                    except IndexError:  # another worker took it
                        inbox = get()
                else:
                    inbox = get()
                if inbox is None:
                    return
                if inbox is _WAKE:
                    continue
                try:
                    inbox._run(batch)
                except BaseException:
                    logger.exception("Unexpected error in a runtime job of %r", inbox._actor)
                if self._closed:
                    return  # shutdown drains or refuses whatever is left
        finally:
            with self._lock:
                self._threads.discard(cast("_Worker", threading.current_thread()))

    def _submit(self, inbox: _Inbox) -> None:
        """Queue a job for ``inbox``, whose token the caller holds."""
        if self._closed:
            inbox._reject_all()
            return
        if inbox._urgent:
            self._urgent.append(inbox)
            self._jobs.put(_WAKE)
        else:
            self._jobs.put(inbox)
        if self._is_closed():  # lost the race with shutdown's final drain
            self._drain_jobs()

    def _is_closed(self) -> bool:
        return self._closed

    def _drain_jobs(self) -> None:
        """Runtime closed: fail the queued jobs' messages (sentinels go back)."""
        sentinels = 0
        while True:
            try:
                job = self._jobs.get_nowait()
            except _queue.Empty:
                break
            if job is None:
                sentinels += 1
            elif job is not _WAKE:
                job._reject_all()
        while True:
            try:
                urgent = self._urgent.popleft()
            except IndexError:
                break
            urgent._reject_all()
        for _ in range(sentinels):
            self._jobs.put(None)

    def _done(self, count: int) -> None:
        with self._lock:
            self._in_flight -= count
            if self._in_flight <= 0:
                self._quiet.notify_all()

    def _track(self, inbox: _Inbox) -> None:
        with self._lock:
            self._actors.add(inbox)

    def _untrack(self, inbox: _Inbox) -> None:
        with self._lock:
            self._actors.discard(inbox)

    def _enter_blocking(self) -> None:
        """A worker is about to block on a future: add a worker for the duration."""
        with self._lock:
            if not self._closed:
                self._start_worker()

    def _exit_blocking(self) -> None:
        """The blocked worker resumed: one worker retires when it is next idle."""
        if not self._closed:
            self._jobs.put(None)


def _new_urn_source() -> tuple[str, Iterator[int]]:
    prefix = str(uuid.uuid4())[:23]  # 8-4-4-4 of a random v4 UUID: ~74 random bits
    return prefix, itertools.count()


_urn_prefix, _urn_counter = _new_urn_source()


def _reseed_urns() -> None:
    global _urn_prefix, _urn_counter
    _urn_prefix, _urn_counter = _new_urn_source()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_urns)


def _new_urn() -> str:
    """A UUID-shaped URN, unique per actor: a random per-process prefix + a counter.

    ``uuid.uuid4().urn`` costs ~5 us, half of an actor's start; this costs ~0.3 us.
    """
    return f"urn:uuid:{_urn_prefix}-{next(_urn_counter) & 0xFFFFFFFFFFFF:012x}"


_default: Runtime | None = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process-wide runtime used by ``PooledActor.start()`` (created lazily)."""
    global _default
    runtime = _default
    if runtime is None or runtime.closed:
        with _default_lock:
            runtime = _default
            if runtime is None or runtime.closed:
                runtime = _default = Runtime(workers=1, name="tickactors-default")
    return runtime


class PooledActor(pykka.Actor):
    """Base class for actors that run on a :class:`Runtime` instead of a thread each.

    ``Runtime.spawn(cls, ...)`` starts one on that runtime without registering it;
    ``cls.start(...)`` (plain pykka) starts one on :func:`default_runtime` and
    registers it in ``ActorRegistry``. Actors move between worker threads: no
    thread-locals. A handler must not block on another actor's reply.
    """

    #: The runtime this actor runs on; set per instance by Runtime.spawn().
    _tickactors_runtime: Runtime | None = None
    #: Urgent actors' jobs run before ordinary ones (a coordinator that many actors
    #: report to, and whose requests a caller waits on, should not queue behind them).
    urgent: ClassVar[bool] = False

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        # Same fields as pykka.Actor.__init__, with a light stop flag and an inbox bound
        # to the runtime (so no threading.Event is allocated per actor).
        runtime = self._tickactors_runtime or default_runtime()
        inbox = _Inbox(runtime)
        inbox._actor = self
        inbox._urgent = self.urgent
        self.actor_urn = _new_urn()
        self.actor_inbox = inbox
        self.actor_stopped = _StopFlag()
        self._actor_ref = ActorRef(self)

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        msg = "PooledActor subclasses must call super().__init__() (PooledActor.__init__)"
        raise NotImplementedError(msg)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return PooledFuture()

    def _start_actor_loop(self) -> None:
        cast("_Inbox", self.actor_inbox)._start()
