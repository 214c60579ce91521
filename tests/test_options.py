"""TaskOptions: duration conversion, validation (all problems at once), mappings."""

from __future__ import annotations

import datetime

import attrs
import pytest

from protocols import InvalidTaskOptions, SchedulerError, TaskOptions
from protocols.options import parse_duration


def problems_of(**kwargs: object) -> tuple[str, ...]:
    """The problems InvalidTaskOptions reports for TaskOptions(**kwargs)."""
    with pytest.raises(InvalidTaskOptions) as caught:
        TaskOptions(**kwargs)  # type: ignore[arg-type]
    return caught.value.problems


# --- construction and normalisation -----------------------------------------


def test_positional_and_keyword_construction_agree() -> None:
    """Fields are name, every, cron, offset, concurrency, timezone, in that order."""
    positional = TaskOptions("t", 60, None, -5, 3, "Europe/Paris")
    keyword = TaskOptions(
        name="t", every=60, cron=None, offset=-5, concurrency=3, timezone="Europe/Paris"
    )
    assert positional == keyword
    assert (keyword.name, keyword.every, keyword.offset) == ("t", 60, -5)
    assert (keyword.concurrency, keyword.timezone) == (3, "Europe/Paris")


def test_defaults() -> None:
    """offset 0, concurrency 1, timezone UTC, cron None when every is given."""
    options = TaskOptions("t", every=10)
    assert (options.cron, options.offset, options.concurrency, options.timezone) == (
        None,
        0,
        1,
        "UTC",
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("1h30m", 5400),
        ("1m30s", 90),
        ("2d", 2 * 86400),
        ("1w", 7 * 86400),
        ("1.5h", 5400),
        ("2000ms", 2),
        ("1s500ms500000us", 2),
        ("3000000000ns", 3),
        ("+10s", 10),
        ("0", 0),
    ],
)
def test_duration_strings_convert_to_whole_seconds(text: str, seconds: int) -> None:
    """Go/Flux duration strings become int seconds."""
    assert parse_duration(text) == seconds
    assert TaskOptions("t", every=60, offset=text).offset == seconds
    if seconds >= 1:  # every must be positive; "0" is covered by offset above
        assert TaskOptions("t", every=text).every == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("-5m", -300), ("-1h1s", -3601), (datetime.timedelta(minutes=-2), -120), (-7, -7)],
)
def test_offset_may_be_negative(value: object, seconds: int) -> None:
    """offset accepts negative strings, timedeltas and ints."""
    options = TaskOptions("t", every=60, offset=value)  # type: ignore[arg-type]
    assert options.offset == seconds
    assert type(options.offset) is int


def test_timedelta_converts_to_int_seconds() -> None:
    """A timedelta every/offset becomes an int."""
    options = TaskOptions(
        "t", every=datetime.timedelta(hours=1, minutes=30), offset=datetime.timedelta(seconds=15)
    )
    assert (options.every, options.offset) == (5400, 15)
    assert type(options.every) is int
    assert type(options.offset) is int


def test_equal_after_normalisation() -> None:
    """Options that normalise to the same values are equal and hash alike."""
    a = TaskOptions("t", every="1m", cron=None, offset="30s")
    b = TaskOptions("t", every=60, offset=datetime.timedelta(seconds=30))
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_cron_whitespace_is_normalised() -> None:
    """Runs of spaces and tabs in cron become single spaces."""
    assert TaskOptions("t", cron="  0\t9  * * *  ").cron == "0 9 * * *"


def test_frozen() -> None:
    """Options cannot be changed after construction."""
    options = TaskOptions("t", every=60)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        options.every = 120  # type: ignore[misc]


def test_hashable_as_cache_key() -> None:
    """Options work as dict keys."""
    cache = {TaskOptions("t", cron="0 * * * *"): "hourly"}
    assert cache[TaskOptions("t", cron="0 * * * *")] == "hourly"


# --- validation ---------------------------------------------------------------


def test_invalid_task_options_is_a_value_error() -> None:
    """InvalidTaskOptions is both a ValueError and a SchedulerError."""
    with pytest.raises(ValueError, match=r"^invalid options: every or cron") as caught:
        TaskOptions("t")
    assert isinstance(caught.value, SchedulerError)


def test_every_problem_is_reported_at_once() -> None:
    """Five bad options give five problems, one per option, in field order."""
    problems = problems_of(name="", every=0, offset="soon", concurrency=0, timezone="Mars/Base")
    assert len(problems) == 5
    assert [p.split(":")[0] for p in problems] == [
        "name",
        "every",
        "offset",
        "concurrency",
        "timezone",
    ]


