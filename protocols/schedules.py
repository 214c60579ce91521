"""Schedule arithmetic: the slots of a task, as ``int`` Unix seconds (UTC).

A *slot* is the instant a run is for; the run is *due* at slot + ``offset``.

``every``
    Slots are the multiples of ``every`` seconds since the Unix epoch
    (1970-01-01T00:00:00Z): ``every=7m`` runs at 0, 420, 840, ... whatever the
    time zone. ``cron="@every <duration>"`` means exactly the same.

``cron``
    5 fields (``minute hour day-of-month month day-of-week``; second 0) or 6 fields
    with the **seconds first** (``second minute hour day-of-month month
    day-of-week``, as robfig/cron, which InfluxDB used). Each field takes ``*``,
    ``?`` (same as ``*``), numbers, lists (``1,15``), ranges (``1-5``) and steps
    (``*/15``, ``0-30/10``, ``5/15`` = from 5 to the end by 15); months ``JAN``-``DEC``
    and weekdays ``SUN``-``SAT`` by name (any case); day-of-week 0-7, where 0 and 7
    are Sunday. When both day fields are restricted, a day matches either (as
    cron). Descriptors: ``@yearly`` = ``@annually`` = ``0 0 1 1 *``, ``@monthly`` =
    ``0 0 1 * *``, ``@weekly`` = ``0 0 * * 0``, ``@daily`` = ``@midnight`` =
    ``0 0 * * *``, ``@hourly`` = ``0 * * * *``; and ``@every <duration>``.
    An expression that can never match (``0 0 31 4 *``) is invalid.

Time zones and daylight saving
    A cron expression is evaluated on the wall clock of the task's ``timezone``
    (an IANA name; default UTC). Daylight saving follows Vixie cron (Debian's
    cron(8)):

    - A *fixed-time* job (no ``*``, ``?`` or step ``/`` in its minute and hour
      fields, e.g. ``30 2 * * *``) whose wall-clock time is skipped when the clocks
      go forward runs once, at the first instant after the gap (New York,
      2024-03-10: ``30 2 * * *`` runs at 03:00 EDT = 07:00 UTC). One whose
      wall-clock time repeats when the clocks go back runs once, at the first
      occurrence (New York, 2024-11-03: ``30 1 * * *`` runs at 01:30 EDT = 05:30 UTC,
      not again at 01:30 EST).
    - A *wildcard* job (``*``, ``?`` or a step in the minute or hour field, e.g.
      ``*/15 * * * *`` or ``30 * * * *``) follows the real clock: nothing runs for
      wall-clock times that are skipped, and it runs in each pass of a repeated
      hour (``30 * * * *`` runs at 01:30 EDT and again at 01:30 EST).

    ``every`` schedules ignore the time zone: they count seconds, not wall time.
"""

from __future__ import annotations

import copy
import datetime
import functools
import re
import zoneinfo
from collections.abc import Sequence
from typing import Final, Protocol

import attrs
from croniter import CroniterBadDateError, CroniterError, croniter

from protocols.options import TaskOptions, parse_duration

__all__ = [
    "CronSchedule",
    "EverySchedule",
    "Schedule",
    "compile_schedule",
    "cron_problem",
    "due_time",
    "every_in_cron",
    "next_slot",
    "slots_between",
]


class Schedule(Protocol):
    """The slots of a task: instants (Unix seconds) at which a run is for."""

    def next_after(self, t: int) -> int:
        """The first slot strictly after ``t``."""
        ...


