"""Schedules: every (epoch-aligned), offset, cron fields and descriptors, time zones, DST.

Expected instants are derived independently of the code under test: from
``datetime`` with ``zoneinfo`` (a wall time and its ``fold``), from calendar facts,
or from a brute-force minute-by-minute model of Vixie cron's rules.
"""

from __future__ import annotations

import calendar
import datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import TaskOptions
from protocols.schedules import (
    CronSchedule,
    EverySchedule,
    compile_schedule,
    due_time,
    next_slot,
    slots_between,
)

UTC = datetime.UTC
HOUR = 3600
DAY = 86400


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Unix seconds of a UTC date-time."""
    return int(datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def at(tz: str, year: int, month: int, day: int, hour: int, minute: int, *, fold: int = 0) -> int:
    """Unix seconds of a wall-clock time in ``tz`` (``fold=1``: its second occurrence)."""
    wall = datetime.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz), fold=fold)
    return int(wall.timestamp())


def cron(expression: str, timezone: str = "UTC") -> TaskOptions:
    """Options for a cron task."""
    return TaskOptions("t", cron=expression, timezone=timezone)


# --- every ----------------------------------------------------------------------


def test_every_slots_are_multiples_of_every_since_the_epoch() -> None:
    """every 7m falls on multiples of 420 seconds."""
    options = TaskOptions("t", every="7m")
    assert slots_between(options, 1000, 2000) == [1260, 1680]
    assert next_slot(options, 1_700_000_000) == 1_700_000_400  # 4047620 * 420


def test_next_slot_is_strictly_after() -> None:
    """A time on a slot gives the following slot."""
    options = TaskOptions("t", every=420)
    assert next_slot(options, 840) == 1260
    assert next_slot(options, 839) == 840


def test_every_ignores_the_time_zone() -> None:
    """every counts seconds: the zone does not shift the grid."""
    tokyo = TaskOptions("t", every="1h", cron=None, timezone="Asia/Tokyo")
    assert slots_between(tokyo, utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 2, 30)) == [
        utc(2024, 1, 1, 1, 0),
        utc(2024, 1, 1, 2, 0),
    ]


def test_offset_moves_the_due_time_not_the_slot() -> None:
    """The run is for the slot and due at slot + offset (negative offsets too)."""
    later = TaskOptions("t", every=60, offset="15s")
    earlier = TaskOptions("t", every=60, offset="-5s")
    assert next_slot(later, 100) == next_slot(earlier, 100) == 120
    assert due_time(later, 120) == 135
    assert due_time(earlier, 120) == 115


def test_at_every_is_every_aligned_to_the_epoch() -> None:
    """cron '@every 90s' has exactly the slots of every=90."""
    assert compile_schedule(cron("@every 90s")) == EverySchedule(90)
    assert slots_between(cron("@every 90s"), 100, 400) == [180, 270, 360]
    assert slots_between(cron("@every 1h", "Asia/Kolkata"), 0, 2 * HOUR) == [HOUR, 2 * HOUR]


def test_compile_schedule_is_cached() -> None:
    """Equal options compile once."""
    assert compile_schedule(cron("*/5 * * * *")) is compile_schedule(cron("*/5 * * * *"))


# --- cron fields ---------------------------------------------------------------------


def test_five_fields_have_second_zero() -> None:
    """'15 10 * * *' runs daily at 10:15:00 UTC."""
    assert slots_between(cron("15 10 * * *"), utc(2024, 1, 1, 0, 0), utc(2024, 1, 3, 0, 0)) == [
        utc(2024, 1, 1, 10, 15),
        utc(2024, 1, 2, 10, 15),
    ]


def test_six_fields_put_seconds_first() -> None:
    """'30 15 10 * * *' is second 30, minute 15, hour 10."""
    assert next_slot(cron("30 15 10 * * *"), utc(2024, 1, 1, 0, 0)) == utc(2024, 1, 1, 10, 15, 30)


def test_six_fields_step_in_seconds() -> None:
    """'*/20 * * * * *' runs every 20 seconds."""
    start = utc(2024, 5, 5, 5, 5)
    assert slots_between(cron("*/20 * * * * *"), start, start + 60) == [
        start + 20,
        start + 40,
        start + 60,
    ]


def test_month_and_weekday_names() -> None:
    """'0 12 * jan,JUL Mon' runs at noon on every Monday of January and July."""
    slots = slots_between(cron("0 12 * jan,JUL Mon"), utc(2024, 1, 1, 0, 0), utc(2025, 1, 1, 0, 0))
    mondays = [
        utc(2024, month, day, 12, 0)
        for month in (1, 7)
        for day in range(1, calendar.monthrange(2024, month)[1] + 1)
        if calendar.weekday(2024, month, day) == calendar.MONDAY
    ]
    assert slots == mondays


def test_question_mark_is_a_wildcard() -> None:
    """'0 0 1 * ?' runs on the first of each month only (? does not widen the days)."""
    slots = slots_between(cron("0 0 1 * ?"), utc(2023, 12, 31, 0, 0), utc(2024, 12, 31, 0, 0))
    assert slots == [utc(2024, month, 1, 0, 0) for month in range(1, 13)]


def test_restricted_day_fields_match_either() -> None:
    """'0 0 13 * FRI' runs on the 13th and on every Friday (cron's OR rule)."""
    slots = slots_between(cron("0 0 13 * FRI"), utc(2024, 9, 1, 0, 0), utc(2024, 10, 1, 0, 0))
    expected = [
        utc(2024, 9, day, 0, 0)
        for day in range(2, 31)
        if day == 13 or calendar.weekday(2024, 9, day) == calendar.FRIDAY
    ]
    assert slots == expected
    assert utc(2024, 9, 13, 0, 0) in slots


def test_ranges_lists_and_steps() -> None:
    """'0,30 9-17/4 * * 1-5' runs at :00 and :30 of 9, 13 and 17 on weekdays."""
    slots = slots_between(
        cron("0,30 9-17/4 * * 1-5"), utc(2024, 6, 7, 0, 0), utc(2024, 6, 11, 0, 0)
    )
    expected = [
        utc(2024, 6, day, hour, minute)
        for day in (7, 10)  # Friday 7 June and Monday 10 June 2024
        for hour in (9, 13, 17)
        for minute in (0, 30)
    ]
    assert slots == expected


def test_start_slash_step() -> None:
    """'5/15 * * * *' runs at minutes 5, 20, 35 and 50."""
    slots = slots_between(cron("5/15 * * * *"), utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 1, 0))
    assert slots == [utc(2024, 1, 1, 0, minute) for minute in (5, 20, 35, 50)]


