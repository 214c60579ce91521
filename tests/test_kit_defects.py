"""The kit finds the defects of issue 7 by itself: each, re-introduced, fails the machine.

``tests/broken_variants.py`` puts one defect back at a time. The state machine, with
the CI profile's budget (the examples ``tests/test_state_machine.py`` runs, 50 steps
each, no shrinking), must fail on every one, and pass on the real Scheduler.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from prometheus_client import CollectorRegistry

from actors import Scheduler
from tests.broken_variants import VARIANTS
from tests.test_state_machine import MemoryStoreMachine

PROFILE = settings()  # the loaded profile
FIND = settings(
    max_examples=5 * PROFILE.max_examples,  # what tests/test_state_machine.py runs
    stateful_step_count=50,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples every run: finding a defect is not luck
)


def _machine(scheduler: type[Scheduler]) -> type[MemoryStoreMachine]:
    class Machine(MemoryStoreMachine):
        scheduler_class = scheduler
        # A wedged actor answers within 2 s and a jammed one settles within 10 s, so a
        # broken variant fails (and is stopped) in seconds; the real scheduler's calls
        # and settles take milliseconds.
        scheduler_kwargs: ClassVar[dict[str, Any]] = {"call_timeout": 2.0}
        settle_timeout: ClassVar[float] = 10.0

        def make_metrics(self, registry: CollectorRegistry) -> Any:
            if getattr(scheduler, "own_metrics", False):
                return None  # the variant registers its own metric set
            return super().make_metrics(registry)

    Machine.__name__ = f"Machine[{scheduler.__name__}]"
    return Machine


@pytest.mark.parametrize("defect", list(VARIANTS), ids=lambda d: f"defect-{d}")
def test_the_state_machine_finds_each_defect(defect: str) -> None:
    """Re-introduced, defect N of issue 7 fails the state machine within the CI budget."""
    machine = _machine(VARIANTS[defect])
    started = time.monotonic()
    machine.TestCase.settings = FIND
    with pytest.raises(AssertionError) as found:
        machine.TestCase().runTest()
    print(
        f"defect {defect} ({VARIANTS[defect].__name__}) found in "
        f"{time.monotonic() - started:.1f} s: {str(found.value).splitlines()[0][:160]}"
    )


def test_the_same_budget_passes_on_the_real_scheduler() -> None:
    """The same machine and budget pass on actors.Scheduler."""
    machine = _machine(Scheduler)
    machine.TestCase.settings = FIND
    machine.TestCase().runTest()
