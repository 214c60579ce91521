"""The run history on the command line: what the daemon's SQLite database holds.

Five subcommands of ``tickactors`` read (and, for manual runs, write) the database a
daemon keeps with ``--db PATH``. Each takes ``--db PATH`` (default ``tickactors.db``
in the working directory) and ``--json``:

``tickactors tasks``
    One line per task: its id, schedule (``every 10s``, ``cron "*/5 * * * *"
    Europe/Berlin``, with ``offset +30s`` when the offset is not zero), whether it
    is active, when its next run is due (``-`` for an inactive task, which creates
    no runs) and its last run: the id and status of the newest finished run (or of
    the newest run at all when none has finished). The time that run finished is
    in the ``--json`` output only: two full timestamps do not fit the 80 columns.
``tickactors runs TASK [--status S] [--limit N]``
    The task's runs, newest slot first: id, slot, status, when it started, how long
    it ran (``1.2s``, ``2m05s``...), and, on an indented line under it, its last log
    line. ``--status`` keeps the runs of one status (``scheduled``, ``started``,
    ``success``, ``failed``, ``canceled``); ``--limit`` shows the first N (default
    20) of what is left.
``tickactors logs TASK RUN``
    One run in full: its id, task, slot, status, start, finish and duration, then
    every line of its log with its time, in order.
``tickactors run-now TASK [--for TIME]``
    Queue a manual run of the task for the slot TIME: Unix seconds, or an ISO 8601
    date-time (``2024-05-01T12:00:00+02:00``; without an offset it is read as
    UTC); default now (whole seconds). Prints the queued run's id. A running
    daemon starts it within a tick or two.
``tickactors retry TASK RUN``
    Queue a copy of a finished run (same slot) under a new id, and print that id.
    A run still queued or in progress is refused.

Times are shown in ISO 8601 with the zone offset, in the viewer's local zone
(``TZ=UTC tickactors runs TASK`` shows UTC); ``-`` stands for no time. Tables fit
in 80 columns: longer cells are cut with ``…``, and control characters in task
ids and log lines are shown escaped (``\\x1b``).

``--json`` prints one JSON document on stdout instead (a list of objects for
``tasks`` and ``runs``, an object for the others) with the same fields, each time
both as a Unix number and as an ISO string: ``"started_at": 1700000000.5,
"started": "2023-11-15T01:13:20+03:00"``. A run has ``id``, ``task_id``,
``status``, ``manual``, ``scheduled_for``/``slot``, ``requested_at``/``requested``
(``null`` for a scheduled run), ``started_at``/``started``,
``finished_at``/``finished``, ``duration`` (seconds, or ``null``) and
``last_log``; ``logs`` adds ``log``, a list of ``{"logged_at", "logged",
"message"}``; ``retry`` adds ``retry_of``. A task has ``id``, ``name``,
``schedule``, ``every``, ``cron``, ``timezone``, ``offset``, ``concurrency``,
``status``, ``active``, ``next_due_at``/``next_due`` and ``last_run`` (a run, or
``null``).

The database must exist: these commands never create one (a missing or empty file
is an error: start the daemon with ``--db PATH`` first). They open it as readers
(``SQLiteStore(path, writer=False)``), so they work while the daemon holds it;
``run-now`` and ``retry`` wait for the daemon's transaction in progress, if any.

Exit status: 0 on success; 1 when the database is missing or unreadable, or the
store refuses (unknown task or run, a run not finished, a manual run already
queued for that slot, a database from a newer tickactors), with one line
``tickactors: <message>`` on stderr; 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TextIO

from protocols.errors import SchedulerError, TaskNotFound
from protocols.model import Run, RunStatus, Task
from protocols.stores.sqlite import SQLiteStore

__all__ = [
    "HISTORY_COMMANDS",
    "add_history_commands",
    "main",
    "run_history_command",
]

HISTORY_COMMANDS: Final[frozenset[str]] = frozenset({"tasks", "runs", "logs", "run-now", "retry"})
_DEFAULT_DB: Final = "tickactors.db"
_DEFAULT_LIMIT: Final = 20
_WIDTH: Final = 80
"""No line of a ``tasks`` or ``runs`` table is wider than this."""

_EXIT_OK: Final = 0
_EXIT_FAILURE: Final = 1
_EXIT_USAGE: Final = 2
_STATUSES: Final = tuple(status.value for status in RunStatus)
_NONE: Final = "-"
_ELLIPSIS: Final = "…"

# Column widths, separated by one space: 11+15+8+25+17 + 4 = 80, and 8+25+9+25+8 + 4 = 79.
_TASK_COLUMNS: Final = (("TASK", 11), ("SCHEDULE", 15), ("STATE", 8), ("NEXT DUE", 25))
_TASK_LAST_RUN: Final = ("LAST RUN", 17)
_RUN_COLUMNS: Final = (
    ("RUN", 8),
    ("SLOT", 25),
    ("STATUS", 9),
    ("STARTED", 25),
    ("DURATION", 8),
)
_LOG_PREFIX: Final = " " * 9 + "└ "  # the last log line, under the SLOT column
_LOG_TIME_WIDTH: Final = 25

_now: Callable[[], float] = time.time  # the default slot of run-now (a seam for tests)


class _Failure(Exception):
    """A command failed for a reason to print as ``tickactors: <message>``."""


# -- the command line --------------------------------------------------------------------


def add_history_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``tasks``, ``runs``, ``logs``, ``run-now`` and ``retry`` subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        default=_DEFAULT_DB,
        metavar="PATH",
        help=f"the daemon's SQLite database (default {_DEFAULT_DB} in the working directory)",
    )
    common.add_argument(
        "--json", action="store_true", help="print one JSON document instead of a table"
    )

    commands.add_parser(
        "tasks",
        parents=[common],
        help="list the tasks of the database, with their next due time and last run",
        description="List every task: id, schedule, active or not, next due time, last run.",
    )

    runs = commands.add_parser(
        "runs",
        parents=[common],
        help="list a task's runs, newest first",
        description="List the runs of TASK, newest slot first: id, slot, status, start, "
        "duration and last log line.",
    )
    runs.add_argument("task_id", metavar="TASK", help="the task's id")
    runs.add_argument(
        "--status",
        choices=_STATUSES,
        default=None,
        help="only the runs with this status",
    )
    runs.add_argument(
        "--limit",
        type=_positive_int,
        default=_DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N runs (default {_DEFAULT_LIMIT})",
    )

    logs = commands.add_parser(
        "logs",
        parents=[common],
        help="show one run and every line of its log",
        description="Show run RUN of TASK (slot, status, start, finish) and its whole log.",
    )
    logs.add_argument("task_id", metavar="TASK", help="the task's id")
    logs.add_argument("run_id", metavar="RUN", type=_run_id, help="the run's id")

    run_now = commands.add_parser(
        "run-now",
        parents=[common],
        help="queue a manual run of a task (a running daemon starts it within a tick or two)",
        description="Queue a manual run of TASK and print its id.",
    )
    run_now.add_argument("task_id", metavar="TASK", help="the task's id")
    run_now.add_argument(
        "--for",
        dest="slot",
        type=_slot,
        default=None,
        metavar="TIME",
        help="the slot the run is for: Unix seconds, or an ISO 8601 date-time "
        "(UTC unless it has an offset); default now",
    )

    retry = commands.add_parser(
        "retry",
        parents=[common],
        help="queue a copy of a finished run",
        description="Queue a copy of run RUN of TASK (same slot) under a new id, and print "
        "that id. Only a finished run can be retried.",
    )
    retry.add_argument("task_id", metavar="TASK", help="the task's id")
    retry.add_argument("run_id", metavar="RUN", type=_run_id, help="the finished run's id")


def _build_parser() -> argparse.ArgumentParser:
    """A ``tickactors`` parser with the history subcommands only."""
    parser = argparse.ArgumentParser(
        prog="tickactors", description="Show and steer the runs in a tickactors database."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_history_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Parse ``argv`` (history subcommands only) and run it; the exit code.

    A bad command line exits with 2 through :class:`SystemExit`, as argparse does.
    """
    args = _build_parser().parse_args(argv)
    return run_history_command(args, stdout=stdout)