def test_sunday_is_zero_and_seven() -> None:
    """Day of week 7 is Sunday, like 0 and SUN."""
    start, end = utc(2024, 1, 1, 0, 0), utc(2024, 2, 1, 0, 0)
    sundays = slots_between(cron("0 0 * * 7"), start, end)
    assert sundays == slots_between(cron("0 0 * * 0"), start, end)
    assert sundays == slots_between(cron("0 0 * * sun"), start, end)
    assert sundays == [utc(2024, 1, day, 0, 0) for day in (7, 14, 21, 28)]


@pytest.mark.parametrize(
    ("descriptor", "expected"),
    [
        ("@yearly", (2025, 1, 1, 0, 0)),
        ("@annually", (2025, 1, 1, 0, 0)),
        ("@monthly", (2024, 6, 1, 0, 0)),
        ("@weekly", (2024, 5, 19, 0, 0)),  # Sunday 19 May 2024
        ("@daily", (2024, 5, 16, 0, 0)),
        ("@midnight", (2024, 5, 16, 0, 0)),
        ("@hourly", (2024, 5, 15, 13, 0)),
    ],
)
def test_descriptors(descriptor: str, expected: tuple[int, ...]) -> None:
    """Each descriptor's next slot after Wednesday 2024-05-15 12:34:56 UTC."""
    assert next_slot(cron(descriptor), utc(2024, 5, 15, 12, 34, 56)) == utc(*expected)


def test_leap_day() -> None:
    """'0 0 29 2 *' skips to the next leap year."""
    assert next_slot(cron("0 0 29 2 *"), utc(2024, 3, 1, 0, 0)) == utc(2028, 2, 29, 0, 0)


# --- time zones ----------------------------------------------------------------------


def test_cron_in_tokyo() -> None:
    """'0 9 * * *' in Asia/Tokyo (UTC+9, no DST) runs at 00:00 UTC."""
    slots = slots_between(
        cron("0 9 * * *", "Asia/Tokyo"), utc(2024, 1, 1, 0, 0), utc(2024, 1, 3, 0, 0)
    )
    assert slots == [utc(2024, 1, 2, 0, 0), utc(2024, 1, 3, 0, 0)]