@attrs.frozen
class EverySchedule:
    """Slots at multiples of ``every`` seconds since the Unix epoch."""

    every: int

    def next_after(self, t: int) -> int:
        """The first multiple of ``every`` strictly after ``t``."""
        return (t // self.every + 1) * self.every


# ---------------------------------------------------------------------------
# Parsing cron expressions
# ---------------------------------------------------------------------------

_DESCRIPTORS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS: Final = (
    "JAN",
    "FEB",
    "MAR",
    "APR",
    "MAY",
    "JUN",
    "JUL",
    "AUG",
    "SEP",
    "OCT",
    "NOV",
    "DEC",
)
_WEEKDAYS: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@attrs.frozen
class _Field:
    name: str
    low: int
    high: int
    names: Sequence[str] = ()  # names[i] is the value low + i
    name_base: int = 0  # the value of names[0]


_SECOND = _Field("second", 0, 59)
_FIELDS5: Final = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day of week", 0, 7, _WEEKDAYS, 0),
)
_ITEM_RE: Final = re.compile(
    r"(?P<base>\*|\?|(?P<lo>\d+|[A-Za-z]+)(?:-(?P<hi>\d+|[A-Za-z]+))?)(?:/(?P<step>\d+))?"
)
_EXPECTED_CRON: Final = (
    "expected 5 fields 'minute hour day-of-month month day-of-week', 6 fields with "
    "seconds first, or one of " + ", ".join(_DESCRIPTORS) + ", @every <duration>"
)


def _value(token: str, field: _Field) -> int:
    """The number a token stands for in ``field``; ValueError says what is wrong."""
    if token.isdigit():
        number = int(token)
    elif field.names and token.upper() in field.names:
        number = field.names.index(token.upper()) + field.name_base
    elif field.names:
        raise ValueError(
            f"{token!r} in the {field.name} field is not a number or name; expected "
            f"{field.low}-{field.high} or one of {' '.join(field.names)}"
        )
    else:
        raise ValueError(
            f"{token!r} in the {field.name} field is not a number; expected "
            f"{field.low}-{field.high}"
        )
    if not field.low <= number <= field.high:
        raise ValueError(
            f"{token!r} in the {field.name} field is out of range; expected "
            f"{field.low}-{field.high}"
        )
    return number


def _check_field(text: str, field: _Field) -> None:
    """Raise ValueError when ``text`` is not a valid cron ``field``."""
    for item in text.split(","):
        match = _ITEM_RE.fullmatch(item)
        if match is None:
            raise ValueError(
                f"{item!r} in the {field.name} field is not valid; expected *, ?, a "
                "value, a range a-b, a list a,b or a step */n or a-b/n"
            )
        if match["lo"] is not None:
            low = _value(match["lo"], field)
            if match["hi"] is not None and _value(match["hi"], field) < low:
                raise ValueError(
                    f"{item!r} in the {field.name} field is a backwards range; "
                    "expected low-high with low <= high"
                )
        step = match["step"]
        if step is not None and int(step) < 1:
            raise ValueError(
                f"step {step!r} in the {field.name} field is out of range; expected a "
                "step of at least 1"
            )


@attrs.frozen
class _ParsedCron:
    """A checked cron expression: an ``@every`` period, or croniter's form of it."""

    every: int | None = None
    expression: str = ""  # croniter's, seconds first when seconds is True
    seconds: bool = False
    wildcard: bool = False  # Vixie's rule: *, ? or / in the minute or hour field


_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_PROBE_START: Final = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


