"""What a user writes to check a store with the kit (here the store is MemoryStore)."""

from collections.abc import Callable

from actors import Scheduler
from protocols import MemoryStore, TaskStore
from protocols.testing import SchedulerMachine, TaskStoreContract


class TestMyStore(TaskStoreContract):
    """The TaskStore contract suite."""

    def make_store(self, clock: Callable[[], float]) -> TaskStore:
        return MemoryStore(clock=clock)


class MyStoreMachine(SchedulerMachine):
    """The scheduler state machine, on my store."""

    scheduler_class = Scheduler

    def make_store(self, clock: Callable[[], float]) -> TaskStore:
        return MemoryStore(clock=clock)


TestMyStoreMachine = MyStoreMachine.TestCase
