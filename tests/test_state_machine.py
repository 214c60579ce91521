"""The scheduler state machine (protocols.testing.state_machine) on MemoryStore and real actors."""

from __future__ import annotations

from hypothesis import settings

from actors import Scheduler
from protocols.testing.state_machine import SchedulerMachine


class MemoryStoreMachine(SchedulerMachine):
    """The machine driving actors.Scheduler on the default MemoryStore."""

    scheduler_class = Scheduler


# Five times the profile's examples (ci: 150, about 10 s; long: 1500), 50 steps each.
PROFILE = settings()  # the loaded profile
TestSchedulerMachine = MemoryStoreMachine.TestCase
TestSchedulerMachine.settings = settings(
    PROFILE,
    max_examples=5 * PROFILE.max_examples,
    stateful_step_count=50,
)