def run_history_command(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    """Run the history subcommand ``args.command``; the exit code (0, 1, or 2).

    Output goes to ``stdout`` (default :data:`sys.stdout`), errors to stderr as one
    line ``tickactors: <message>``.
    """
    out = sys.stdout if stdout is None else stdout
    handler = _HANDLERS.get(args.command)
    if handler is None:
        print(f"tickactors: {args.command!r} is not a history command", file=sys.stderr)
        return _EXIT_USAGE
    try:
        with _open_store(args.db) as store:
            result = handler(store, args)
    except (_Failure, SchedulerError) as exc:
        print(f"tickactors: {_one_line(str(exc))}", file=sys.stderr)
        return _EXIT_FAILURE
    text = result.json_text() if args.json else result.text
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:  # `tickactors runs t1 | head`: the reader left
        if out is sys.stdout:
            # Python would report the failed flush at exit; point stdout at nothing.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return _EXIT_FAILURE
    return _EXIT_OK


def _open_store(path: str) -> SQLiteStore:
    """The database at ``path``, opened as a reader; never creates one."""
    if path == ":memory:":
        raise _Failure(
            "--db :memory: keeps no history outside the daemon's process: give the daemon "
            "a database file (--db PATH), and these commands the same --db PATH"
        )
    if not os.path.exists(path):
        raise _Failure(
            f"no database at {path}: start the daemon with --db {path} first "
            "(or point --db at the database it writes)"
        )
    if not os.path.isfile(path):
        raise _Failure(f"{path} is not a database file (a directory?); give --db the file")
    if os.path.getsize(path) == 0:  # the reader would write the schema into it
        raise _Failure(
            f"{path} is empty, not a tickactors database yet: start the daemon with "
            f"--db {path} first (or wait for it to create the database)"
        )
    return SQLiteStore(path, writer=False)


# -- argument types ----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number > 0")
    return value


def _run_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run id (a whole number)") from None


_UNIX_SECONDS: Final = re.compile(r"[+-]?\d+")


def _slot(text: str) -> int:
    """Unix seconds, or an ISO 8601 date-time (UTC without an offset), as Unix seconds."""
    stripped = text.strip()
    if _UNIX_SECONDS.fullmatch(stripped):
        value = int(stripped)
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r}: expected Unix seconds >= 0")
        return value
    example = "expected Unix seconds or an ISO 8601 date-time such as 2024-05-01T12:00:00+02:00"
    try:
        datetime.date.fromisoformat(stripped)
    except ValueError:
        pass
    else:
        raise argparse.ArgumentTypeError(f"{text!r} is a date without a time; {example}")
    try:
        when = datetime.datetime.fromisoformat(stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time; {example}") from None
    if when.microsecond:
        raise argparse.ArgumentTypeError(f"{text!r}: a slot is a whole second; drop the fraction")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp())