def test_cron_in_half_hour_zone() -> None:
    """'0 9 * * *' in Asia/Kolkata (UTC+5:30) runs at 03:30 UTC."""
    assert next_slot(cron("0 9 * * *", "Asia/Kolkata"), utc(2024, 1, 1, 0, 0)) == utc(
        2024, 1, 1, 3, 30
    )


def test_cron_in_a_fixed_offset_zone() -> None:
    """Etc/GMT-3 is UTC+3 (POSIX signs): '0 12 * * *' runs at 09:00 UTC."""
    assert next_slot(cron("0 12 * * *", "Etc/GMT-3"), utc(2024, 1, 1, 0, 0)) == utc(
        2024, 1, 1, 9, 0
    )


def test_summer_time_shifts_wall_clock_jobs() -> None:
    """'0 9 * * *' in New York is 14:00 UTC in winter and 13:00 UTC in summer."""
    options = cron("0 9 * * *", "America/New_York")
    assert next_slot(options, utc(2024, 1, 15, 0, 0)) == utc(2024, 1, 15, 14, 0)
    assert next_slot(options, utc(2024, 7, 15, 0, 0)) == utc(2024, 7, 15, 13, 0)


# --- daylight saving: New York
# 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST

NY = "America/New_York"


def test_ny_spring_forward_fixed_job_runs_at_end_of_gap() -> None:
    """'30 2 * * *' runs at 03:00 EDT (07:00 UTC) on the day 02:30 does not exist."""
    slots = slots_between(cron("30 2 * * *", NY), utc(2024, 3, 9, 0, 0), utc(2024, 3, 12, 0, 0))
    assert slots == [
        at(NY, 2024, 3, 9, 2, 30),
        at(NY, 2024, 3, 10, 3, 0),
        at(NY, 2024, 3, 11, 2, 30),
    ]
    assert slots[1] == utc(2024, 3, 10, 7, 0)


def test_ny_spring_forward_six_field_fixed_job() -> None:
    """'0 30 2 * * *' (seconds first) behaves like '30 2 * * *' in the gap."""
    options = cron("0 30 2 * * *", NY)
    assert next_slot(options, utc(2024, 3, 10, 0, 0)) == at(NY, 2024, 3, 10, 3, 0)


def test_ny_spring_forward_several_fixed_times_in_the_gap_run_once() -> None:
    """'0,30 2 * * *' runs once, at the end of the gap, for both skipped times."""
    slots = slots_between(cron("0,30 2 * * *", NY), utc(2024, 3, 10, 0, 0), utc(2024, 3, 11, 0, 0))
    assert slots == [at(NY, 2024, 3, 10, 3, 0)]


def test_ny_spring_forward_wildcard_skips_missing_times() -> None:
    """'30 * * * *' has no run for 02:30 and runs at 01:30 EST and 03:30 EDT."""
    slots = slots_between(
        cron("30 * * * *", NY), at(NY, 2024, 3, 10, 0, 0), at(NY, 2024, 3, 10, 5, 0)
    )
    assert slots == [
        at(NY, 2024, 3, 10, 0, 30),
        at(NY, 2024, 3, 10, 1, 30),
        at(NY, 2024, 3, 10, 3, 30),
        at(NY, 2024, 3, 10, 4, 30),
    ]
    assert slots[2] - slots[1] == HOUR  # the real clock: one hour apart


def test_ny_spring_forward_quarter_hours_follow_the_real_clock() -> None:
    """'*/15 * * * *' runs every 900 real seconds; the local day has 23 * 4 runs."""
    day = (at(NY, 2024, 3, 10, 0, 0), at(NY, 2024, 3, 11, 0, 0))
    slots = slots_between(cron("*/15 * * * *", NY), day[0] - 1, day[1] - 1)
    assert slots == list(range(day[0], day[1], 900))
    assert len(slots) == 23 * 4


def test_ny_fall_back_fixed_job_runs_at_first_occurrence() -> None:
    """'30 1 * * *' runs at 01:30 EDT (05:30 UTC), not again at 01:30 EST."""
    slots = slots_between(cron("30 1 * * *", NY), utc(2024, 11, 2, 0, 0), utc(2024, 11, 5, 0, 0))
    assert slots == [
        at(NY, 2024, 11, 2, 1, 30),
        at(NY, 2024, 11, 3, 1, 30, fold=0),
        at(NY, 2024, 11, 4, 1, 30),
    ]
    assert slots[1] == utc(2024, 11, 3, 5, 30)
    assert at(NY, 2024, 11, 3, 1, 30, fold=1) not in slots


