"""Properties of schedule arithmetic over any valid options (the kit's strategies).

Complements tests/test_schedules.py (examples, a brute-force DST model, UTC croniter
agreement): here every property holds for any options the strategies draw, cron is
checked against croniter in other zones, and DST behaviour is checked as the
documentation states it (once per day for fixed jobs, the real clock for wildcards).
"""

from __future__ import annotations

import datetime
import functools
import itertools
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import assume, given
from hypothesis import strategies as st

from protocols import InvalidTaskOptions, TaskOptions
from protocols.schedules import compile_schedule, due_time, next_slot, slots_between
from protocols.testing.strategies import (
    DST_ZONES,
    FIXED_ZONES,
    InvalidOptions,
    cron_expressions,
    durations,
    invalid_task_options,
    task_options,
    timezones,
)

DAY = 86_400
INSTANTS = st.integers(946_684_800, 2_524_608_000)  # 2000 .. 2050


def offset_at(zone: str, t: int) -> int:
    """The UTC offset of ``zone`` at instant ``t``, in seconds."""
    offset = datetime.datetime.fromtimestamp(t, ZoneInfo(zone)).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@functools.cache
def transitions(zone: str, year: int) -> tuple[int, ...]:
    """Every instant in ``year`` at which ``zone`` changes its offset (found by bisection)."""
    start = int(datetime.datetime(year, 1, 1, tzinfo=datetime.UTC).timestamp())
    found: list[int] = []
    for day in range(366):
        low, high = start + day * DAY, start + (day + 1) * DAY
        if offset_at(zone, low) != offset_at(zone, high):
            while high - low > 1:
                middle = (low + high) // 2
                if offset_at(zone, middle) == offset_at(zone, low):
                    low = middle
                else:
                    high = middle
            found.append(high)
    return tuple(found)


@st.composite
def near_transition(draw: st.DrawFn, zones: tuple[str, ...] = DST_ZONES) -> tuple[str, int]:
    """A DST zone and one of its transitions between 2000 and 2040."""
    zone = draw(st.sampled_from(zones))
    year = draw(st.integers(2000, 2040))
    found = transitions(zone, year)
    assume(found)
    return zone, draw(st.sampled_from(found))


# -- any valid options -------------------------------------------------------------------

SMALL_OPTIONS = task_options(
    every=st.integers(1, 7 * DAY),
    cron=cron_expressions(),
    offset=st.integers(-DAY, DAY),
)


@given(options=SMALL_OPTIONS, t=INSTANTS)
def test_due_times_strictly_increase_and_include_the_offset(options: TaskOptions, t: int) -> None:
    """Slots strictly increase, each the first after the one before; due = slot + offset."""
    slot = t
    for _ in range(4):
        following = next_slot(options, slot)
        assert following > slot
        assert next_slot(options, following - 1) == following
        assert due_time(options, following) == following + options.offset
        slot = following


@given(options=SMALL_OPTIONS, t=INSTANTS, first=st.integers(0, 600), second=st.integers(0, 600))
def test_slots_between_splits_and_matches_next_slot(
    options: TaskOptions, t: int, first: int, second: int
) -> None:
    """slots_between(a, c) is slots_between(a, b) + slots_between(b, c), and each next_slot."""
    middle, end = t + first, t + first + second
    whole = slots_between(options, t, end)
    assert whole == slots_between(options, t, middle) + slots_between(options, middle, end)
    assert whole == sorted(set(whole))
    assert all(t < s <= end for s in whole)
    expected = [s for s in [next_slot(options, t)] if s <= end]
    while expected and (following := next_slot(options, expected[-1])) <= end:
        expected.append(following)
    assert whole == expected


@given(
    every=durations(1, 40 * DAY),
    zone=timezones(),
    offset=st.integers(-DAY, DAY),
    t=INSTANTS,
    concurrency=st.integers(1, 100),
)
def test_every_slots_are_aligned_whatever_the_form(
    every: tuple[object, int], zone: str, offset: int, t: int, concurrency: int
) -> None:
    """every=N (int, string or timedelta) and cron='@every N' give the same epoch-aligned slots."""
    value, seconds = every
    by_every = TaskOptions("e", every=value, offset=offset, timezone=zone)  # type: ignore[arg-type]
    by_cron = TaskOptions("c", cron=f"@every {seconds}s", timezone="UTC", concurrency=concurrency)
    slot = next_slot(by_every, t)
    assert slot % seconds == 0
    assert t < slot <= t + seconds
    assert next_slot(by_cron, t) == slot
    assert due_time(by_every, slot) == slot + offset


@given(options=SMALL_OPTIONS, t=INSTANTS, name=st.text(min_size=1).filter(str.strip))
def test_slots_depend_only_on_the_schedule(options: TaskOptions, t: int, name: str) -> None:
    """Name, concurrency and offset do not move the slots."""
    other = TaskOptions.from_mapping({**options.to_mapping(), "name": name, "concurrency": 7})
    shifted = TaskOptions.from_mapping({**options.to_mapping(), "offset": options.offset + 1})
    assert next_slot(other, t) == next_slot(options, t) == next_slot(shifted, t)


# -- cron against croniter, off DST --------------------------------------------------------


def croniter_next(expression: str, zone: str, t: int) -> int:
    """croniter's next match after ``t`` on the wall clock of ``zone``."""
    start = datetime.datetime.fromtimestamp(t, ZoneInfo(zone))
    six = len(expression.split()) == 6
    return int(croniter(expression, start, second_at_beginning=six).get_next(float))