@functools.lru_cache(maxsize=1024)
def _parse_cron(text: str) -> _ParsedCron | str:
    """The parsed expression, or a message saying what is wrong with it."""
    expression = " ".join(text.split())
    if not expression:
        return f"{text!r} is empty; {_EXPECTED_CRON}"
    if expression.startswith("@"):
        keyword, _, rest = expression.partition(" ")
        if keyword.lower() == "@every":
            try:
                seconds = parse_duration(rest)
            except ValueError as err:
                return f"{text!r}: {err}"
            if seconds < 1:
                return (
                    f"{text!r}: the period is too short; expected at least 1 second ('@every 1s')"
                )
            return _ParsedCron(every=seconds)
        if keyword.lower() in _DESCRIPTORS and not rest:
            expression = _DESCRIPTORS[keyword.lower()]
        else:
            return f"{text!r} is not a known descriptor; {_EXPECTED_CRON}"
    fields = expression.split(" ")
    if len(fields) == 5:
        specs: tuple[_Field, ...] = _FIELDS5
    elif len(fields) == 6:
        specs = (_SECOND, *_FIELDS5)
    else:
        count = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
        return f"{text!r} has {count}; {_EXPECTED_CRON}"
    try:
        for field_text, spec in zip(fields, specs, strict=True):
            _check_field(field_text, spec)
    except ValueError as err:
        return f"{text!r}: {err}"
    minute_hour = fields[-5:-3]
    wildcard = any(c in part for part in minute_hour for c in "*?/")
    parsed = _ParsedCron(expression=" ".join(fields), seconds=len(fields) == 6, wildcard=wildcard)
    try:
        _croniter(parsed, _PROBE_START).get_next(float)
    except CroniterBadDateError:
        return f"{text!r} never matches a date; expected an expression that matches some day"
    except (CroniterError, ValueError) as err:  # pragma: no cover - checked above
        return f"{text!r} is not valid ({err}); {_EXPECTED_CRON}"
    return parsed


def _croniter(parsed: _ParsedCron, start: datetime.datetime) -> croniter:
    return croniter(parsed.expression, start, second_at_beginning=parsed.seconds)


def cron_problem(expression: str) -> str | None:
    """What is wrong with a cron expression (a sentence), or None when it is valid."""
    result = _parse_cron(expression)
    return result if isinstance(result, str) else None


def every_in_cron(expression: str) -> int | None:
    """The period of an ``@every <duration>`` expression in seconds, else None."""
    result = _parse_cron(expression)
    return result.every if isinstance(result, _ParsedCron) else None


# ---------------------------------------------------------------------------
# Cron schedules
# ---------------------------------------------------------------------------

_HOUR: Final = 3600
#: Offsets are sampled every _SAMPLE seconds over _WINDOW seconds around the instants
#: of interest to bound how far wall time can fall back. Real zones keep an offset
#: for far longer than _SAMPLE, and no wall clock ever jumped by more than _WINDOW
#: minus the largest offset (26 h).
_SAMPLE: Final = 6 * _HOUR
_WINDOW: Final = 48 * _HOUR
_FIXED_OFFSET_ZONES: Final = frozenset(
    {"UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Universal", "Zulu"}
)


def _fixed_offset(zone: zoneinfo.ZoneInfo) -> int | None:
    """The offset of a zone that never changes it (UTC, Etc/*), else None."""
    if zone.key in _FIXED_OFFSET_ZONES or zone.key.startswith("Etc/"):
        offset = datetime.datetime.fromtimestamp(0, zone).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())
    return None


