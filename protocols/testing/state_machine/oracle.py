"""The expected slots of a task, by brute force, independent of :mod:`protocols.schedules`.

The machine must not check the store's slots with the arithmetic the store itself
uses (a bug there would pass), so this module re-derives them from the documented
rules, as slowly and plainly as it can:

``every``
    The first second after ``after`` that is a multiple of ``every``, found by
    counting seconds one by one (``@every <duration>`` alike).

``cron``
    The first minute after ``after`` at which the job fires, found by walking the
    minutes one by one. A minute's wall time in the task's zone comes from
    :mod:`zoneinfo` (every zone's offsets and transitions fall on whole minutes, so
    walking minutes misses nothing; 5-field expressions fire at second 0). Whether
    the job fires at a minute is the README's daylight-saving rule (Vixie cron):

    - a *wildcard* job (``*``, ``?`` or ``/`` in the minute or hour field) fires at
      every minute whose wall time matches: nothing for skipped wall times, again in
      each pass of a repeated hour;
    - a *fixed-time* job fires at a minute whose wall time matches and was not shown
      in the 26 hours before (the first occurrence of a repeated time only), and at
      the first minute after a gap when a skipped wall time matches.

    The field matcher is this module's own: numbers, ``*``, ``?``, lists, ranges and
    steps, day-of-week 0-7 (0 and 7 Sunday), the two day fields OR-ed when both are
    restricted; the ``@hourly``-style descriptors. Names (``JAN``, ``MON``) and
    6-field expressions are not supported (the machine does not draw them).

Results are cached per schedule, so a long walk is paid once per minute and schedule.
"""

from __future__ import annotations

import datetime
import functools
import zoneinfo
from typing import Final, NamedTuple

from protocols.options import TaskOptions, parse_duration

__all__ = ["CronOracle", "cron_oracle", "expected_due", "expected_next_slot", "is_fixed_time"]

_MINUTES_PER_DAY: Final = 24 * 60
#: How far back a repeated wall time is looked for (no clock ever went back a day).
_LOOKBACK: Final = 26 * 60
#: How far ahead a slot is looked for before giving up (a leap day is the rarest).
_SCAN_LIMIT: Final = 5 * 366 * _MINUTES_PER_DAY
_DESCRIPTORS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_RANGES: Final = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAIVE_EPOCH: Final = datetime.datetime(1970, 1, 1)


def expected_next_slot(options: TaskOptions, after: int) -> int:
    """The first slot of ``options`` strictly after ``after``."""
    if options.every is not None:
        return _every_next(options.every, after)
    assert options.cron is not None
    expression = " ".join(options.cron.split())
    if expression.lower().startswith("@every "):
        return _every_next(parse_duration(expression[len("@every ") :]), after)
    return cron_oracle(expression, options.timezone).next_after(after)


def expected_due(options: TaskOptions, slot: int) -> int:
    """When the run for ``slot`` is due: ``offset`` seconds after it."""
    return slot + options.offset


@functools.lru_cache(maxsize=1 << 16)
def _every_next(every: int, after: int) -> int:
    t = after + 1
    while t % every:
        t += 1
    return t


class _Wall(NamedTuple):
    """A wall-clock minute: its number (naive minutes since 1970-01-01) and fields."""

    number: int
    minute: int
    hour: int
    day: int
    month: int
    weekday: int  # cron's: 0 is Sunday


def _fields(moment: datetime.datetime, index: int) -> _Wall:
    weekday = (moment.weekday() + 1) % 7
    return _Wall(index, moment.minute, moment.hour, moment.day, moment.month, weekday)


_WALLS: dict[str, dict[int, _Wall]] = {}


def _wall(zone: zoneinfo.ZoneInfo, minute: int) -> _Wall:
    """The wall time, in ``zone``, of the instant ``minute * 60``."""
    walls = _WALLS.setdefault(zone.key, {})
    wall = walls.get(minute)
    if wall is None:
        local = datetime.datetime.fromtimestamp(minute * 60, zone)
        offset = local.utcoffset()
        assert offset is not None
        wall = _fields(local, minute + int(offset.total_seconds()) // 60)
        walls[minute] = wall
    return wall


def _naive(index: int) -> _Wall:
    """The fields of wall minute ``index`` (a wall time no instant may show)."""
    return _fields(_NAIVE_EPOCH + datetime.timedelta(minutes=index), index)


def _values(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = int(step_text) if slash else 1
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-")
            first, last = int(first_text), int(last_text)
        else:
            first = int(base)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _split(expression: str) -> list[str]:
    expanded = _DESCRIPTORS.get(expression.lower(), expression)
    fields = expanded.split(" ")
    if len(fields) != 5 or not all(c.isdigit() or c in "*?,-/" for c in "".join(fields)):
        raise ValueError(
            f"the oracle reads 5-field numeric cron expressions only, not {expression!r}"
        )
    return fields


def is_fixed_time(expression: str) -> bool:
    """True for a fixed-time job: no ``*``, ``?`` or ``/`` in its minute and hour fields."""
    minute, hour = _split(expression)[:2]
    return not any(c in minute + hour for c in "*?/")


class CronOracle:
    """When a 5-field cron job fires, in ``timezone``, walking minute by minute."""

    def __init__(self, expression: str, timezone: str) -> None:
        fields = _split(expression)
        self.expression = expression
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.fixed = is_fixed_time(expression)
        minutes, hours, days, months, weekdays = (
            _values(text, low, high) for text, (low, high) in zip(fields, _RANGES, strict=True)
        )
        self._minutes, self._hours, self._days, self._months = minutes, hours, days, months
        self._weekdays = frozenset(d % 7 for d in weekdays)
        self._either_day = fields[2][0] not in "*?" and fields[4][0] not in "*?"
        self._next_from: dict[int, int] = {}

    def matches(self, wall: _Wall) -> bool:
        """The expression matches the wall-clock minute ``wall``."""
        if wall.minute not in self._minutes or wall.hour not in self._hours:
            return False
        if wall.month not in self._months:
            return False
        day, weekday = wall.day in self._days, wall.weekday in self._weekdays
        return (day or weekday) if self._either_day else (day and weekday)

    def fires(self, minute: int) -> bool:
        """The job runs at the instant ``minute * 60``."""
        wall = _wall(self.zone, minute)
        if not self.fixed:
            return self.matches(wall)
        if self.matches(wall) and not any(
            _wall(self.zone, minute - k).number == wall.number for k in range(1, _LOOKBACK + 1)
        ):
            return True
        before = _wall(self.zone, minute - 1).number
        return any(self.matches(_naive(index)) for index in range(before + 1, wall.number))

    def next_after(self, t: int) -> int:
        """The first instant strictly after ``t`` at which the job runs."""
        start = minute = t // 60 + 1
        walked: list[int] = []
        while True:
            known = self._next_from.get(minute)
            if known is not None:
                found = known
                break
            walked.append(minute)
            if self.fires(minute):
                found = minute
                break
            minute += 1
            if minute - start > _SCAN_LIMIT:
                raise ValueError(f"cron {self.expression!r} never fires after {t}")
        for each in walked:
            self._next_from[each] = found
        return found * 60


@functools.lru_cache(maxsize=256)
def cron_oracle(expression: str, timezone: str) -> CronOracle:
    """The (cached) oracle for ``expression`` in ``timezone``."""
    return CronOracle(expression, timezone)