def test_ny_fall_back_wildcard_runs_in_both_passes() -> None:
    """'30 * * * *' runs at 01:30 EDT and again at 01:30 EST."""
    start = at(NY, 2024, 11, 3, 0, 0)
    slots = slots_between(cron("30 * * * *", NY), start, at(NY, 2024, 11, 3, 3, 0))
    assert slots == [
        at(NY, 2024, 11, 3, 0, 30),
        at(NY, 2024, 11, 3, 1, 30, fold=0),
        at(NY, 2024, 11, 3, 1, 30, fold=1),
        at(NY, 2024, 11, 3, 2, 30),
    ]
    assert slots == [utc(2024, 11, 3, hour, 30) for hour in (4, 5, 6, 7)]


def test_ny_fall_back_quarter_hours_follow_the_real_clock() -> None:
    """'*/15 * * * *' runs every 900 real seconds; the local day has 25 * 4 runs."""
    day = (at(NY, 2024, 11, 3, 0, 0), at(NY, 2024, 11, 4, 0, 0))
    slots = slots_between(cron("*/15 * * * *", NY), day[0] - 1, day[1] - 1)
    assert slots == list(range(day[0], day[1], 900))
    assert len(slots) == 25 * 4


def test_ny_next_after_from_inside_the_gap() -> None:
    """From an instant just before and at the gap's end, fixed and wildcard jobs go on."""
    end_of_gap = utc(2024, 3, 10, 7, 0)
    assert next_slot(cron("30 2 * * *", NY), end_of_gap - 1) == end_of_gap
    assert next_slot(cron("30 2 * * *", NY), end_of_gap) == at(NY, 2024, 3, 11, 2, 30)
    assert next_slot(cron("30 * * * *", NY), end_of_gap - 1) == at(NY, 2024, 3, 10, 3, 30)


def test_ny_next_after_from_inside_the_repeated_hour() -> None:
    """Between the two 01:30s, a fixed job waits a day, a wildcard job runs the second."""
    between = utc(2024, 11, 3, 6, 0)  # 01:00 EST, after 01:30 EDT, before 01:30 EST
    assert next_slot(cron("30 1 * * *", NY), between) == at(NY, 2024, 11, 4, 1, 30)
    assert next_slot(cron("30 * * * *", NY), between) == at(NY, 2024, 11, 3, 1, 30, fold=1)
    # From before the first pass, both get the first 01:30.
    assert next_slot(cron("30 1 * * *", NY), utc(2024, 11, 3, 5, 0)) == utc(2024, 11, 3, 5, 30)


# --- daylight saving: London
# 2024-03-31 01:00 GMT -> 02:00 BST; 2024-10-27 02:00 BST -> 01:00 GMT

LONDON = "Europe/London"


def test_london_fixed_jobs() -> None:
    """'30 1 * * *' runs at 02:00 BST on 31 March and at 01:30 BST (first) on 27 October."""
    options = cron("30 1 * * *", LONDON)
    assert next_slot(options, utc(2024, 3, 30, 12, 0)) == at(LONDON, 2024, 3, 31, 2, 0)
    assert next_slot(options, utc(2024, 3, 30, 12, 0)) == utc(2024, 3, 31, 1, 0)
    assert next_slot(options, utc(2024, 10, 26, 12, 0)) == utc(2024, 10, 27, 0, 30)
    assert next_slot(options, utc(2024, 10, 27, 0, 30)) == at(LONDON, 2024, 10, 28, 1, 30)


def test_london_wildcard_jobs() -> None:
    """'30 * * * *' skips 01:30 in March and runs twice at 01:30 in October."""
    options = cron("30 * * * *", LONDON)
    march = slots_between(options, utc(2024, 3, 30, 23, 0), utc(2024, 3, 31, 3, 0))
    # 23:30 and 00:30 GMT, no 01:30, then 02:30 and 03:30 BST.
    assert march == [
        utc(2024, 3, 30, 23, 30),
        utc(2024, 3, 31, 0, 30),
        utc(2024, 3, 31, 1, 30),
        utc(2024, 3, 31, 2, 30),
    ]
    assert at(LONDON, 2024, 3, 31, 3, 30) == march[-1]
    october = slots_between(options, utc(2024, 10, 26, 23, 0), utc(2024, 10, 27, 2, 0))
    assert october == [
        at(LONDON, 2024, 10, 27, 0, 30),
        at(LONDON, 2024, 10, 27, 1, 30, fold=0),
        at(LONDON, 2024, 10, 27, 1, 30, fold=1),
    ]


