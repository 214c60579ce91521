"""Tests of the pooled pykka runtime (actors/runtime.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.runtime import DEFAULT_BATCH, PooledActor, PooledFuture, Runtime, default_runtime

WAIT = 10.0  # generous bound for anything that should happen promptly


def worker_threads(name: str) -> set[threading.Thread]:
    """The live worker threads of runtimes named ``name`` (``f"{name}-worker-{i}"``).

    Tests compare these sets before and after, never the global thread count, so a
    thread another test or a library leaves behind cannot fail them.
    """
    prefix = f"{name}-worker-"
    return {t for t in threading.enumerate() if t.name.startswith(prefix)}


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    """A one-worker runtime, shut down after the test."""
    rt = Runtime(workers=1, name="test-rt")
    yield rt
    rt.shutdown(timeout=WAIT)


@pytest.fixture
def runtime2() -> Iterator[Runtime]:
    """A two-worker runtime, shut down after the test."""
    rt = Runtime(workers=2, name="test-rt2")
    yield rt
    rt.shutdown(timeout=WAIT)


class Recorder(PooledActor):
    """Records every message it receives; answers asks with its record."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "get":
            return list(self.seen)
        self.seen.append(message)
        return None

    def record(self) -> list[Any]:
        return list(self.seen)


class Gate(PooledActor):
    """Blocks its worker on an event the test controls, signalling when it does."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.entered = entered
        self.release = release

    def on_receive(self, message: Any) -> Any:
        self.entered.set()
        assert self.release.wait(WAIT)
        return message


def block_worker(rt: Runtime) -> tuple[pykka.ActorRef[Gate], threading.Event]:
    """Park one worker of ``rt`` in a Gate handler; returns the gate and its release."""
    entered, release = threading.Event(), threading.Event()
    gate = rt.spawn(Gate, entered, release)
    gate.tell("block")
    assert entered.wait(WAIT)
    return gate, release


# Ordering and exclusivity ---------------------------------------------------------


def test_per_actor_order_is_kept_under_concurrent_senders(runtime2: Runtime) -> None:
    """Each sender's messages reach each actor in the order that sender sent them."""
    actors = [runtime2.spawn(Recorder) for _ in range(4)]
    senders, per_sender = 6, 500
    start = threading.Barrier(senders)

    def send(sender: int) -> None:
        start.wait()
        for seq in range(per_sender):
            for ref in actors:
                ref.tell((sender, seq))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    for ref in actors:
        seen: list[tuple[int, int]] = ref.ask("get", block=True, timeout=WAIT)
        assert len(seen) == senders * per_sender
        for sender in range(senders):
            assert [seq for s, seq in seen if s == sender] == list(range(per_sender))


class Exclusive(PooledActor):
    """Notes any moment where two of its handlers would run at once."""

    def __init__(self, overlaps: list[int]) -> None:
        super().__init__()
        self.busy = threading.Lock()
        self.overlaps = overlaps
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "count":
            return self.count
        if not self.busy.acquire(blocking=False):
            self.overlaps.append(1)
            return None
        try:
            total = 0
            for i in range(200):  # some work, so that overlaps would show
                total += i
            self.count += 1
        finally:
            self.busy.release()
        return None


