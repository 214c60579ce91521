"""Task options: when a task runs, validated in the constructor.

:class:`TaskOptions` is immutable and hashable (it is the key of the schedule
cache). Its constructor normalises durations and validates every option,
collecting *all* problems before raising one :class:`~protocols.errors.InvalidTaskOptions`.

Durations (``every``, ``offset`` and ``@every`` in ``cron``) may be given as an
``int`` number of seconds, a :class:`datetime.timedelta`, or a Go/Flux-style
duration string such as ``"1h30m"``, ``"90s"`` or ``"-5m"`` (units ``w d h m s``,
and ``ms us µs ns`` when the total is still a whole number of seconds). They are
stored as ``int`` seconds.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Final, cast

import attrs

from protocols.errors import InvalidTaskOptions

__all__ = ["MAX_CONCURRENCY", "TaskOptions", "parse_duration"]

#: The largest ``concurrency`` a task may have (as InfluxDB).
MAX_CONCURRENCY: Final = 100

_UNITS: Final[Mapping[str, Fraction]] = {
    "ns": Fraction(1, 1_000_000_000),
    "us": Fraction(1, 1_000_000),
    "µs": Fraction(1, 1_000_000),
    "μs": Fraction(1, 1_000_000),
    "ms": Fraction(1, 1_000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3_600),
    "d": Fraction(86_400),
    "w": Fraction(604_800),
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = r"(?:ns|us|µs|μs|ms|s|m|h|d|w)"
_DURATION_RE: Final = re.compile(rf"([+-]?)((?:{_NUMBER}{_UNIT})+)")
_PART_RE: Final = re.compile(rf"({_NUMBER})({_UNIT})")
_DURATION_HELP: Final = (
    "an int number of seconds, a datetime.timedelta, or a duration string such as "
    "'90s', '1h30m' or '-5m' (units w, d, h, m, s; ms, us, ns only if the total is "
    "whole seconds)"
)


def parse_duration(text: str) -> int:
    """Whole seconds in a Go/Flux-style duration string (``"1h30m"`` -> 5400).

    Raises :class:`ValueError` with a message saying what was expected when the
    text is not a duration or is not a whole number of seconds.
    """
    stripped = text.strip()
    if stripped in ("0", "+0", "-0"):
        return 0
    match = _DURATION_RE.fullmatch(stripped)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; expected {_DURATION_HELP}")
    sign, body = match.groups()
    total = sum(
        (Fraction(number) * _UNITS[unit] for number, unit in _PART_RE.findall(body)),
        Fraction(0),
    )
    if total.denominator != 1:
        raise ValueError(
            f"{text!r} is not a whole number of seconds ({float(total)}s); expected whole seconds"
        )
    return -int(total) if sign == "-" else int(total)


class _Problem:
    """A value a converter could not take; ``__attrs_post_init__`` reports it."""

    __slots__ = ("message", "value")

    def __init__(self, message: str, value: object) -> None:
        self.message = message
        self.value = value

    def __repr__(self) -> str:  # pragma: no cover - only seen while debugging
        return f"_Problem({self.message!r})"


def _to_seconds(value: object, option: str) -> int | _Problem:
    if isinstance(value, bool):
        return _Problem(f"{option}: {value!r} is a bool; expected {_DURATION_HELP}", value)
    if isinstance(value, int):
        return value
    if isinstance(value, datetime.timedelta):
        seconds, rest = divmod(value, datetime.timedelta(seconds=1))
        if rest:
            return _Problem(
                f"{option}: {value!r} is not a whole number of seconds; expected whole seconds",
                value,
            )
        return int(seconds)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as err:
            return _Problem(f"{option}: {err}", value)
    return _Problem(
        f"{option}: {value!r} (a {type(value).__name__}) is not a duration; "
        f"expected {_DURATION_HELP}",
        value,
    )


# The converters only let the constructor accept durations in their several
# forms; a value they cannot convert is kept as a _Problem and reported, with
# every other problem, by __attrs_post_init__ (so the cast is never observable).
def _every_in(value: int | datetime.timedelta | str | None) -> int | None:
    if value is None:
        return None
    return cast("int", _to_seconds(value, "every"))


def _offset_in(value: int | datetime.timedelta | str) -> int:
    return cast("int", _to_seconds(value, "offset"))


def _cron_in(value: str | None) -> str | None:
    if isinstance(value, str):
        return " ".join(value.split())
    return value


def _check_timezone(value: object) -> str | None:
    """A problem with ``timezone``, or None."""
    if not isinstance(value, str) or not value:
        return (
            f"timezone: {value!r} is not a time zone name; expected an IANA name "
            "such as 'UTC' or 'Europe/London'"
        )
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return (
            f"timezone: {value!r} is not a known time zone; expected an IANA name "
            "such as 'UTC' or 'Europe/London'"
        )
    return None


@attrs.frozen
class TaskOptions:
    """When a task runs: ``every`` or ``cron``, shifted by ``offset``.

    - ``name``: required, a non-empty string.
    - ``every``: the period in whole seconds (at least 1). Slots fall on multiples
      of ``every`` since the Unix epoch (``every="7m"`` runs at :00, :07, ... of
      the epoch's 420-second grid), whatever ``timezone`` says.
    - ``cron``: a cron expression (see :mod:`protocols.schedules`), evaluated in
      ``timezone``. Whitespace is normalised to single spaces. ``"@every <duration>"``
      is accepted and means exactly ``every=<duration>``: slots on multiples of the
      duration since the Unix epoch. (robfig/cron's ``@every`` counts from when the
      job was added; InfluxDB users expected aligned slots, so tickactors aligns.)
    - Exactly one of ``every`` and ``cron``.
    - ``offset``: whole seconds, may be negative. A run is *for* its slot and
      *due* at slot + offset.
    - ``concurrency``: runs of the task in flight at once, an int from 1 to 100.
    - ``timezone``: the IANA name ``cron`` is evaluated in (default ``"UTC"``).

    ``every`` and ``offset`` accept an ``int`` of seconds, a
    :class:`datetime.timedelta` or a duration string (``"1h30m"``) and are stored as
    ``int``. Invalid options raise :class:`~protocols.errors.InvalidTaskOptions`
    listing every problem.
    """

    name: str
    every: int | None = attrs.field(default=None, converter=_every_in)
    cron: str | None = attrs.field(default=None, converter=_cron_in)
    offset: int = attrs.field(default=0, converter=_offset_in)
    concurrency: int = 1
    timezone: str = "UTC"

    def __attrs_post_init__(self) -> None:
        problems = _validate(self)
        if problems:
            raise InvalidTaskOptions(problems)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> TaskOptions:
        """Options from a mapping (a config file's table); unknown keys are problems.

        Every problem (unknown keys as well as invalid values) is reported in one
        :class:`~protocols.errors.InvalidTaskOptions`.
        """
        if not isinstance(mapping, Mapping):
            raise InvalidTaskOptions(
                f"options: {mapping!r} is not a mapping; expected a mapping with keys "
                + ", ".join(_FIELD_NAMES)
            )
        problems: list[str] = []
        unknown = [key for key in mapping if key not in _FIELD_NAMES]
        if unknown:
            problems.append(
                "unknown option"
                + ("s " if len(unknown) > 1 else " ")
                + ", ".join(repr(key) for key in unknown)
                + "; valid options are "
                + ", ".join(_FIELD_NAMES)
            )
        known = {key: value for key, value in mapping.items() if key in _FIELD_NAMES}
        if "name" not in known:
            problems.append("name: missing; a name is required: expected a non-empty string")
            known["name"] = "-"  # a stand-in, so the other options are still checked
        try:
            options = cls(**known)
        except InvalidTaskOptions as err:
            problems.extend(err.problems)
        else:
            if not problems:
                return options
        raise InvalidTaskOptions(problems)

    def to_mapping(self) -> dict[str, Any]:
        """The options as a plain dict (``every``/``cron`` left out when unset).

        ``TaskOptions.from_mapping(options.to_mapping()) == options``.
        """
        out: dict[str, Any] = {"name": self.name}
        if self.every is not None:
            out["every"] = self.every
        if self.cron is not None:
            out["cron"] = self.cron
        out["offset"] = self.offset
        out["concurrency"] = self.concurrency
        out["timezone"] = self.timezone
        return out


_FIELD_NAMES: Final = tuple(field.name for field in attrs.fields(TaskOptions))


def _validate(options: TaskOptions) -> list[str]:
    """Every problem with ``options``, in field order."""
    # Imported here: schedules imports this module for TaskOptions.
    from protocols.schedules import cron_problem, every_in_cron

    problems: list[str] = []
    name: object = options.name
    if not isinstance(name, str):
        problems.append(
            f"name: {name!r} is not a string; a name is required: expected a non-empty string"
        )
    elif not name.strip():
        problems.append(f"name: {name!r} is empty; a name is required: expected a non-empty string")

    every: object = options.every
    cron: object = options.cron
    if isinstance(every, _Problem):
        problems.append(every.message)
    elif isinstance(every, int) and every < 1:
        problems.append(f"every: {every} seconds is too short; expected at least 1 second ('1s')")

    cron_every: int | None = None
    if cron is not None:
        if not isinstance(cron, str):
            problems.append(
                f"cron: {cron!r} (a {type(cron).__name__}) is not a cron expression; "
                "expected a string such as '0 * * * *'"
            )
        else:
            problem = cron_problem(cron)
            if problem is not None:
                problems.append(f"cron: {problem}")
            else:
                cron_every = every_in_cron(cron)

    if every is None and cron is None:
        problems.append(
            "every or cron is required: expected exactly one of every (a duration such "
            "as '1h') and cron (an expression such as '0 * * * *')"
        )
    elif every is not None and cron is not None:
        if isinstance(every, _Problem):
            every = every.value
        if cron_every is not None:
            problems.append(
                f"every and cron: both given (every={every!r}, cron={cron!r}); "
                f"cron {cron!r} already means every={cron_every}: expected exactly one "
                "of every and cron"
            )
        else:
            problems.append(
                f"every and cron: both given (every={every!r}, cron={cron!r}); "
                "expected exactly one of every and cron"
            )

    offset: object = options.offset
    if isinstance(offset, _Problem):
        problems.append(offset.message)

    concurrency: object = options.concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        problems.append(
            f"concurrency: {concurrency!r} (a {type(concurrency).__name__}) is not an "
            f"integer; expected an integer from 1 to {MAX_CONCURRENCY}"
        )
    elif not 1 <= concurrency <= MAX_CONCURRENCY:
        problems.append(
            f"concurrency: {concurrency} is out of range; expected an integer from 1 "
            f"to {MAX_CONCURRENCY}"
        )

    problem = _check_timezone(options.timezone)
    if problem is not None:
        problems.append(problem)
    return problems