def test_lord_howe_half_hour_shift() -> None:
    """Lord Howe jumps 02:00 -> 02:30: '15 2 * * *' runs at 02:30 (+11), i.e. 15:30 UTC."""
    options = cron("15 2 * * *", "Australia/Lord_Howe")
    assert next_slot(options, utc(2024, 10, 5, 0, 0)) == at(
        "Australia/Lord_Howe", 2024, 10, 6, 2, 30
    )
    assert next_slot(options, utc(2024, 10, 5, 0, 0)) == utc(2024, 10, 5, 15, 30)


# --- brute-force model of Vixie cron ------------------------------------------------------


def vixie_model(expression: str, tz: str, start: int, end: int) -> list[int]:
    """Slots in (start, end] found minute by minute (start and end whole minutes).

    Only the minute and hour fields may be restricted. A wildcard job runs at each
    instant whose wall time matches; a fixed job only at a wall time's first
    occurrence (fold 0), and once at the end of a forward jump over a match.
    """
    (minutes, hours, *_), _ = croniter.expand(expression)
    minute_set = set(range(60)) if minutes == ["*"] else set(minutes)
    hour_set = set(range(24)) if hours == ["*"] else set(hours)
    fixed = not any(mark in field for field in expression.split()[:2] for mark in "*?/")
    zone = ZoneInfo(tz)

    def matches(wall: datetime.datetime) -> bool:
        return wall.minute in minute_set and wall.hour in hour_set

    slots: list[int] = []
    previous = datetime.datetime.fromtimestamp(start, zone).replace(tzinfo=None)
    for instant in range(start + 60, end + 1, 60):
        local = datetime.datetime.fromtimestamp(instant, zone)
        wall = local.replace(tzinfo=None)
        jumped = (wall - previous) // datetime.timedelta(minutes=1) - 1
        skipped = [previous + datetime.timedelta(minutes=k) for k in range(1, jumped + 1)]
        if (fixed and any(matches(w) for w in skipped)) or (
            matches(wall) and (not fixed or local.fold == 0)
        ):
            slots.append(instant)
        previous = wall
    return slots


TRANSITIONS = [
    ("America/New_York", utc(2024, 3, 10, 7, 0)),
    ("America/New_York", utc(2024, 11, 3, 6, 0)),
    ("Europe/London", utc(2024, 3, 31, 1, 0)),
    ("Europe/London", utc(2024, 10, 27, 1, 0)),
    ("Australia/Sydney", utc(2024, 4, 6, 16, 0)),
    ("Australia/Sydney", utc(2024, 10, 5, 16, 0)),
    ("Australia/Lord_Howe", utc(2024, 4, 6, 15, 0)),
    ("Australia/Lord_Howe", utc(2024, 10, 5, 15, 30)),
]
MODEL_EXPRESSIONS = [
    "30 2 * * *",
    "30 1 * * *",
    "15 2 * * *",
    "0,30 2 * * *",
    "45 1-2 * * *",
    "0 0 * * *",
    "*/15 * * * *",
    "30 * * * *",
    "0 */2 * * *",
    "*/20 1 * * *",
    "10 2-3 * * *",
]


@pytest.mark.parametrize(("tz", "transition"), TRANSITIONS)
@pytest.mark.parametrize("expression", MODEL_EXPRESSIONS)
def test_dst_agrees_with_minute_by_minute_model(tz: str, transition: int, expression: str) -> None:
    """Around each transition, the slots are exactly the brute-force model's."""
    start, end = transition - 14 * HOUR, transition + 14 * HOUR
    assert slots_between(cron(expression, tz), start, end) == vixie_model(
        expression, tz, start, end
    )