# -- the commands ------------------------------------------------------------------------


class _Result:
    """What a command prints: a text for people, a JSON value for scripts."""

    def __init__(self, text_lines: Iterable[str], document: object) -> None:
        self.text = "".join(line + "\n" for line in text_lines)
        self.document = document

    def json_text(self) -> str:
        return json.dumps(self.document, indent=2) + "\n"


def _tasks(store: SQLiteStore, args: argparse.Namespace) -> _Result:
    rows: list[tuple[Task, int | None, Run | None]] = []
    for task in sorted(store.list_tasks(), key=lambda task: task.id):
        try:
            next_due = store.next_due_run(task.id) if task.active else None
            runs = store.find_runs(task.id)
        except TaskNotFound:  # removed by the daemon since list_tasks
            continue
        rows.append((task, next_due, _last_run(runs)))
    document = [_task_json(task, next_due, last) for task, next_due, last in rows]
    if not rows:
        return _Result([f"no tasks in {args.db}"], document)
    header = _row([title for title, _ in (*_TASK_COLUMNS, _TASK_LAST_RUN)], _task_widths())
    lines = [header]
    for task, next_due, last in rows:
        cells = [
            task.id,
            _schedule(task),
            task.status.value,
            _time(next_due),
            _NONE if last is None else f"{last.id} {last.status.value}",
        ]
        lines.append(_row(cells, _task_widths()))
    return _Result(lines, document)


