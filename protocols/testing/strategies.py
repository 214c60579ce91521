"""Hypothesis strategies for tickactors' data: options, cron expressions, tasks.

Valid values (:func:`task_options`, :func:`tasks`, :func:`cron_expressions`,
:func:`durations`) always construct; :func:`invalid_task_options` gives keyword
arguments that :class:`~protocols.TaskOptions` must reject, together with the
options each problem must name. Use them in your own property tests::

    from hypothesis import given
    from protocols.testing.strategies import task_options

    @given(task_options(max_concurrency=3))
    def test_my_store_accepts_any_options(options): ...
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Final

import attrs
from hypothesis import strategies as st

from protocols.model import Task, TaskStatus
from protocols.options import MAX_CONCURRENCY, TaskOptions

__all__ = [
    "DST_ZONES",
    "FIXED_ZONES",
    "PROBLEM_PREFIXES",
    "InvalidOptions",
    "cron_expressions",
    "cron_field",
    "durations",
    "invalid_task_options",
    "task_options",
    "tasks",
    "timezones",
]

#: Zones whose offset never changes (no daylight saving), including odd offsets.
FIXED_ZONES: Final = (
    "UTC",
    "Etc/GMT+5",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/Phoenix",
)
#: Zones with daylight saving: whole-hour shifts and Lord Howe's half-hour one.
DST_ZONES: Final = (
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "America/Santiago",
    "Australia/Lord_Howe",
)

#: How each option's problem begins in :attr:`InvalidTaskOptions.problems`.
PROBLEM_PREFIXES: Final = {
    "name": "name:",
    "every": "every:",
    "cron": "cron:",
    "offset": "offset:",
    "concurrency": "concurrency:",
    "timezone": "timezone:",
    "every or cron": "every or cron is required",
    "every and cron": "every and cron:",
}

_UNITS: Final = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def timezones(*, dst: bool | None = None) -> st.SearchStrategy[str]:
    """IANA zone names: fixed-offset ones (``dst=False``), DST ones (``True``), or both."""
    if dst is None:
        return st.sampled_from(FIXED_ZONES + DST_ZONES)
    return st.sampled_from(DST_ZONES if dst else FIXED_ZONES)


def _duration_text(seconds: int) -> str:
    """A Go-style duration string for ``seconds`` ("1h30m", "-45s", "0s")."""
    sign, rest = ("-", -seconds) if seconds < 0 else ("", seconds)
    parts: list[str] = []
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0s")


def durations(
    min_value: int = 1, max_value: int = 86_400
) -> st.SearchStrategy[tuple[int | str | datetime.timedelta, int]]:
    """``(value, seconds)``: a duration as int, duration string or timedelta, and its seconds."""
    seconds = st.integers(min_value, max_value)
    return st.one_of(
        seconds.map(lambda s: (s, s)),
        seconds.map(lambda s: (_duration_text(s), s)),
        seconds.map(lambda s: (datetime.timedelta(seconds=s), s)),
    )


def cron_field(low: int, high: int) -> st.SearchStrategy[str]:
    """One cron field over ``low..high``: ``*``, a value, a list, a range or a step."""
    value = st.integers(low, high)
    ranges = st.tuples(value, value).map(sorted)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.lists(value, min_size=2, max_size=3, unique=True).map(
            lambda v: ",".join(map(str, sorted(v)))
        ),
        ranges.map(lambda r: f"{r[0]}-{r[1]}"),
        st.integers(1, high - low + 1).map(lambda s: f"*/{s}"),
        st.tuples(ranges, st.integers(1, 10)).map(lambda rs: f"{rs[0][0]}-{rs[0][1]}/{rs[1]}"),
    )


def cron_expressions(*, seconds: bool = True, descriptors: bool = True) -> st.SearchStrategy[str]:
    """Valid cron expressions: 5 fields (days 1-28, so every one matches), 6 with seconds
    first, the ``@`` descriptors and ``@every <duration>``."""
    five = st.tuples(
        cron_field(0, 59), cron_field(0, 23), cron_field(1, 28), cron_field(1, 12), cron_field(0, 6)
    ).map(" ".join)
    choices = [five]
    if seconds:
        choices.append(st.tuples(cron_field(0, 59), five).map(" ".join))
    if descriptors:
        choices.append(
            st.sampled_from(
                ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]
            )
        )
        choices.append(st.integers(1, 7 * 86_400).map(lambda s: f"@every {_duration_text(s)}"))
    return st.one_of(*choices)


def task_options(
    *,
    every: st.SearchStrategy[int] | None = None,
    cron: st.SearchStrategy[str] | None = None,
    offset: st.SearchStrategy[int] | None = None,
    max_concurrency: int = MAX_CONCURRENCY,
    zones: st.SearchStrategy[str] | None = None,
    names: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[TaskOptions]:
    """Valid :class:`~protocols.TaskOptions`, ``every`` or ``cron`` (each half the time).

    Pass ``cron=st.nothing()`` for ``every``-only options, ``every=st.nothing()``
    for cron-only ones. ``every`` and ``offset`` are drawn in seconds and handed to
    the constructor as an int, a duration string or a timedelta.
    """
    every = st.integers(1, 86_400) if every is None else every
    cron = cron_expressions() if cron is None else cron
    offset = st.integers(-3_600, 3_600) if offset is None else offset
    zones = timezones() if zones is None else zones
    names = st.text(min_size=1, max_size=12).filter(str.strip) if names is None else names
    concurrency = st.integers(1, max(1, min(max_concurrency, MAX_CONCURRENCY)))

    def as_duration(seconds: int) -> st.SearchStrategy[int | str | datetime.timedelta]:
        return st.sampled_from(
            [seconds, _duration_text(seconds), datetime.timedelta(seconds=seconds)]
        )

    @st.composite
    def build(draw: st.DrawFn) -> TaskOptions:
        kwargs: dict[str, Any] = {
            "name": draw(names),
            "concurrency": draw(concurrency),
            "timezone": draw(zones),
            "offset": draw(offset.flatmap(as_duration)),
        }
        schedule = draw(
            st.one_of(
                every.flatmap(as_duration).map(lambda e: ("every", e)),
                cron.map(lambda c: ("cron", c)),
            )
        )
        kwargs[schedule[0]] = schedule[1]
        return TaskOptions(**kwargs)

    return build()


def tasks(
    ids: st.SearchStrategy[str] | Sequence[str] = ("t1", "t2", "t3"),
    *,
    options: st.SearchStrategy[TaskOptions] | None = None,
    status: st.SearchStrategy[TaskStatus] | None = None,
    scripts: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Task]:
    """:class:`~protocols.Task` objects over ``ids`` (a strategy or a sequence to sample)."""
    id_strategy = ids if isinstance(ids, st.SearchStrategy) else st.sampled_from(list(ids))
    return st.builds(
        Task,
        id=id_strategy,
        options=task_options() if options is None else options,
        status=st.sampled_from(list(TaskStatus)) if status is None else status,
        script=st.text(max_size=20) if scripts is None else scripts,
    )


@attrs.frozen
class InvalidOptions:
    """Keyword arguments :class:`~protocols.TaskOptions` must reject, and why.

    ``problems`` holds keys of :data:`PROBLEM_PREFIXES`: the rejection must list
    exactly one problem for each (and no other).
    """

    kwargs: dict[str, Any] = attrs.field(hash=False)
    problems: frozenset[str]

    def matches(self, reported: Sequence[str]) -> bool:
        """True when ``reported`` names each expected problem once, and nothing else."""
        if len(reported) != len(self.problems):
            return False
        return all(
            sum(1 for line in reported if line.startswith(PROBLEM_PREFIXES[key])) == 1
            for key in self.problems
        )


_BAD_NAMES: Final[tuple[object, ...]] = ("", "   ", 5, None)
_BAD_EVERY: Final[tuple[object, ...]] = (
    0,
    -5,
    "abc",
    "1.5s",
    "5 minutes",
    1.5,
    True,
    datetime.timedelta(milliseconds=500),
    "0s",
)
_BAD_CRON: Final[tuple[object, ...]] = (
    "",
    "* * *",
    "61 * * * *",
    "* 24 * * *",
    "0 0 31 4 *",
    "@fortnightly",
    "@every 0s",
    "5-1 * * * *",
    "*/0 * * * *",
    "* * * * * * *",
    5,
)
_BAD_OFFSET: Final[tuple[object, ...]] = (
    "5x",
    1.5,
    True,
    "1.5s",
    datetime.timedelta(milliseconds=1),
    None,
)
_BAD_CONCURRENCY: Final[tuple[object, ...]] = (0, -1, MAX_CONCURRENCY + 1, "2", 2.0, True, None)
_BAD_ZONES: Final[tuple[object, ...]] = ("", "Mars/Olympus_Mons", "UTC/Nope", 5, None)


def invalid_task_options() -> st.SearchStrategy[InvalidOptions]:
    """Keyword arguments with at least one invalid option, and the problems to expect.

    Each option is independently valid or broken; ``every`` and ``cron`` are
    absent, valid or broken, so "neither" and "both" are problems too.
    """

    good: dict[str, st.SearchStrategy[Any]] = {
        "every": st.integers(1, 3_600),
        "cron": cron_expressions(seconds=False),
        "offset": st.integers(-60, 60),
        "concurrency": st.integers(1, MAX_CONCURRENCY),
        "timezone": timezones(),
    }
    bad: dict[str, Sequence[object]] = {
        "every": _BAD_EVERY,
        "cron": _BAD_CRON,
        "offset": _BAD_OFFSET,
        "concurrency": _BAD_CONCURRENCY,
        "timezone": _BAD_ZONES,
    }

    @st.composite
    def build(draw: st.DrawFn) -> InvalidOptions:
        problems: set[str] = set()
        name_bad = draw(st.booleans())
        kwargs: dict[str, Any] = {
            "name": draw(st.sampled_from(list(_BAD_NAMES))) if name_bad else "task"
        }
        if name_bad:
            problems.add("name")
        # Each option: absent, valid or broken.
        for key in good:
            state = draw(st.sampled_from(["absent", "valid", "broken"]))
            if state == "broken":
                kwargs[key] = draw(st.sampled_from(list(bad[key])))
                problems.add(key)
            elif state == "valid":
                kwargs[key] = draw(good[key])
        if "every" not in kwargs and "cron" not in kwargs:
            problems.add("every or cron")
        elif "every" in kwargs and "cron" in kwargs:
            problems.add("every and cron")
        if not problems:  # everything valid: break one option
            key = draw(st.sampled_from(sorted(bad)))
            kwargs[key] = draw(st.sampled_from(list(bad[key])))
            problems.add(key)
            if "every" in kwargs and "cron" in kwargs:
                problems.add("every and cron")
        return InvalidOptions(kwargs=kwargs, problems=frozenset(problems))

    return build()
