"""Task files: the TOML file the daemon (``python -m actors run``) reads.

A task file holds one ``[[task]]`` table per task::

    [[task]]
    id = "backup"                  # required; also the task's name unless `name` is set
    executor = "shell"             # required: "shell" (a shell command) or "python"
    script = "tar czf /tmp/b.tgz ~/notes"   # a command, or "module:function" for python
    every = "1h"                   # or cron = "0 3 * * *" (the TaskOptions keys:
    offset = "5m"                  #  name, every, cron, offset, concurrency, timezone)
    active = true                  # default true: an inactive task creates no runs
    catch_up = "all"               # "all" (default), "latest" or "none": see below
    # start_at = 2024-05-01T00:00:00Z   # where a task new to the database starts

Catch-up: the daemon keeps runs and each task's latest completed slot in its
database, so after a restart (or downtime) it knows which slots were missed.
``catch_up`` says what happens to them when the daemon claims the task again:
``"all"`` (the default, InfluxDB's rule) runs every missed slot, one run per slot,
oldest first, as fast as the task's concurrency allows; ``"latest"`` runs only the
most recent missed slot; ``"none"`` skips them and waits for the next slot. While
the daemon runs, every slot runs whatever the setting. ``true`` and ``false`` are
accepted for ``"all"`` and ``"none"``.

``start_at`` (Unix seconds, or a TOML date-time; one without an offset is read in
the task's ``timezone``) applies only to a task new to the database: its slots after
``start_at`` that have already passed are replayed as missed slots (by ``catch_up``).
Without it a new task's first run is for its first slot after the daemon started.
A ``start_at`` in the future means the first run is for the first slot after it.

Every problem in the file is collected and reported at once, each line naming the
file and the task (:class:`TaskFileError`). Like cron, :func:`load_task_file`
refuses a file that other users can write (see :func:`permission_problems`).
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, cast
from zoneinfo import ZoneInfo

import attrs

from protocols import InvalidTaskOptions, Task, TaskOptions, TaskStatus

__all__ = [
    "CATCH_UP_MODES",
    "EXECUTOR_KINDS",
    "CatchUp",
    "TaskEntry",
    "TaskFile",
    "TaskFileError",
    "load_task_file",
    "parse_task_file",
    "permission_problems",
]

EXECUTOR_KINDS: Final = ("shell", "python")
"""The values of a task's ``executor`` key."""

_OPTION_KEYS: Final = ("name", "every", "cron", "offset", "concurrency", "timezone")
_TASK_KEYS: Final = ("id", "executor", "script", "active", "catch_up", "start_at", *_OPTION_KEYS)
_TOP_KEYS: Final = ("task",)
_PYTHON_REFERENCE: Final = re.compile(
    r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$"
)


class TaskFileError(ValueError):
    """A task file cannot be used; ``problems`` holds one line per problem found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


#: What a claim after downtime does with the missed slots (``catch_up``).
CatchUp = Literal["all", "latest", "none"]
CATCH_UP_MODES: Final[tuple[CatchUp, ...]] = ("all", "latest", "none")


@attrs.frozen
class TaskEntry:
    """One task of a task file: the task, its executor, where it starts, its catch-up."""

    task: Task
    executor: str
    start_at: int | None = None
    """Where a task new to the database starts; ``None``: the daemon's start time."""
    catch_up: CatchUp = "all"
    """Missed slots on a claim after downtime: run ``"all"``, the ``"latest"``, or ``"none"``."""

    def latest_completed(self, now: int) -> int:
        """The ``latest_completed`` to add the task to a store with, at ``now``."""
        return now if self.start_at is None else self.start_at