def _last_run(runs: Sequence[Run]) -> Run | None:
    """The first finished run of ``find_runs``' order, else the first run, else None."""
    for run in runs:
        if run.finished_at is not None:
            return run
    return runs[0] if runs else None


def _runs(store: SQLiteStore, args: argparse.Namespace) -> _Result:
    runs = store.find_runs(args.task_id)
    if args.status is not None:
        runs = [run for run in runs if run.status.value == args.status]
    runs = runs[: args.limit]
    document = [_run_json(run) for run in runs]
    if not runs:
        which = "" if args.status is None else f"{args.status} "
        return _Result([f"no {which}runs of task {_one_line(args.task_id)}"], document)
    widths = [width for _, width in _RUN_COLUMNS]
    lines = [_row([title for title, _ in _RUN_COLUMNS], widths)]
    for run in runs:
        cells = [
            str(run.id),
            _time(run.scheduled_for),
            run.status.value,
            _time(run.started_at),
            _duration_text(_duration(run)),
        ]
        lines.append(_row(cells, widths))
        if run.log:
            message = _cell(run.log[-1].message, _WIDTH - _display_width(_LOG_PREFIX))
            lines.append((_LOG_PREFIX + message).rstrip())
    return _Result(lines, document)


def _logs(store: SQLiteStore, args: argparse.Namespace) -> _Result:
    run = store.find_run(args.task_id, args.run_id)
    document = _run_json(run)
    document["log"] = [
        {"logged_at": entry.when, "logged": _iso(entry.when), "message": entry.message}
        for entry in run.log
    ]
    lines = [
        f"run       {run.id}",
        f"task      {_one_line(run.task_id)}",
        f"slot      {_time(run.scheduled_for)}",
        f"status    {run.status.value}",
    ]
    if run.requested_at:
        lines.append(f"requested {_time(run.requested_at)} (a manual run)")
    lines += [
        f"started   {_time(run.started_at)}",
        f"finished  {_time(run.finished_at)}",
        f"duration  {_duration_text(_duration(run))}",
        "",
    ]
    if not run.log:
        lines.append("(no log lines)")
    indent = " " * (_LOG_TIME_WIDTH + 2)
    for entry in run.log:
        parts = entry.message.splitlines() or [""]
        parts = [_escape(part, keep="\t") for part in parts]
        lines.append(f"{_time(entry.when):<{_LOG_TIME_WIDTH}}  {parts[0]}")
        lines += [indent + part for part in parts[1:]]
    return _Result(lines, document)


def _run_now(store: SQLiteStore, args: argparse.Namespace) -> _Result:
    slot: int = int(_now()) if args.slot is None else args.slot
    run = store.force_run(args.task_id, slot)
    line = (
        f"queued run {run.id} of task {_one_line(run.task_id)} for slot {_time(run.scheduled_for)}"
    )
    return _Result([line], _run_json(run))


def _retry(store: SQLiteStore, args: argparse.Namespace) -> _Result:
    run = store.retry_run(args.task_id, args.run_id)
    document = _run_json(run)
    document["retry_of"] = args.run_id
    line = (
        f"queued run {run.id} of task {_one_line(run.task_id)} "
        f"for slot {_time(run.scheduled_for)} (a retry of run {args.run_id})"
    )
    return _Result([line], document)