def test_model_sees_the_rules() -> None:
    """The model itself gives the known New York answers (so it can tell bad from good)."""
    spring = utc(2024, 3, 10, 7, 0)
    assert vixie_model("30 2 * * *", NY, spring - DAY // 2, spring + DAY // 2) == [spring]
    autumn = utc(2024, 11, 3, 6, 0)
    assert vixie_model("30 1 * * *", NY, autumn - 2 * HOUR, autumn + 2 * HOUR) == [autumn - 1800]
    assert vixie_model("30 1 * * *", NY, autumn - 2 * HOUR, autumn + 2 * HOUR) != []
    assert vixie_model("30 * * * *", NY, autumn - 2 * HOUR, autumn + HOUR) == [
        autumn - 5400,
        autumn - 1800,
        autumn + 1800,
    ]


# --- properties -------------------------------------------------------------------------

INSTANTS = st.integers(min_value=utc(1990, 1, 1, 0, 0), max_value=utc(2060, 1, 1, 0, 0))


@given(every=st.integers(min_value=1, max_value=40 * DAY), t=INSTANTS)
def test_every_next_is_aligned_and_within_one_period(every: int, t: int) -> None:
    """next_after(t) is the first multiple of every after t."""
    slot = EverySchedule(every).next_after(t)
    assert t < slot <= t + every
    assert slot % every == 0


def field(low: int, high: int) -> st.SearchStrategy[str]:
    """A cron field over low..high: *, a value, a list, a range, or a step."""
    value = st.integers(low, high)
    ranges = st.tuples(value, value).map(sorted)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.lists(value, min_size=2, max_size=3, unique=True).map(lambda v: ",".join(map(str, v))),
        ranges.map(lambda r: f"{r[0]}-{r[1]}"),
        st.integers(1, high - low + 1).map(lambda s: f"*/{s}"),
        st.tuples(ranges, st.integers(1, 10)).map(lambda rs: f"{rs[0][0]}-{rs[0][1]}/{rs[1]}"),
    )


FIVE_FIELDS = st.tuples(field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 6)).map(
    " ".join
)


@settings(deadline=None)
@given(expression=FIVE_FIELDS, t=INSTANTS)
def test_utc_cron_agrees_with_croniter(expression: str, t: int) -> None:
    """In UTC, the next slot is croniter's next match."""
    expected = croniter(expression, datetime.datetime.fromtimestamp(t, UTC)).get_next(float)
    assert next_slot(cron(expression), t) == int(expected)


@settings(deadline=None)
@given(seconds=field(0, 59), expression=FIVE_FIELDS, t=INSTANTS)
def test_six_field_cron_agrees_with_croniter(seconds: str, expression: str, t: int) -> None:
    """Seconds-first 6-field expressions match croniter's seconds-first reading."""
    six = f"{seconds} {expression}"
    start = datetime.datetime.fromtimestamp(t, UTC)
    expected = croniter(six, start, second_at_beginning=True).get_next(float)
    assert next_slot(cron(six), t) == int(expected)


ZONES = st.sampled_from(
    ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]
)
DST_EXPRESSIONS = st.tuples(field(0, 59), field(0, 23)).map(lambda mh: f"{mh[0]} {mh[1]} * * *")


@settings(deadline=None)
@given(expression=DST_EXPRESSIONS, tz=ZONES, t=INSTANTS, data=st.data())
def test_next_after_is_the_first_slot_after(
    expression: str, tz: str, t: int, data: st.DataObject
) -> None:
    """next_after(t) > t, and any t' in [t, slot) has the same next slot."""
    schedule = compile_schedule(cron(expression, tz))
    slot = schedule.next_after(t)
    assert slot > t
    assert schedule.next_after(slot - 1) == slot
    between = data.draw(st.integers(t, slot - 1))
    assert schedule.next_after(between) == slot
    assert schedule.next_after(slot) > slot


@settings(deadline=None)
@given(
    expression=DST_EXPRESSIONS,
    near=st.sampled_from(TRANSITIONS),
    shift=st.integers(-6 * 60, 3 * 60),
)
def test_dst_windows_agree_with_model(expression: str, near: tuple[str, int], shift: int) -> None:
    """Random minute/hour expressions agree with the brute-force model near transitions."""
    tz, transition = near
    start = transition + shift * 60
    end = start + 4 * HOUR
    assert slots_between(cron(expression, tz), start, end) == vixie_model(
        expression, tz, start, end
    )


def test_cron_schedule_reports_wildcard() -> None:
    """Vixie's wildcard rule: *, ? or / in minute or hour."""
    assert CronSchedule("30 * * * *").wildcard
    assert CronSchedule("*/5 2 * * *").wildcard
    assert CronSchedule("0 0-23/2 * * *").wildcard
    assert not CronSchedule("30 2 * * *").wildcard
    assert not CronSchedule("*/10 30 2 * * *").wildcard  # seconds do not count
    assert not CronSchedule("0 0 * * *", "Europe/Paris").wildcard