@attrs.frozen
class TaskFile:
    """A parsed, valid task file."""

    source: str
    entries: tuple[TaskEntry, ...]

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The tasks, in file order."""
        return tuple(entry.task for entry in self.entries)


def load_task_file(
    path: str | os.PathLike[str],
    *,
    check_permissions: bool = True,
    resolve_python: Callable[[str], object] | None = None,
) -> TaskFile:
    """Read, check and parse the task file at ``path``.

    Raises :class:`TaskFileError` naming the file (as ``path`` spells it), the task and
    every problem: unreadable, writable by other users (when ``check_permissions``),
    not TOML, or invalid tasks. With ``resolve_python`` (such as
    :meth:`protocols.ThreadExecutor.resolve`), each python task's script is resolved
    at once, and what it raises is a problem.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            if check_permissions:
                problems = permission_problems(source, os.fstat(f.fileno()))
                if problems:
                    raise TaskFileError(problems)
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise TaskFileError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise TaskFileError([f"{source}: not UTF-8 text: {exc.reason}"]) from None
    return parse_task_file(text, source=source, resolve_python=resolve_python)


def parse_task_file(
    text: str,
    *,
    source: str = "<tasks>",
    resolve_python: Callable[[str], object] | None = None,
) -> TaskFile:
    """Parse task-file TOML ``text``; ``source`` names it in problems."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError([f"{source}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    problems.extend(f"{source}: {p}" for p in _unknown_keys(data, _TOP_KEYS, "top-level key"))
    raw_tasks = data.get("task")
    entries: list[TaskEntry] = []
    if raw_tasks is None:
        problems.append(f'{source}: no tasks: add at least one [[task]] table with "id"')
    elif not isinstance(raw_tasks, list) or not all(isinstance(t, dict) for t in raw_tasks):
        problems.append(f"{source}: task: expected [[task]] tables")
    else:
        first_index: dict[str, int] = {}
        for index, raw in enumerate(raw_tasks, start=1):
            task_id = _valid_id(raw.get("id"))
            label = f"task #{index}" if task_id is None else f'task "{task_id}"'
            if task_id is not None:
                if task_id in first_index:
                    problems.append(
                        f"{source}: {label}: id: duplicate of task #{first_index[task_id]}'s id "
                        "(ids are unique)"
                    )
                first_index.setdefault(task_id, index)
            entry, task_problems = _parse_task(raw, resolve_python=resolve_python)
            problems.extend(f"{source}: {label}: {p}" for p in task_problems)
            if entry is not None:
                entries.append(entry)
    if problems:
        raise TaskFileError(problems)
    return TaskFile(source=source, entries=tuple(entries))


def permission_problems(source: str, st: os.stat_result, *, euid: int | None = None) -> list[str]:
    """What makes a task file unsafe to run, as cron judges it (empty when it is safe).

    Commands in the file run as the daemon's user, so nobody else may be able to
    change it: the file must not be group- or world-writable, and must be owned by
    the daemon's user (``euid``, default the effective uid) or by root. Not checked
    where the platform has no uids (Windows).
    """
    if euid is None:
        if not hasattr(os, "geteuid"):  # pragma: no cover - Windows
            return []
        euid = os.geteuid()
    problems = []
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable:
        who = (
            "group- and world-writable"
            if writable == (stat.S_IWGRP | stat.S_IWOTH)
            else ("group-writable" if writable & stat.S_IWGRP else "world-writable")
        )
        problems.append(
            f"{source}: refusing a task file that other users can write "
            f"(mode {stat.S_IMODE(st.st_mode):04o} is {who}); fix it with: chmod go-w {source}"
        )
    if st.st_uid not in (0, euid):
        problems.append(
            f"{source}: refusing a task file owned by another user (uid {st.st_uid}; "
            f"the daemon runs as uid {euid}); it must be owned by uid {euid} or by root"
        )
    return problems


def _parse_task(
    raw: Mapping[str, Any], *, resolve_python: Callable[[str], object] | None
) -> tuple[TaskEntry | None, list[str]]:
    """One ``[[task]]`` table: the entry (None if invalid) and its problems."""
    problems = _unknown_keys(raw, _TASK_KEYS, "key")
    task_id = raw.get("id")
    if task_id is None:
        problems.append('id: missing (each task needs a unique "id")')
    elif _valid_id(task_id) is None:
        problems.append(f"id: expected a non-empty string, got {task_id!r}")
    executor = raw.get("executor")
    if executor is None:
        problems.append(f"executor: missing; choose one of {_quoted(EXECUTOR_KINDS)}")
    elif executor not in EXECUTOR_KINDS:
        problems.append(f"executor: {executor!r} is not one of {_quoted(EXECUTOR_KINDS)}")
    script = raw.get("script")
    if script is None:
        problems.append("script: missing (a shell command, or module:function for python)")
    elif not isinstance(script, str) or not script.strip():
        problems.append(f"script: expected a non-empty string, got {script!r}")
    elif executor == "python":
        problems.extend(_python_reference_problems(script, resolve_python))
    active = _boolean(raw, "active", True, problems)
    catch_up = _catch_up(raw, problems)

    option_values = {key: raw[key] for key in _OPTION_KEYS if key in raw}
    # The name defaults to the id; with no valid id, that problem is reported already.
    option_values.setdefault("name", _valid_id(task_id) or "-")
    options: TaskOptions | None = None
    try:
        options = TaskOptions.from_mapping(option_values)
    except InvalidTaskOptions as exc:
        problems.extend(exc.problems)

    start_at = _start_at(raw, options, problems)
    if problems or options is None:
        return None, problems
    assert isinstance(task_id, str)
    assert isinstance(executor, str)
    assert isinstance(script, str)
    status = TaskStatus.ACTIVE if active else TaskStatus.INACTIVE
    task = Task(id=task_id, options=options, status=status, script=script)
    entry = TaskEntry(task=task, executor=executor, start_at=start_at, catch_up=catch_up)
    return entry, problems


def _catch_up(raw: Mapping[str, Any], problems: list[str]) -> CatchUp:
    """The task's ``catch_up`` mode (``true``/``false`` mean ``"all"``/``"none"``)."""
    value = raw.get("catch_up", "all")
    if value is True:
        return "all"
    if value is False:
        return "none"
    if value in CATCH_UP_MODES:
        return cast(CatchUp, value)
    problems.append(
        f"catch_up: {value!r} is not one of {_quoted(CATCH_UP_MODES)} (or true / false)"
    )
    return "all"


