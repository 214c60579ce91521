"""The scheduler state machine (protocols.testing.state_machine) on MemoryStore and real actors."""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from prometheus_client import CollectorRegistry

from actors import Scheduler
from actors.metrics import SchedulerMetrics
from protocols import SQLiteStore, TaskOptions, TaskStore
from protocols.schedules import next_slot
from protocols.testing.hostile import FailingMetrics
from protocols.testing.state_machine import SchedulerMachine
from protocols.testing.state_machine.base import CRONS, EPOCHS, ZONES
from protocols.testing.state_machine.oracle import expected_due, expected_next_slot


class MemoryStoreMachine(SchedulerMachine):
    """The machine driving actors.Scheduler on the default MemoryStore."""

    scheduler_class = Scheduler

    def make_metrics(self, registry: CollectorRegistry) -> Any:
        """The scheduler's own metrics, behind updates the rules can make raise."""
        return FailingMetrics(SchedulerMetrics(registry), enabled=False)


class SQLiteStoreMachine(MemoryStoreMachine):
    """The machine on SQLiteStore, a new file per example; every restart reopens it."""

    def make_store(self, clock: Callable[[], float]) -> TaskStore:
        self._directory = tempfile.mkdtemp(prefix="tickactors-machine-")
        return SQLiteStore(os.path.join(self._directory, "machine.db"), clock=clock)

    def close_store(self, store: TaskStore) -> None:
        assert isinstance(store, SQLiteStore)
        store.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def reopen_store(self, store: TaskStore, clock: Callable[[], float]) -> TaskStore:
        assert isinstance(store, SQLiteStore)
        store.close()
        return SQLiteStore(store.path, clock=clock)


# Five times the profile's examples (ci: 150, about 12 s; long: 1500), 50 steps each.
PROFILE = settings()  # the loaded profile
TestSchedulerMachine = MemoryStoreMachine.TestCase
TestSchedulerMachine.settings = settings(
    PROFILE,
    max_examples=5 * PROFILE.max_examples,
    stateful_step_count=50,
)
TestSchedulerMachineOnSQLite = SQLiteStoreMachine.TestCase
TestSchedulerMachineOnSQLite.settings = TestSchedulerMachine.settings


# -- the oracle the machine's expected slots come from ---------------------------------

NY_FORWARD = 1_710_054_000  # 2024-03-10T07:00Z: 02:00 EST -> 03:00 EDT
NY_BACK = 1_730_613_600  # 2024-11-03T06:00Z: 02:00 EDT -> 01:00 EST
HOUR = 3600


def _cron(expression: str, timezone: str) -> TaskOptions:
    return TaskOptions(name="t", cron=expression, timezone=timezone)


def test_oracle_counts_every_from_the_epoch() -> None:
    """every slots are the multiples of every; the offset only moves the due time."""
    options = TaskOptions(name="t", every=7, offset=-3)
    assert [expected_next_slot(options, t) for t in (-1, 0, 6, 7, 13)] == [0, 7, 7, 14, 14]
    assert expected_due(options, 14) == 11


def test_oracle_follows_the_readme_on_daylight_saving() -> None:
    """The README's examples: fixed-time jobs once (after a gap, first pass), wildcards
    by the real clock."""
    skipped = _cron("30 2 * * *", "America/New_York")
    assert expected_next_slot(skipped, NY_FORWARD - HOUR) == NY_FORWARD  # 03:00 EDT
    repeated = _cron("30 1 * * *", "America/New_York")
    first = NY_BACK - HOUR // 2  # 01:30 EDT = 05:30Z
    assert expected_next_slot(repeated, first - 1) == first
    assert expected_next_slot(repeated, first) == first + 24 * HOUR + HOUR  # not 01:30 EST
    wildcard = _cron("30 * * * *", "America/New_York")
    assert expected_next_slot(wildcard, first) == first + HOUR  # 01:30 EST too
    assert expected_next_slot(_cron("30 * * * *", "America/New_York"), NY_FORWARD - 1) == (
        NY_FORWARD + HOUR // 2  # 03:30 EDT: 02:30 never shows
    )
    lord_howe = _cron("15 2 * * *", "Australia/Lord_Howe")  # 02:00 -> 02:30 on 2024-10-06
    assert expected_next_slot(lord_howe, 1_728_142_200 - 1) == 1_728_142_200


@pytest.mark.parametrize(("instant", "zone"), EPOCHS)
def test_each_epoch_is_at_a_dst_change_of_its_zone_or_far_from_any(instant: int, zone: str) -> None:
    """The machine's clock starts just before a DST change of the epoch's zone."""
    tz = zoneinfo.ZoneInfo(zone)

    def offset(t: int) -> datetime.timedelta | None:
        return datetime.datetime.fromtimestamp(t, tz).utcoffset()

    changes = offset(instant - 1) != offset(instant)
    assert changes == (zone != "Asia/Kolkata")


def test_oracle_agrees_with_the_schedules_around_the_epochs() -> None:
    """A cross-check: the store's arithmetic and the brute-force oracle agree on the
    machine's crons, zones and epochs (disagreement is a bug in one of them)."""
    for instant, _ in EPOCHS:
        for expression in CRONS:
            for zone in ZONES:
                options = _cron(expression, zone)
                for after in range(instant - 2 * HOUR, instant + 3 * HOUR, 17 * 60 + 11):
                    assert next_slot(options, after) == expected_next_slot(options, after), (
                        expression,
                        zone,
                        after,
                    )
