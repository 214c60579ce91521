"""The scheduler state machine (protocols.testing.state_machine) on MemoryStore and real actors."""

from __future__ import annotations

from hypothesis import settings

from protocols.testing.state_machine import SchedulerMachine

TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(settings.default, stateful_step_count=50)
