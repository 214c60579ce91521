"""Task files: parsing, validation (every problem at once) and the permission check."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest

from actors.taskfile import (
    TaskFileError,
    load_task_file,
    parse_task_file,
    permission_problems,
)
from protocols import InvalidScript, TaskOptions, TaskStatus, ThreadExecutor

GOOD = """
[[task]]
id = "backup"
executor = "shell"
script = "tar czf /tmp/backup.tgz /etc"
every = "1h"
offset = "5m"
concurrency = 2

[[task]]
id = "stats"
name = "Statistics"
executor = "python"
script = "actors.examples.jobs:process_stats"
cron = "0 3 * * *"
timezone = "Europe/Paris"
active = false

[[task]]
id = "rollup"
executor = "shell"
script = "echo rollup"
every = 60
catch_up = true
start_at = 2024-05-01T00:00:00Z

[[task]]
id = "local"
executor = "shell"
script = "echo local"
every = 60
timezone = "Europe/Paris"
catch_up = "latest"
start_at = 2024-05-01T02:00:00
"""


def _problems(text: str, source: str = "tasks.toml") -> tuple[str, ...]:
    with pytest.raises(TaskFileError) as info:
        parse_task_file(text, source=source, resolve_python=ThreadExecutor(1).resolve)
    return info.value.problems


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_good_file_becomes_tasks_with_executor_and_start() -> None:
    """A valid file yields tasks in order, with options, status, executor and start."""
    parsed = parse_task_file(GOOD, source="tasks.toml")
    assert [e.task.id for e in parsed.entries] == ["backup", "stats", "rollup", "local"]
    backup, stats, rollup, local = parsed.entries
    assert backup.task.options == TaskOptions(name="backup", every=3600, offset=300, concurrency=2)
    assert backup.task.script == "tar czf /tmp/backup.tgz /etc"
    assert backup.task.status is TaskStatus.ACTIVE
    assert backup.executor == "shell"
    assert backup.catch_up == "all"  # the default
    assert backup.start_at is None
    assert backup.latest_completed(1_700_000_000) == 1_700_000_000
    assert stats.task.options.name == "Statistics"
    assert stats.task.options.cron == "0 3 * * *"
    assert stats.task.options.timezone == "Europe/Paris"
    assert stats.task.status is TaskStatus.INACTIVE
    assert stats.executor == "python"
    may_first = int(datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC).timestamp())
    assert rollup.catch_up == "all"  # true
    assert rollup.latest_completed(1_800_000_000) == may_first
    assert local.catch_up == "latest"
    # A date-time without an offset is read in the task's time zone (UTC+2 in May).
    assert local.start_at == may_first


def test_name_defaults_to_id() -> None:
    """A task without ``name`` is named by its id."""
    entry = parse_task_file(
        '[[task]]\nid = "x"\nexecutor = "shell"\nscript = "true"\nevery = 5\n'
    ).entries[0]
    assert entry.task.options.name == "x"
    assert entry.task.id == "x"


def test_every_problem_is_reported_with_file_and_task() -> None:
    """Problems in several tasks are all reported, each naming the file and the task."""
    problems = _problems(
        """
[[task]]
id = "backup"
executor = "shell"
script = "true"
every = 0

[[task]]
executor = "bash"
every = 5