def test_message_joins_all_problems() -> None:
    """The exception text contains every problem."""
    with pytest.raises(InvalidTaskOptions) as caught:
        TaskOptions("", every=60, concurrency=101)
    text = str(caught.value)
    assert text == "invalid options: " + "; ".join(caught.value.problems)
    assert "name: ''" in text
    assert "concurrency: 101" in text


def test_concurrency_message_names_value_and_range() -> None:
    """Out-of-range concurrency says what was given and what is allowed."""
    assert problems_of(name="t", every=60, concurrency=0) == (
        "concurrency: 0 is out of range; expected an integer from 1 to 100",
    )


@pytest.mark.parametrize("value", [101, -1, True, "3", 2.0, None])
def test_concurrency_rejects(value: object) -> None:
    """concurrency must be an int from 1 to 100, not a bool, str or float."""
    (problem,) = problems_of(name="t", every=60, concurrency=value)
    assert problem.startswith(f"concurrency: {value!r}")
    assert "expected an integer from 1 to 100" in problem


@pytest.mark.parametrize("value", [1, 50, 100])
def test_concurrency_accepts_range_ends(value: int) -> None:
    """1 and 100 are allowed."""
    assert TaskOptions("t", every=60, concurrency=value).concurrency == value


@pytest.mark.parametrize("value", ["", "   ", None, 7])
def test_name_is_required(value: object) -> None:
    """A missing, blank or non-string name is a problem."""
    (problem,) = problems_of(name=value, every=60)
    assert problem.startswith(f"name: {value!r}")
    assert "expected a non-empty string" in problem


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (0, "every: 0 seconds is too short; expected at least 1 second"),
        (-60, "every: -60 seconds is too short"),
        ("0s", "every: 0 seconds is too short"),
        ("1500ms", "every: '1500ms' is not a whole number of seconds"),
        (datetime.timedelta(milliseconds=1500), "every: datetime.timedelta(seconds=1, micro"),
        ("1mo", "every: '1mo' is not a duration; expected an int number of seconds"),
        ("10", "every: '10' is not a duration"),
        ("1h30", "every: '1h30' is not a duration"),
        (True, "every: True is a bool"),
        (1.5, "every: 1.5 (a float) is not a duration"),
    ],
)
def test_every_rejects(value: object, says: str) -> None:
    """Bad every values are reported with the value and what is expected."""
    (problem,) = problems_of(name="t", every=value)
    assert problem.startswith(says)
    assert "expected" in problem


def test_offset_must_be_whole_seconds() -> None:
    """A fractional offset is a problem naming offset."""
    (problem,) = problems_of(name="t", every=60, offset="2500ms")
    assert problem.startswith("offset: '2500ms' is not a whole number of seconds")


def test_exactly_one_of_every_and_cron() -> None:
    """Neither, or both, of every and cron is a problem."""
    (neither,) = problems_of(name="t")
    assert neither.startswith("every or cron is required")
    assert "exactly one" in neither
    (both,) = problems_of(name="t", every=60, cron="* * * * *")
    assert both.startswith("every and cron: both given (every=60, cron='* * * * *')")
    assert "expected exactly one of every and cron" in both


def test_at_every_with_every_says_they_overlap() -> None:
    """cron '@every 1h' plus every is rejected, and the message explains why."""
    (problem,) = problems_of(name="t", every=3600, cron="@every 1h")
    assert "'@every 1h' already means every=3600" in problem
    assert "exactly one of every and cron" in problem


def test_bad_every_and_cron_reports_both_values() -> None:
    """An unparseable every given with cron shows the value as given."""
    problems = problems_of(name="t", every="soon", cron="* * * * *")
    assert problems[0].startswith("every: 'soon' is not a duration")
    assert problems[1].startswith("every and cron: both given (every='soon'")


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("", "is empty"),
        ("* * * *", "has 4 fields; expected 5 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("60 * * * *", "'60' in the minute field is out of range; expected 0-59"),
        ("0 24 * * *", "'24' in the hour field is out of range; expected 0-23"),
        ("0 0 0 * *", "'0' in the day of month field is out of range; expected 1-31"),
        ("0 0 * 13 *", "'13' in the month field is out of range; expected 1-12"),
        ("0 0 * * 8", "'8' in the day of week field is out of range; expected 0-7"),
        ("0 0 * FOO *", "'FOO' in the month field is not a number or name"),
        ("0 0 * * MON-FOO", "'FOO' in the day of week field"),
        ("0 MON * * *", "'MON' in the hour field is not a number"),
        ("30-10 * * * *", "'30-10' in the minute field is a backwards range"),
        (
            "*/0 * * * *",
            "step '0' in the minute field is out of range; expected a step of at least 1",
        ),
        ("0 0 L * *", "'L' in the day of month field"),
        ("0 0 * * 5#2", "'5#2' in the day of week field is not valid"),
        ("H * * * *", "'H' in the minute field"),
        ("0 0 31 4 *", "never matches"),
        ("0 0 30 2 *", "never matches"),
        ("60 * * * * *", "'60' in the second field is out of range; expected 0-59"),
        ("@fortnightly", "is not a known descriptor"),
        ("@daily 5", "is not a known descriptor"),
        ("@every", "is not a duration"),
        ("@every 0s", "is too short; expected at least 1 second"),
        ("@every 1500ms", "is not a whole number of seconds"),
    ],
)
def test_cron_rejects(cron: str, says: str) -> None:
    """Bad cron expressions name the expression, the part at fault and what is expected."""
    (problem,) = problems_of(name="t", cron=cron)
    assert problem.startswith(f"cron: {' '.join(cron.split())!r}")
    assert says in problem
    assert "expected" in problem


