"""A Hypothesis state machine that drives a real Scheduler and checks it against a model.

:class:`SchedulerMachine` runs real actors on a store (a :class:`~protocols.MemoryStore`
unless you override :meth:`SchedulerMachine.make_store`) and a
:class:`~protocols.testing.manual.ManualExecutor`, and applies random sequences of:
add, claim, update (concurrency, schedule, offset, active/inactive, with or without
catch-up), release, ticks forward (small steps, big jumps and jumps of minutes that
leave a backlog) and backwards, force_run, retry_run, cancel_run, run outcomes
(success, failure, wait error, cancel at the executor), execute failures, and
stop/restart on the same store with runs left in progress "by a crashed process".
After every step it waits for the actors (``settle``) and checks, against a simple
model:

- no task has more runs in flight than its concurrency (nor the executor's record);
- the scheduled runs of an active task are exactly its due slots, in increasing
  order, none missing, none twice; a task with a free slot has nothing due or
  queued; inactive tasks create no runs; unclaimed tasks have nothing in flight;
- manual runs are served first, in the order they were queued; runs left in
  progress are resumed (in slot order) before new runs are created;
- every run goes scheduled -> started -> one terminal state, with exactly one
  ``finish_run``, and the terminal state is the one the step asked for;
- the Prometheus metrics equal the model's counts;
- refused operations raise the documented error and change nothing;
- after stop: nothing in flight, no pending promise, no thread left behind.

Run it against your own store with a few lines (``Scheduler`` being
:class:`actors.Scheduler`, imported by your test module)::

    class MyStoreMachine(SchedulerMachine):
        scheduler_class = Scheduler

        def make_store(self, clock):
            return MyStore(clock=clock)

    TestMyStoreMachine = MyStoreMachine.TestCase

``scheduler_class`` names the scheduler to drive (``protocols`` never imports
``actors``): any class with :class:`actors.Scheduler`'s constructor and methods, so
the same machine also checks a scheduler variant.

Schedules are ``every`` schedules (1-10 s) and cron expressions (every minute or
two, quarter-hourly, hourly, and fixed-time jobs at the hours clocks change) in
UTC, Asia/Kolkata, Europe/Berlin, America/New_York and Australia/Lord_Howe, with
offsets of -90 to 45 s. The clock starts up to 90 minutes before a 2024 DST change
(or far from any) and moves by seconds and by minutes, so cron slots come due,
backlogs form and clocks go forward and back under the tasks. The expected slots
come from :mod:`~protocols.testing.state_machine.oracle`, a brute-force reading of
the documented rules (daylight saving as Vixie cron) that shares no code with
:mod:`protocols.schedules`.

The package's modules: :mod:`.recording` (the store wrappers and the recorded
events), :mod:`.oracle` (expected slots), :mod:`.model` (runs, tasks, claims),
:mod:`.base` (factories and draws), :mod:`.invariants` (the check after every
step) and :mod:`.rules` (the operations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import settings as Settings
from hypothesis.stateful import run_state_machine_as_test

from protocols.contracts import TaskStore
from protocols.testing.state_machine.recording import ForwardingStore, RecordingStore, StoreEvent
from protocols.testing.state_machine.rules import SchedulerMachine

__all__ = [
    "ForwardingStore",
    "RecordingStore",
    "SchedulerMachine",
    "StoreEvent",
    "run_scheduler_machine",
    "scheduler_machine",
]


def scheduler_machine(
    store_factory: Callable[[Callable[[], float]], TaskStore],
    close: Callable[[TaskStore], None] | None = None,
    *,
    scheduler_class: type[Any],
) -> type[SchedulerMachine]:
    """A :class:`SchedulerMachine` subclass driving ``scheduler_class`` on stores from
    ``store_factory(clock)``."""
    chosen = scheduler_class

    class _Machine(SchedulerMachine):
        scheduler_class = chosen

        def make_store(self, clock: Callable[[], float]) -> TaskStore:
            return store_factory(clock)

        def close_store(self, store: TaskStore) -> None:
            if close is not None:
                close(store)

    _Machine.__name__ = _Machine.__qualname__ = f"SchedulerMachine[{store_factory!r}]"
    return _Machine


def run_scheduler_machine(
    store_factory: Callable[[Callable[[], float]], TaskStore],
    *,
    scheduler_class: type[Any],
    settings: Settings | None = None,
    close: Callable[[TaskStore], None] | None = None,
) -> None:
    """Run the machine against ``store_factory``'s stores; raises on the first failure."""
    machine = scheduler_machine(store_factory, close, scheduler_class=scheduler_class)
    run_state_machine_as_test(machine, settings=settings)