@attrs.frozen(eq=False)
class CronSchedule:
    """The slots of a cron expression on the wall clock of ``timezone``.

    Daylight saving follows Vixie cron; see the module docstring. Thread-safe:
    the parsed expression is shared, each call works on its own copy.
    """

    expression: str
    timezone: str = "UTC"
    _parsed: _ParsedCron = attrs.field(init=False, repr=False)
    _zone: zoneinfo.ZoneInfo = attrs.field(init=False, repr=False)
    _fixed: int | None = attrs.field(init=False, repr=False)
    _template: croniter = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        parsed = _parse_cron(self.expression)
        if isinstance(parsed, str) or parsed.every is not None:
            raise ValueError(
                f"cron: {parsed if isinstance(parsed, str) else self.expression!r}"
                " is not a calendar expression; expected one cron_problem() accepts "
                "(use EverySchedule for @every)"
            )
        zone = zoneinfo.ZoneInfo(self.timezone)
        object.__setattr__(self, "_parsed", parsed)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_fixed", _fixed_offset(zone))
        object.__setattr__(self, "_template", _croniter(parsed, _PROBE_START))

    @property
    def wildcard(self) -> bool:
        """True when the job follows the real clock across DST (``*``/step in min/hour)."""
        return self._parsed.wildcard

    # Wall-clock times are handled as "naive seconds": the wall time read as if UTC.

    def _wall_times(self, after: int) -> croniter:
        """An iterator over matching wall times strictly after naive second ``after``."""
        iterator = copy.copy(self._template)
        iterator.set_current(_EPOCH + datetime.timedelta(seconds=after), force=True)
        return iterator

    def _offset(self, t: int) -> int:
        offset = datetime.datetime.fromtimestamp(t, self._zone).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    def _instants(self, wall: int) -> list[int]:
        """The instants at which the job runs for wall time ``wall`` (Vixie's rules)."""
        naive = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=wall)
        found: list[int] = []
        for fold in (0, 1):
            offset = naive.replace(tzinfo=self._zone, fold=fold).utcoffset()
            assert offset is not None
            found.append(wall - int(offset.total_seconds()))
        valid = sorted({u for u in found if u + self._offset(u) == wall})
        if valid:
            # Once, at the first occurrence, for a fixed-time job; each pass otherwise.
            return valid if self.wildcard else valid[:1]
        if self.wildcard:
            return []  # a skipped wall time: the real clock never shows it
        return [self._end_of_gap(min(found), max(found), wall)]

    def _end_of_gap(self, low: int, high: int, wall: int) -> int:
        """The first instant in (low, high] whose wall time is past ``wall``."""
        while high - low > 1:
            middle = (low + high) // 2
            if middle + self._offset(middle) > wall:
                high = middle
            else:
                low = middle
        return high

    def next_after(self, t: int) -> int:
        """The first slot strictly after ``t``."""
        if self._fixed is not None:
            wall = int(self._wall_times(t + self._fixed).get_next(float))
            return wall - self._fixed
        # Wall times before t's own can still be ahead of t when the clock falls
        # back; start early enough to see them.
        lowest = min(self._offset(t + k) for k in range(0, _WINDOW + 1, _SAMPLE))
        wall_times = self._wall_times(t + min(lowest, self._offset(t)))
        best: int | None = None
        stop: int | None = None
        while True:
            try:
                wall = int(wall_times.get_next(float))
            except (CroniterError, OverflowError, ValueError) as err:
                raise ValueError(
                    f"cron {self.expression!r} in {self.timezone} has no slot after {t}"
                ) from err
            if stop is not None and wall > stop:
                return best  # type: ignore[return-value]  # set with stop
            for instant in self._instants(wall):
                if instant > t and (best is None or instant < best):
                    best = instant
                    # No later wall time can map to an instant before best once it
                    # is past best's wall time under the largest nearby offset.
                    stop = best + max(
                        self._offset(best - k) for k in range(0, _WINDOW + 1, _SAMPLE)
                    )


def compile_schedule(options: TaskOptions) -> Schedule:
    """The schedule described by ``options``.

    Cached by what defines the slots (``every``, ``cron``, ``timezone``), not by the
    whole options: ten thousand tasks ``every 1m`` share one compiled schedule.
    """
    return _compile(options.every, options.cron, options.timezone)


@functools.lru_cache(maxsize=4096)
def _compile(every: int | None, cron: str | None, timezone: str) -> Schedule:
    if every is not None:
        return EverySchedule(every)
    assert cron is not None
    period = every_in_cron(cron)
    if period is not None:
        return EverySchedule(period)
    return CronSchedule(cron, timezone)


def next_slot(options: TaskOptions, after: int) -> int:
    """The first slot of ``options`` strictly after ``after``."""
    return compile_schedule(options).next_after(after)


def due_time(options: TaskOptions, slot: int) -> int:
    """When the run for ``slot`` is due: the slot plus the offset."""
    return slot + options.offset


def slots_between(options: TaskOptions, after: int, until: int) -> list[int]:
    """Every slot ``s`` of ``options`` with ``after < s <= until``, in order."""
    schedule = compile_schedule(options)
    slots: list[int] = []
    slot = schedule.next_after(after)
    while slot <= until:
        slots.append(slot)
        slot = schedule.next_after(slot)
    return slots