def test_one_message_at_a_time_per_actor_with_two_workers(runtime2: Runtime) -> None:
    """No actor ever runs two handlers concurrently, even with two workers."""
    overlaps: list[int] = []
    actors = [runtime2.spawn(Exclusive, overlaps) for _ in range(3)]

    def send() -> None:
        for _ in range(2000):
            for ref in actors:
                ref.tell("work")

    threads = [threading.Thread(target=send) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert runtime2.settle(WAIT)
    assert overlaps == []
    assert [ref.ask("count", timeout=WAIT) for ref in actors] == [6000, 6000, 6000]


def test_batches_let_other_actors_run_between(runtime: Runtime) -> None:
    """A flooded actor yields the worker after one batch, so others are not starved."""
    gate, release = block_worker(runtime)
    flooded = runtime.spawn(Recorder)
    seen_by_other: list[int] = []
    done = threading.Event()

    flooded_actor = flooded._actor_weakref()
    assert isinstance(flooded_actor, Recorder)
    flooded_seen = flooded_actor.seen

    class Peek(PooledActor):
        def on_receive(self, message: Any) -> Any:
            seen_by_other.append(len(flooded_seen))
            done.set()

    for i in range(10 * DEFAULT_BATCH):
        flooded.tell(i)
    peek = runtime.spawn(Peek)
    peek.tell("peek")
    release.set()
    assert done.wait(WAIT)
    assert seen_by_other == [DEFAULT_BATCH]
    assert runtime.settle(WAIT)
    assert flooded.ask("get", timeout=WAIT) == list(range(10 * DEFAULT_BATCH))
    assert gate.is_alive()


# Messaging API -----------------------------------------------------------------------


class Calculator(PooledActor):
    """Answers proxy calls and asks."""

    def __init__(self, base: int) -> None:
        super().__init__()
        self.base = base

    def add(self, x: int) -> int:
        return self.base + x

    def fail(self) -> None:
        raise ValueError("boom")

    def on_receive(self, message: Any) -> Any:
        return ("got", message)


def test_ask_tell_proxy_and_futures(runtime: Runtime) -> None:
    """ask, tell, proxies and future combinators work as with ThreadingActor."""
    ref = runtime.spawn(Calculator, 10)
    assert ref.ask("hi", timeout=WAIT) == ("got", "hi")
    future = ref.ask("later", block=False)
    assert isinstance(future, PooledFuture)
    assert future.get(timeout=WAIT) == ("got", "later")
    proxy = ref.proxy()
    assert proxy.add(5).get(timeout=WAIT) == 15
    assert proxy.base.get(timeout=WAIT) == 10
    proxy.base = 20
    assert pykka.get_all([proxy.add(i) for i in range(3)], timeout=WAIT) == [20, 21, 22]
    assert proxy.add(1).map(lambda v: v * 2).get(timeout=WAIT) == 42
    with pytest.raises(ValueError, match="boom"):
        proxy.fail().get(timeout=WAIT)
    assert ref.is_alive()  # an exception returned to an asker does not stop the actor


def test_spawn_does_not_register_but_start_does() -> None:
    """spawn() skips the ActorRegistry; PooledActor.start() registers, as pykka does."""
    with Runtime(name="reg-rt") as rt:
        spawned = rt.spawn(Calculator, 1)
        assert spawned not in pykka.ActorRegistry.get_all()
        started = Calculator.start(2)
        try:
            assert started in pykka.ActorRegistry.get_all()
            assert started.ask("x", timeout=WAIT) == ("got", "x")
            assert started.actor_inbox._runtime is default_runtime()  # type: ignore[attr-defined]
        finally:
            assert started.stop(timeout=WAIT)
        assert started not in pykka.ActorRegistry.get_all()


def test_messages_sent_before_start_are_handled_after_on_start(runtime: Runtime) -> None:
    """A message sent from __init__ waits for start, and on_start runs first."""

    class Early(PooledActor):
        def __init__(self) -> None:
            super().__init__()
            self.log: list[str] = ["init"]
            self.actor_ref.tell("from-init")

        def on_start(self) -> None:
            self.log.append("on_start")

        def on_receive(self, message: Any) -> Any:
            if message == "log":
                return list(self.log)
            self.log.append(message)
            return None

    ref = runtime.spawn(Early)
    assert ref.ask("log", timeout=WAIT) == ["init", "on_start", "from-init"]


# Stop and failure ---------------------------------------------------------------------


def test_stop_handles_earlier_messages_and_rejects_later_ones(runtime: Runtime) -> None:
    """Messages before stop are handled; asks queued after it get ActorDeadError."""
    ref = runtime.spawn(Recorder)
    gate, release = block_worker(runtime)
    for i in range(100):
        ref.tell(i)
    stopped = ref.stop(block=False)
    late_ask = ref.ask("late", block=False)
    release.set()
    assert stopped.get(timeout=WAIT) is True
    with pytest.raises(pykka.ActorDeadError):
        late_ask.get(timeout=WAIT)
    actor = ref._actor_weakref()
    assert isinstance(actor, Recorder)
    assert actor.seen == list(range(100))
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("after")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("after", timeout=WAIT)
    assert ref.stop(timeout=WAIT) is False
    assert runtime.settle(WAIT)
    assert gate.is_alive()


def test_on_stop_runs_and_actor_stopped_can_be_waited(runtime: Runtime) -> None:
    """on_stop runs on stop, and actor_stopped.wait() returns once stopped."""
    stopped_event = threading.Event()

    class Stopper(PooledActor):
        def on_stop(self) -> None:
            stopped_event.set()

    ref = runtime.spawn(Stopper)
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(ref.actor_stopped.wait(WAIT)))
    waiter.start()
    ref.stop(block=False)
    waiter.join(WAIT)
    assert waited == [True]
    assert stopped_event.is_set()