def test_cron_must_be_a_string() -> None:
    """A non-string cron is a problem."""
    (problem,) = problems_of(name="t", cron=5)
    assert problem.startswith("cron: 5 (a int) is not a cron expression")


@pytest.mark.parametrize(
    "cron",
    [
        "*/5 * * * *",
        "0 9-17/2 * * MON-FRI",
        "0 0 1 jan,Jul ?",
        "5/15 * * * *",
        "*/90 * * * *",
        "0 0 * * 7",
        "30 0 9 * * *",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
        "@every 1h30m",
        "@EVERY 90s",
        "0 0 29 2 *",
    ],
)
def test_cron_accepts(cron: str) -> None:
    """Valid expressions construct without problems."""
    assert TaskOptions("t", cron=cron).cron == cron


@pytest.mark.parametrize("value", ["Mars/Base", "", "America", "../etc/passwd", "utc", 0])
def test_timezone_must_be_iana(value: object) -> None:
    """An unknown time zone is reported with the name and an example."""
    (problem,) = problems_of(name="t", cron="0 * * * *", timezone=value)
    assert problem.startswith(f"timezone: {value!r}")
    assert "expected an IANA name such as 'UTC'" in problem


@pytest.mark.parametrize("value", ["Europe/London", "America/New_York", "Asia/Tokyo", "UTC"])
def test_timezone_accepts_iana(value: str) -> None:
    """IANA names are accepted."""
    assert TaskOptions("t", cron="0 * * * *", timezone=value).timezone == value


# --- mappings -------------------------------------------------------------------


def test_from_mapping_builds_options() -> None:
    """A config table becomes TaskOptions, with durations converted."""
    options = TaskOptions.from_mapping(
        {"name": "t", "every": "5m", "offset": "-30s", "concurrency": 2}
    )
    assert options == TaskOptions("t", every=300, offset=-30, concurrency=2)


def test_from_mapping_unknown_keys_list_valid_keys() -> None:
    """Unknown keys are a problem listing them and the valid keys."""
    with pytest.raises(InvalidTaskOptions) as caught:
        TaskOptions.from_mapping({"name": "t", "every": 60, "retry": 3, "tz": "UTC"})
    assert caught.value.problems == (
        "unknown options 'retry', 'tz'; valid options are name, every, cron, offset, "
        "concurrency, timezone",
    )


def test_from_mapping_reports_unknown_keys_with_other_problems() -> None:
    """Unknown keys and invalid values come in one error."""
    with pytest.raises(InvalidTaskOptions) as caught:
        TaskOptions.from_mapping({"every": 0, "colour": "red"})
    problems = caught.value.problems
    assert problems[0].startswith("unknown option 'colour'; valid options are name,")
    assert "name: missing; a name is required: expected a non-empty string" in problems
    assert any(p.startswith("every: 0 seconds") for p in problems)
    assert len(problems) == 3


def test_from_mapping_rejects_non_mapping() -> None:
    """A list is not options."""
    with pytest.raises(InvalidTaskOptions) as caught:
        TaskOptions.from_mapping([("name", "t")])  # type: ignore[arg-type]
    assert "is not a mapping; expected a mapping with keys name, every" in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        TaskOptions("t", every=90, offset=-5, concurrency=4),
        TaskOptions("t", cron="0 9 * * MON", timezone="Asia/Tokyo"),
        TaskOptions("t", cron="@every 1h"),
    ],
)
def test_to_mapping_round_trips(options: TaskOptions) -> None:
    """from_mapping(to_mapping()) gives back equal options."""
    mapping = options.to_mapping()
    assert TaskOptions.from_mapping(mapping) == options
    assert None not in mapping.values()


def test_to_mapping_values() -> None:
    """to_mapping holds int seconds and leaves the unset schedule key out."""
    assert TaskOptions("t", every="1h", offset="1m").to_mapping() == {
        "name": "t",
        "every": 3600,
        "offset": 60,
        "concurrency": 1,
        "timezone": "UTC",
    }