_HANDLERS: Final[dict[str, Callable[[SQLiteStore, argparse.Namespace], _Result]]] = {
    "tasks": _tasks,
    "runs": _runs,
    "logs": _logs,
    "run-now": _run_now,
    "retry": _retry,
}


# -- JSON --------------------------------------------------------------------------------


def _run_json(run: Run) -> dict[str, Any]:
    requested = run.requested_at or None
    return {
        "id": run.id,
        "task_id": run.task_id,
        "status": run.status.value,
        "manual": bool(run.requested_at),
        "scheduled_for": run.scheduled_for,
        "slot": _iso(run.scheduled_for),
        "requested_at": requested,
        "requested": _iso(requested),
        "started_at": run.started_at,
        "started": _iso(run.started_at),
        "finished_at": run.finished_at,
        "finished": _iso(run.finished_at),
        "duration": _duration(run),
        "last_log": run.log[-1].message if run.log else None,
    }


def _task_json(task: Task, next_due: int | None, last: Run | None) -> dict[str, Any]:
    options = task.options
    return {
        "id": task.id,
        "name": options.name,
        "schedule": _schedule(task),
        "every": options.every,
        "cron": options.cron,
        "timezone": options.timezone,
        "offset": options.offset,
        "concurrency": options.concurrency,
        "status": task.status.value,
        "active": task.active,
        "next_due_at": next_due,
        "next_due": _iso(next_due),
        "last_run": None if last is None else _run_json(last),
    }


# -- formatting --------------------------------------------------------------------------


def _iso(when: float | None) -> str | None:
    """``when`` in ISO 8601 with the offset of the viewer's local zone (None stays None)."""
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds")


def _time(when: float | None) -> str:
    text = _iso(when)
    return _NONE if text is None else text


def _duration(run: Run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return run.finished_at - run.started_at


def _duration_text(seconds: float | None) -> str:
    """``1.2s``, ``2m05s``, ``3h07m``, ``2d04h``; ``-`` for None."""
    if seconds is None:
        return _NONE
    if seconds < 0:
        return "-" + _duration_text(-seconds)
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3_600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3_600}h{whole % 3_600 // 60:02d}m"
    return f"{whole // 86_400}d{whole % 86_400 // 3_600:02d}h"


def _span(seconds: int) -> str:
    """Whole seconds as a duration string: ``10s``, ``1m30s``, ``1h``, ``-5m``."""
    if seconds < 0:
        return "-" + _span(-seconds)
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _schedule(task: Task) -> str:
    """``every 10s`` or ``cron "*/5 * * * *" Europe/Berlin``, then ``offset +30s`` if any."""
    options = task.options
    if options.cron is not None:
        text = f'cron "{options.cron}" {options.timezone}'
    else:
        text = f"every {_span(options.every or 0)}"
    if options.offset:
        text += f" offset {'+' if options.offset > 0 else ''}{_span(options.offset)}"
    return text


def _task_widths() -> list[int]:
    return [width for _, width in (*_TASK_COLUMNS, _TASK_LAST_RUN)]


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One table line: each cell fitted to its column, one space apart."""
    return " ".join(_cell(cell, width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def _cell(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` columns with ``…`` if longer, padded to it."""
    text = _one_line(text)
    if _display_width(text) > width:
        kept: list[str] = []
        used = 0
        for char in text:
            used += _char_width(char)
            if used > width - 1:
                break
            kept.append(char)
        text = "".join(kept) + _ELLIPSIS
    return text + " " * (width - _display_width(text))


def _one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed to single spaces, control characters escaped."""
    return _escape(" ".join(text.split()))


def _escape(text: str, keep: str = "") -> str:
    """Control and format characters (a terminal's escape sequences) as ``\\x1b``."""
    return "".join(
        char
        if char in keep or unicodedata.category(char) not in ("Cc", "Cf")
        else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _display_width(text: str) -> int:
    return sum(_char_width(char) for char in text)