class Fragile(PooledActor):
    """Raises on "explode"; records the rest."""

    def __init__(self, failed: threading.Event) -> None:
        super().__init__()
        self.failed = failed
        self.seen: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "explode":
            raise RuntimeError("explode")
        self.seen.append(message)
        return None

    def on_failure(self, *args: Any) -> None:
        self.failed.set()


def test_tell_failure_stops_only_that_actor_and_worker_survives(runtime: Runtime) -> None:
    """A raising tell handler stops its actor; other actors and the worker carry on."""
    failed = threading.Event()
    fragile = runtime.spawn(Fragile, failed)
    bystander = runtime.spawn(Recorder)
    gate, release = block_worker(runtime)
    bystander.tell("before")
    fragile.tell("explode")
    fragile.tell("never handled")
    bystander.tell("after")
    release.set()
    assert failed.wait(WAIT)
    assert fragile.actor_stopped.wait(WAIT)
    assert not fragile.is_alive()
    assert bystander.ask("get", timeout=WAIT) == ["before", "after"]
    assert runtime.settle(WAIT)
    actor = fragile._actor_weakref()
    assert isinstance(actor, Fragile)
    assert actor.seen == []
    assert runtime.spawn(Recorder).ask("get", timeout=WAIT) == []
    assert gate.is_alive()


# settle ------------------------------------------------------------------------------


class Relay(PooledActor):
    """Records its name, then tells the next actor in the chain."""

    def __init__(self, name: str, log: list[str], nxt: pykka.ActorRef[Any] | None) -> None:
        super().__init__()
        self.name = name
        self.log = log
        self.next = nxt

    def on_receive(self, message: Any) -> Any:
        self.log.append(f"{self.name}:{message}")
        if self.next is not None:
            self.next.tell(message)
        return None


@pytest.mark.parametrize("workers", [1, 2])
def test_settle_waits_for_the_end_of_a_cascade(workers: int) -> None:
    """settle() returns True only after the last actor of a tell chain has run."""
    log: list[str] = []
    with Runtime(workers=workers, name="cascade") as rt:
        nxt: pykka.ActorRef[Any] | None = None
        names = [f"a{i}" for i in range(20)]
        for name in reversed(names):
            nxt = rt.spawn(Relay, name, log, nxt)
        assert nxt is not None
        for round_ in range(3):
            nxt.tell(round_)
            assert rt.settle(WAIT) is True
            assert log[-1] == f"a19:{round_}"
            assert len(log) == 20 * (round_ + 1)
            assert rt.in_flight == 0


def test_settle_times_out_while_a_handler_is_blocked(runtime: Runtime) -> None:
    """settle() returns False on timeout while a handler runs, True once it is done."""
    _gate, release = block_worker(runtime)
    assert runtime.in_flight == 1
    assert runtime.settle(timeout=0.05) is False
    release.set()
    assert runtime.settle(WAIT) is True


def test_settle_on_an_idle_runtime_returns_true_at_once(runtime: Runtime) -> None:
    """An idle runtime (even with idle actors) is settled, even with a zero timeout."""
    assert runtime.settle(timeout=0) is True
    runtime.spawn(Recorder)
    assert runtime.settle(timeout=0) is True
    assert runtime.settle() is True


def test_settle_from_a_handler_is_an_error(runtime: Runtime) -> None:
    """Calling settle() from one of the runtime's handlers raises instead of hanging."""

    class Settler(PooledActor):
        def on_receive(self, message: Any) -> Any:
            return runtime.settle(timeout=WAIT)

    with pytest.raises(RuntimeError, match="own handlers"):
        runtime.spawn(Settler).ask("settle", timeout=WAIT)


# Blocking inside a handler --------------------------------------------------------------