def _start_at(
    raw: Mapping[str, Any], options: TaskOptions | None, problems: list[str]
) -> int | None:
    """The task's ``start_at`` in Unix seconds (None: not given)."""
    value = raw.get("start_at")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            if options is None:
                return None  # the time zone may be the invalid option, already reported
            value = value.replace(tzinfo=ZoneInfo(options.timezone))
        return int(value.timestamp())
    problems.append(
        "start_at: expected Unix seconds or a TOML date-time such as "
        f"2024-05-01T00:00:00Z, got {value!r}"
    )
    return None


def _python_reference_problems(
    script: str, resolve_python: Callable[[str], object] | None
) -> list[str]:
    """Problems with a ``module:function`` reference (resolving it if asked)."""
    if not _PYTHON_REFERENCE.match(script):
        return [f"script: {script!r} is not a python reference of the form module:function"]
    if resolve_python is None:
        return []
    try:
        resolve_python(script)
    except Exception as exc:
        return [f"script: {exc}"]
    return []


def _valid_id(value: object) -> str | None:
    """``value`` if it is a usable task id (a string, not blank)."""
    return value if isinstance(value, str) and value.strip() else None


def _boolean(raw: Mapping[str, Any], key: str, default: bool, problems: list[str]) -> bool:
    value = raw.get(key, default)
    if isinstance(value, bool):
        return value
    problems.append(f"{key}: expected true or false, got {value!r}")
    return default


def _unknown_keys(table: Mapping[str, Any], valid: Sequence[str], what: str) -> list[str]:
    problems = []
    for key in table:
        if key in valid:
            continue
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        problems.append(f'unknown {what} "{key}"{hint}; valid keys: {", ".join(valid)}')
    return problems


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)
