"""The scheduler state machine (protocols.testing.state_machine) on MemoryStore and real actors."""

from __future__ import annotations

from hypothesis import settings

from protocols.testing.state_machine import SchedulerMachine

# Five times the profile's examples (ci: 150, about 10 s; long: 1500), 50 steps each.
PROFILE = settings()  # the loaded profile
TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(
    PROFILE,
    max_examples=5 * PROFILE.max_examples,
    stateful_step_count=50,
)