class Asker(PooledActor):
    """Asks another actor synchronously from a handler (against rule 3, but pykka-legal)."""

    def __init__(self, target: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.target = target

    def on_receive(self, message: Any) -> Any:
        return self.target.ask(message, timeout=WAIT)


def test_blocking_ask_inside_a_handler_does_not_deadlock_one_worker() -> None:
    """A handler asking another actor on a one-worker runtime gets its answer; no thread stays."""
    before = worker_threads("blocking")
    with Runtime(workers=1, name="blocking") as rt:
        started = worker_threads("blocking") - before
        assert len(started) == 1
        target = rt.spawn(Calculator, 0)
        chain = rt.spawn(Asker, rt.spawn(Asker, target))
        assert chain.ask("deep", timeout=WAIT) == ("got", "deep")
        assert rt.settle(WAIT)
    # The compensating workers started while handlers blocked are gone too.
    assert worker_threads("blocking") - before == set()
    assert [t for t in started if t.is_alive()] == []


# Scale, shutdown --------------------------------------------------------------------------


def test_ten_thousand_actors_add_no_threads(runtime: Runtime) -> None:
    """Spawning 10,000 actors and messaging each one adds no worker thread."""
    before = worker_threads(runtime.name)
    assert before  # the fixture's worker: the filter does see this runtime's threads
    refs = [runtime.spawn(Recorder) for _ in range(10_000)]
    assert worker_threads(runtime.name) - before == set()
    assert runtime.actor_count == 10_000
    for i, ref in enumerate(refs):
        ref.tell(i)
    assert runtime.settle(WAIT)
    assert worker_threads(runtime.name) - before == set()
    assert refs[1234].ask("get", timeout=WAIT) == [1234]


def test_shutdown_stops_actors_and_the_workers_it_started_and_is_idempotent() -> None:
    """shutdown() stops actors (on_stop runs) and its three workers; twice is harmless."""
    before = worker_threads("shut")
    stopped = threading.Event()

    class Stopper(PooledActor):
        def on_stop(self) -> None:
            stopped.set()

    rt = Runtime(workers=3, name="shut")
    started = worker_threads("shut") - before
    assert sorted(t.name for t in started) == [f"shut-worker-{i}" for i in range(3)]
    ref = rt.spawn(Stopper)
    assert rt.settle(WAIT)
    assert rt.settle(WAIT)
    assert rt.shutdown(timeout=WAIT) is True
    assert rt.shutdown(timeout=WAIT) is True
    assert [t for t in started if t.is_alive()] == []
    assert worker_threads("shut") - before == set()
    assert stopped.is_set()
    assert not ref.is_alive()
    assert rt.actor_count == 0


def test_after_shutdown_messages_are_refused() -> None:
    """After shutdown, tell raises ActorDeadError, ask fails and spawn raises."""
    rt = Runtime(name="closed")
    ref = rt.spawn(Recorder)
    rt.shutdown(timeout=WAIT)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("x")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("x", timeout=WAIT)
    with pytest.raises(RuntimeError, match="shut down"):
        rt.spawn(Recorder)
    assert rt.settle(timeout=0) is True


def test_shutdown_fails_asks_that_could_not_be_handled() -> None:
    """An ask still queued when shutdown's timeout expires gets ActorDeadError."""
    rt = Runtime(name="stuck")
    ref = rt.spawn(Recorder)
    _gate, release = block_worker(rt)
    pending = ref.ask("queued", block=False)
    assert rt.shutdown(timeout=0.05) is False
    with pytest.raises(pykka.ActorDeadError):
        pending.get(timeout=WAIT)
    assert not ref.is_alive()
    release.set()
    assert rt.shutdown(timeout=WAIT) is True


def test_spawn_rejects_non_pooled_actor_classes(runtime: Runtime) -> None:
    """spawn() only accepts PooledActor subclasses."""
    with pytest.raises(TypeError, match="PooledActor"):
        runtime.spawn(pykka.ThreadingActor)


# Urgent actors ---------------------------------------------------------------------


class Journal(PooledActor):
    """Appends (its name, the message) to a list shared by the test's actors."""

    def __init__(self, name: str, journal: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.name = name
        self.journal = journal

    def on_receive(self, message: Any) -> Any:
        self.journal.append((self.name, message))
        return None


class UrgentJournal(Journal):
    """A Journal whose jobs jump the queue."""

    urgent = True


def test_an_urgent_actor_jumps_the_queue_of_ready_actors(runtime: Runtime) -> None:
    """With the only worker busy, an urgent actor's job runs before earlier ordinary ones."""
    journal: list[tuple[str, Any]] = []
    ordinary = [runtime.spawn(Journal, f"o{i}", journal) for i in range(5)]
    urgent = runtime.spawn(UrgentJournal, "u", journal)
    _gate, release = block_worker(runtime)
    for ref in ordinary:
        ref.tell("work")
    urgent.tell("report")
    release.set()
    assert runtime.settle(WAIT)
    assert journal[0] == ("u", "report")
    assert sorted(journal[1:]) == [(f"o{i}", "work") for i in range(5)]


def test_urgent_jobs_are_refused_after_shutdown() -> None:
    """A message to an urgent actor after shutdown fails like any other."""
    rt = Runtime(workers=1, name="test-urgent")
    urgent = rt.spawn(UrgentJournal, "u", [])
    rt.shutdown(timeout=WAIT)
    with pytest.raises(pykka.ActorDeadError):
        urgent.tell("late")