@given(
    expression=cron_expressions(descriptors=False), zone=st.sampled_from(FIXED_ZONES), t=INSTANTS
)
def test_cron_agrees_with_croniter_in_fixed_offset_zones(
    expression: str, zone: str, t: int
) -> None:
    """In zones without daylight saving, the next slot is croniter's next match."""
    options = TaskOptions("c", cron=expression, timezone=zone)
    assert next_slot(options, t) == croniter_next(expression, zone, t)


@given(expression=cron_expressions(descriptors=False), zone=st.sampled_from(DST_ZONES), t=INSTANTS)
def test_cron_agrees_with_croniter_away_from_dst(expression: str, zone: str, t: int) -> None:
    """In DST zones, when no transition lies between t and the slot, croniter agrees."""
    options = TaskOptions("c", cron=expression, timezone=zone)
    slot = next_slot(options, t)
    assume(slot - t < 20 * DAY)
    assume(offset_at(zone, t - 2 * DAY) == offset_at(zone, slot + 2 * DAY) == offset_at(zone, t))
    assert slot == croniter_next(expression, zone, t)


# -- daylight saving, as documented --------------------------------------------------------


@given(
    near=near_transition(),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
)
def test_fixed_daily_job_runs_once_every_local_day(
    near: tuple[str, int], hour: int, minute: int
) -> None:
    """'M H * * *' runs once per local date across a transition: at H:M (first occurrence),
    or at the first instant after the gap when H:M is skipped."""
    zone, transition = near
    tz = ZoneInfo(zone)
    options = TaskOptions("d", cron=f"{minute} {hour} * * *", timezone=zone)
    slots = slots_between(options, transition - 3 * DAY, transition + 3 * DAY)
    dates = [datetime.datetime.fromtimestamp(s, tz).date() for s in slots]
    assert len(set(dates)) == len(dates)
    assert all((b - a).days == 1 for a, b in itertools.pairwise(dates))
    assert len(slots) in (5, 6, 7)
    for slot, date in zip(slots, dates, strict=True):
        wall = datetime.datetime(date.year, date.month, date.day, hour, minute, tzinfo=tz)
        first = int(wall.replace(fold=0).timestamp())
        exists = datetime.datetime.fromtimestamp(first, tz).replace(tzinfo=None) == wall.replace(
            tzinfo=None
        )
        if exists:
            assert slot == first  # a repeated time runs once, at its first occurrence
        else:
            # Skipped: the first instant whose wall time is past H:M, i.e. the end of the gap.
            assert offset_at(zone, slot) != offset_at(zone, slot - 1)
            local = datetime.datetime.fromtimestamp(slot, tz).replace(tzinfo=None)
            assert local > wall.replace(tzinfo=None)


@given(near=near_transition(), shift=st.integers(-DAY, DAY))
def test_quarter_hour_job_follows_the_real_clock(near: tuple[str, int], shift: int) -> None:
    """'*/15 * * * *' runs every 900 real seconds across any transition (offsets are whole
    quarter hours in every zone drawn)."""
    zone, transition = near
    start = transition + shift
    options = TaskOptions("q", cron="*/15 * * * *", timezone=zone)
    slots = slots_between(options, start, start + 6 * 3600)
    assert slots == list(range((start // 900 + 1) * 900, start + 6 * 3600 + 1, 900))


@given(
    near=near_transition(tuple(z for z in DST_ZONES if z not in ("Australia/Lord_Howe",))),
    minute=st.integers(0, 59),
)
def test_hourly_job_follows_the_real_clock(near: tuple[str, int], minute: int) -> None:
    """'M * * * *' in a zone of whole-hour offsets: slots one real hour apart across a
    transition (none for a skipped hour, one in each pass of a repeated one)."""
    zone, transition = near
    options = TaskOptions("h", cron=f"{minute} * * * *", timezone=zone)
    slots = slots_between(options, transition - 4 * 3600, transition + 4 * 3600)
    assert all(b - a == 3600 for a, b in itertools.pairwise(slots))
    assert len(slots) == 8
    assert all(s % 3600 == minute * 60 for s in slots)


# -- options -----------------------------------------------------------------------------


@given(options=task_options())
def test_valid_options_round_trip(options: TaskOptions) -> None:
    """Options the strategy draws are valid, and rebuild equal from their mapping."""
    assert TaskOptions.from_mapping(options.to_mapping()) == options
    assert compile_schedule(options) is compile_schedule(options)


@given(invalid=invalid_task_options())
def test_invalid_options_name_every_problem(invalid: InvalidOptions) -> None:
    """Invalid options are rejected with exactly one problem per invalid option, at once."""
    with pytest.raises(InvalidTaskOptions) as raised:
        TaskOptions(**invalid.kwargs)
    assert invalid.matches(raised.value.problems), (invalid, raised.value.problems)
    assert str(raised.value) == "invalid options: " + "; ".join(raised.value.problems)


@given(invalid=invalid_task_options())
def test_invalid_mappings_name_every_problem(invalid: InvalidOptions) -> None:
    """from_mapping reports the same problems (a missing name counts as the name's problem)."""
    with pytest.raises(InvalidTaskOptions) as raised:
        TaskOptions.from_mapping(invalid.kwargs)
    assert invalid.matches(raised.value.problems), (invalid, raised.value.problems)