[[task]]
id = "stats"
executor = "python"
script = "not a reference"
cron = "* * *"
active = "yes"
"""
    )
    joined = "\n".join(problems)
    assert all(p.startswith("tasks.toml: ") for p in problems)
    assert any(p.startswith('tasks.toml: task "backup": every:') for p in problems), joined
    assert any(p.startswith("tasks.toml: task #2: id: missing") for p in problems), joined
    assert any(p.startswith("tasks.toml: task #2: executor: 'bash'") for p in problems), joined
    assert any(p.startswith("tasks.toml: task #2: script: missing") for p in problems), joined
    assert any(p.startswith('tasks.toml: task "stats": script:') for p in problems), joined
    assert any(p.startswith('tasks.toml: task "stats": cron:') for p in problems), joined
    assert any(p.startswith('tasks.toml: task "stats": active:') for p in problems), joined
    # A missing id is one problem, not also a missing name.
    assert not any("task #2: name" in p for p in problems), joined


def test_unknown_keys_are_named_with_a_suggestion() -> None:
    """Unknown task and top-level keys are problems that list the valid keys."""
    problems = _problems(
        'colour = "blue"\n[[task]]\nid = "a"\nexecutor = "shell"\nscript = "true"\nevry = 5\n'
    )
    assert any(
        p.startswith('tasks.toml: task "a": unknown key "evry" (did you mean "every"?)')
        for p in problems
    ), problems
    assert any(p.startswith('tasks.toml: unknown top-level key "colour"') for p in problems)
    # The schedule is still checked: neither every nor cron is set.
    assert any(p.startswith('tasks.toml: task "a": ') and "cron" in p for p in problems)


def test_duplicate_ids_and_empty_file_are_problems() -> None:
    """Two tasks with one id, or a file with no task, are refused."""
    task = '[[task]]\nid = "a"\nexecutor = "shell"\nscript = "true"\nevery = 5\n'
    problems = _problems(task + task)
    assert problems == ('tasks.toml: task "a": id: duplicate of task #1\'s id (ids are unique)',)
    assert _problems("") == ('tasks.toml: no tasks: add at least one [[task]] table with "id"',)


def test_python_script_is_resolved_when_asked() -> None:
    """A python task whose module does not import is refused with the reason."""
    text = '[[task]]\nid = "p"\nexecutor = "python"\nscript = "no_such_mod_xyz:f"\nevery = 5\n'
    problems = _problems(text)
    assert len(problems) == 1
    assert problems[0].startswith('tasks.toml: task "p": script: ')
    assert "no_such_mod_xyz" in problems[0]

    def refuse(script: str) -> object:
        raise InvalidScript(f"nothing named {script}")

    with pytest.raises(TaskFileError) as info:
        parse_task_file(text.replace("no_such_mod_xyz", "json"), resolve_python=refuse)
    assert info.value.problems == ('<tasks>: task "p": script: nothing named json:f',)


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ('"all"', "all"),
        ('"latest"', "latest"),
        ('"none"', "none"),
        ("true", "all"),
        ("false", "none"),
    ],
)
def test_catch_up_takes_a_mode_or_a_boolean(value: str, mode: str) -> None:
    """``catch_up`` is "all", "latest" or "none"; true and false mean "all" and "none"."""
    base = '[[task]]\nid = "c"\nexecutor = "shell"\nscript = "true"\nevery = 5\n'
    (entry,) = parse_task_file(base + f"catch_up = {value}\n").entries
    assert entry.catch_up == mode


def test_bad_catch_up_and_start_at_are_refused_naming_what_is_allowed() -> None:
    """An unknown ``catch_up`` and a ``start_at`` that is not a time are problems;
    ``start_at`` alone is fine (where a task new to the database starts)."""
    base = '[[task]]\nid = "c"\nexecutor = "shell"\nscript = "true"\nevery = 5\n'
    (problem,) = _problems(base + 'catch_up = "some"\n')
    assert problem == (
        'tasks.toml: task "c": catch_up: \'some\' is not one of "all", "latest", "none" '
        "(or true / false)"
    )
    (problem,) = _problems(base + 'start_at = "yesterday"\n')
    assert problem.startswith('tasks.toml: task "c": start_at: expected Unix seconds')
    (entry,) = parse_task_file(base + "start_at = 0\n").entries
    assert entry.start_at == 0


def test_toml_syntax_error_names_file_and_line() -> None:
    """A file that is not TOML is one problem naming the file and the line."""
    (problem,) = _problems("[[task]]\nid = \n", source="bad.toml")
    assert problem.startswith("bad.toml: not valid TOML: ")
    assert "line 2" in problem


def test_load_reads_a_private_file(tmp_path: Path) -> None:
    """A 0644 file owned by the current user loads."""
    path = _write(tmp_path / "tasks.toml", GOOD, 0o644)
    assert len(load_task_file(path).entries) == 4


@pytest.mark.parametrize(
    ("mode", "what"),
    [(0o664, "group-writable"), (0o646, "world-writable"), (0o666, "group- and world-writable")],
)
def test_load_refuses_a_file_others_can_write(tmp_path: Path, mode: int, what: str) -> None:
    """A group- or world-writable task file is refused, naming the file and the fix."""
    path = _write(tmp_path / "tasks.toml", GOOD, mode)
    with pytest.raises(TaskFileError) as info:
        load_task_file(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: refusing a task file that other users can write")
    assert f"mode {mode:04o} is {what}" in problem
    assert problem.endswith(f"chmod go-w {path}")
    assert len(load_task_file(path, check_permissions=False).entries) == 4


def test_load_reports_a_missing_file(tmp_path: Path) -> None:
    """A file that cannot be read is one problem naming it."""
    path = tmp_path / "missing.toml"
    with pytest.raises(TaskFileError) as info:
        load_task_file(path)
    assert info.value.problems == (f"{path}: cannot read: No such file or directory",)


def _stat(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


def test_owner_must_be_the_daemon_user_or_root() -> None:
    """Like cron: a file owned by another non-root user is refused; root's is fine."""
    assert permission_problems("t.toml", _stat(0o644, 1000), euid=1000) == []
    assert permission_problems("t.toml", _stat(0o644, 0), euid=1000) == []
    (problem,) = permission_problems("t.toml", _stat(0o644, 1001), euid=1000)
    assert problem.startswith("t.toml: refusing a task file owned by another user (uid 1001")
    (problem,) = permission_problems("t.toml", _stat(0o644, 1001), euid=0)
    assert "uid 1001" in problem
