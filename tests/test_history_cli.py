"""The run-history command line (actors.history) on a SQLite database built in tmp_path."""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from actors import history
from actors.history import HISTORY_COMMANDS, add_history_commands, main, run_history_command
from protocols import RunStatus, SQLiteStore, TaskStatus
from protocols.stores.sqlite import SCHEMA_VERSION
from protocols.testing.store_contract import FakeClock, make_task

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z, a multiple of 10
LONG_ID = "nightly-backup-of-the-warehouse"
LONG_LOG = "traceback: " + "x" * 200
ZONE = "TST-3"  # POSIX TZ: three hours east of UTC, no daylight saving time


def local(seconds: int) -> str:
    """T0 + seconds (within T0's minute) as the CLI shows it in ZONE, written out by hand."""
    assert 0 <= 20 + seconds < 60
    return f"2023-11-15T01:13:{20 + seconds:02d}+03:00"


@attrs.define
class Db:
    """The database of a test: its path, the ids of the runs created, and the clock."""

    path: Path
    clock: FakeClock
    ids: dict[str, int]


@pytest.fixture(autouse=True)
def local_zone() -> Iterator[None]:
    """The viewer's local zone is ZONE (+03:00) during each test, whatever the machine's."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = ZONE
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def populate(store: SQLiteStore, clock: FakeClock) -> dict[str, int]:
    """Three tasks and four runs; the run ids by name.

    - t1 (every 10s, active): ``ok`` (slot T0, success, 1.2s, two log lines), ``bad``
      (slot T0+10, failed, 3.5s, a long last log line), ``waiting`` (slot T0+20,
      created and not started).
    - t2 (cron, Europe/Berlin, offset 30s, inactive): no runs.
    - LONG_ID (every 1h, offset -5m): ``busy`` (started, not finished).
    """
    store.add_task(make_task("t1", every=10), latest_completed=T0 - 10)
    store.add_task(
        make_task(
            "t2",
            cron="*/5 * * * *",
            timezone="Europe/Berlin",
            offset=30,
            status=TaskStatus.INACTIVE,
        )
    )
    store.add_task(make_task(LONG_ID, every=3600, offset=-300), latest_completed=T0 - 3600)

    ok = store.create_next_run("t1", T0).created.run_id
    store.update_run_state("t1", ok, T0 + 0.5, RunStatus.STARTED)
    store.add_run_log("t1", ok, T0 + 0.6, "starting")
    store.add_run_log("t1", ok, T0 + 1.6, "done")
    store.update_run_state("t1", ok, T0 + 1.7, RunStatus.SUCCESS)
    clock.set(T0 + 1.7)
    store.finish_run("t1", ok)

    bad = store.create_next_run("t1", T0 + 10).created.run_id
    store.update_run_state("t1", bad, T0 + 10.25, RunStatus.STARTED)
    store.add_run_log("t1", bad, T0 + 11.0, "starting")
    store.add_run_log("t1", bad, T0 + 13.5, LONG_LOG)
    store.update_run_state("t1", bad, T0 + 13.75, RunStatus.FAILED)
    clock.set(T0 + 13.75)
    store.finish_run("t1", bad)

    waiting = store.create_next_run("t1", T0 + 20).created.run_id

    busy = store.create_next_run(LONG_ID, T0).created.run_id
    store.update_run_state(LONG_ID, busy, T0 + 1, RunStatus.STARTED)
    ids = {"ok": ok, "bad": bad, "waiting": waiting, "busy": busy}
    assert ids == {"ok": 1, "bad": 2, "waiting": 3, "busy": 4}  # the tables below spell them
    return ids


@pytest.fixture
def db(tmp_path: Path) -> Db:
    """A populated database, closed before the commands run."""
    path = tmp_path / "history.db"
    clock = FakeClock(T0)
    with SQLiteStore(path, clock=clock) as store:
        ids = populate(store, clock)
    return Db(path, clock, ids)


CLI = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CLI:
    """Run ``main`` with its argv; (exit code, stdout, stderr)."""

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        out = io.StringIO()
        code = main([str(arg) for arg in argv], stdout=out)
        return code, out.getvalue(), capsys.readouterr().err

    return run


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    """Run ``main`` expecting argparse to exit with 2; its stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([str(arg) for arg in argv], stdout=io.StringIO())
    assert exited.value.code == 2
    return capsys.readouterr().err


def as_json(cli: CLI, *argv: str | Path) -> Any:
    code, out, err = cli(*argv, "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


# -- tasks -------------------------------------------------------------------------------


def test_tasks_table(db: Db, cli: CLI) -> None:
    """`tasks` prints one line per task: id, schedule, state, next due, last run (by id)."""
    code, out, err = cli("tasks", "--db", db.path)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "TASK        SCHEDULE        STATE    NEXT DUE                  LAST RUN",
        "nightly-ba… every 1h offse… active   2023-11-15T01:55:00+03:00 4 started",
        "t1          every 10s       active   2023-11-15T01:13:50+03:00 2 failed",
        't2          cron "*/5 * * … inactive -                         -',
    ]


def test_tasks_lines_fit_80_columns(db: Db, cli: CLI) -> None:
    """No line of `tasks` is wider than 80 characters, even with long ids and schedules."""
    with SQLiteStore(db.path, clock=db.clock) as store:
        store.add_task(make_task("x" * 120, cron="0 0 1 1 *", timezone="America/Argentina/Ushuaia"))
        run_id = store.create_next_run("x" * 120, 2 * T0).created.run_id
        store.update_run_state("x" * 120, run_id, T0, RunStatus.CANCELED)
    code, out, _ = cli("tasks", "--db", db.path)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 5
    assert max(len(line) for line in lines) <= 80
    assert lines[-1].startswith('xxxxxxxxxx… cron "0 0 1 1 … active   2025-01-01T06:00:00+03:00')
    assert lines[-1].endswith(f"{run_id} canceled")


def test_tasks_json(db: Db, cli: CLI) -> None:
    """`tasks --json` lists every task with its options, next due time and last run."""
    tasks = as_json(cli, "tasks", "--db", db.path)
    assert [task["id"] for task in tasks] == [LONG_ID, "t1", "t2"]
    long_task, t1, t2 = tasks
    assert t1["schedule"] == "every 10s"
    assert (t1["every"], t1["cron"], t1["offset"], t1["active"]) == (10, None, 0, True)
    assert (t1["next_due_at"], t1["next_due"]) == (T0 + 30, local(30))
    # the last run is the newest *finished* one: bad, not the newer waiting run
    last = t1["last_run"]
    assert (last["id"], last["status"]) == (db.ids["bad"], "failed")
    assert (last["finished_at"], last["finished"]) == (T0 + 13.75, local(13))
    assert (last["started_at"], last["duration"]) == (T0 + 10.25, 3.5)
    assert last["last_log"] == LONG_LOG
    # none finished: the newest run at all
    assert long_task["schedule"] == "every 1h offset -5m"
    assert (long_task["last_run"]["id"], long_task["last_run"]["status"]) == (4, "started")
    assert long_task["last_run"]["finished_at"] is None
    assert long_task["next_due_at"] == 1_700_002_800 - 300  # the next whole hour, 5 min early
    # inactive, no runs
    assert t2["schedule"] == 'cron "*/5 * * * *" Europe/Berlin offset +30s'
    assert (t2["cron"], t2["timezone"], t2["offset"]) == ("*/5 * * * *", "Europe/Berlin", 30)
    assert (t2["status"], t2["active"], t2["next_due_at"], t2["next_due"]) == (
        "inactive",
        False,
        None,
        None,
    )
    assert t2["last_run"] is None


def test_tasks_on_an_empty_database(tmp_path: Path, cli: CLI) -> None:
    """`tasks` of a database without tasks says so, and `--json` prints an empty list."""
    path = tmp_path / "empty.db"
    SQLiteStore(path).close()
    assert cli("tasks", "--db", path) == (0, f"no tasks in {path}\n", "")
    assert as_json(cli, "tasks", "--db", path) == []


# -- runs --------------------------------------------------------------------------------


def test_runs_table(db: Db, cli: CLI) -> None:
    """`runs` lists newest first: id, slot, status, start, duration, and the last log line."""
    code, out, err = cli("runs", "t1", "--db", db.path)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines == [
        "RUN      SLOT                      STATUS    STARTED                   DURATION",
        f"3        {local(20)} scheduled -                         -",
        f"2        {local(10)} failed    {local(10)} 3.5s",
        "         └ " + LONG_LOG[:68] + "…",
        f"1        {local(0)} success   {local(0)} 1.2s",
        "         └ done",
    ]
    assert max(len(line) for line in lines) <= 80


def test_runs_lines_fit_80_columns_with_wide_characters_and_escapes(db: Db, cli: CLI) -> None:
    """`runs` stays within 80 columns with wide characters, newlines and escape codes."""
    with SQLiteStore(db.path, clock=db.clock) as store:
        wide = store.create_next_run(LONG_ID, T0 + 3600).created.run_id
        store.add_run_log(LONG_ID, wide, T0, "第一行" * 30 + "\nsecond line")
        odd = store.create_next_run(LONG_ID, T0 + 7200).created.run_id
        store.add_run_log(LONG_ID, odd, T0, "last\nline \x1b[31mred\x1b[0m\t" + "y" * 100)
    code, out, _ = cli("runs", LONG_ID, "--db", db.path)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1::2]] == [str(odd), str(wide), "4"]
    # 69 columns for the message: 34 wide characters (68 columns), then the ellipsis
    assert lines[4] == "         └ " + "第一行" * 11 + "第…"
    assert lines[2] == "         └ last line \\x1b[31mred\\x1b[0m " + "y" * 39 + "…"
    assert max(len(line) for line in lines) <= 80
    assert "\x1b" not in out


def test_runs_json(db: Db, cli: CLI) -> None:
    """`runs --json` gives every run newest first, with raw and ISO times and the duration."""
    runs = as_json(cli, "runs", "t1", "--db", db.path)
    assert [run["id"] for run in runs] == [3, 2, 1]
    assert [run["scheduled_for"] for run in runs] == [T0 + 20, T0 + 10, T0]
    assert [run["slot"] for run in runs] == [local(20), local(10), local(0)]
    assert [run["status"] for run in runs] == ["scheduled", "failed", "success"]
    assert [run["duration"] for run in runs] == [None, 3.5, pytest.approx(1.2)]
    waiting, bad, ok = runs
    assert (ok["started_at"], ok["started"]) == (T0 + 0.5, local(0))
    assert (ok["finished_at"], ok["finished"]) == (T0 + 1.7, local(1))
    assert ok["last_log"] == "done"
    assert (ok["manual"], ok["requested_at"], ok["requested"]) == (False, None, None)
    assert (waiting["started"], waiting["finished"], waiting["last_log"]) == (None, None, None)
    assert bad["task_id"] == "t1"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(["--status", "failed"], [2], id="status"),
        pytest.param(["--status", "success"], [1], id="status-success"),
        pytest.param(["--status", "canceled"], [], id="status-none"),
        pytest.param(["--limit", "2"], [3, 2], id="limit"),
        pytest.param(["--limit", "1", "--status", "success"], [1], id="status-then-limit"),
    ],
)
def test_runs_status_and_limit(db: Db, cli: CLI, options: list[str], expected: list[int]) -> None:
    """`--status` keeps the runs of one status and `--limit` the first N of those."""
    runs = as_json(cli, "runs", "t1", "--db", db.path, *options)
    assert [run["id"] for run in runs] == expected


def test_runs_limit_defaults_to_20(tmp_path: Path, cli: CLI) -> None:
    """Without `--limit`, `runs` shows the 20 newest runs of a task that has 25."""
    path = tmp_path / "many.db"
    clock = FakeClock(T0)
    with SQLiteStore(path, clock=clock) as store:
        store.add_task(make_task("t", every=10), latest_completed=T0 - 10)
        for slot in range(T0, T0 + 250, 10):
            run_id = store.create_next_run("t", slot).created.run_id
            store.update_run_state("t", run_id, slot, RunStatus.SUCCESS)
            store.finish_run("t", run_id)
    runs = as_json(cli, "runs", "t", "--db", path)
    assert [run["scheduled_for"] for run in runs] == list(range(T0 + 240, T0 + 40, -10))
    code, out, _ = cli("runs", "t", "--db", path)
    assert (code, len(out.splitlines())) == (0, 21)  # the header and 20 runs


def test_runs_without_any_says_so(db: Db, cli: CLI) -> None:
    """`runs` of a task without runs (of that status) prints a line saying so."""
    assert cli("runs", "t2", "--db", db.path) == (0, "no runs of task t2\n", "")
    assert cli("runs", "t1", "--status", "canceled", "--db", db.path) == (
        0,
        "no canceled runs of task t1\n",
        "",
    )


# -- logs --------------------------------------------------------------------------------


def test_logs_shows_header_and_every_line_in_order(db: Db, cli: CLI) -> None:
    """`logs` prints the run's header, then every log line with its time, in order."""
    code, out, err = cli("logs", "t1", "2", "--db", db.path)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "run       2",
        "task      t1",
        f"slot      {local(10)}",
        "status    failed",
        f"started   {local(10)}",
        f"finished  {local(13)}",
        "duration  3.5s",
        "",
        f"{local(11)}  starting",
        f"{local(13)}  {LONG_LOG}",
    ]


def test_logs_of_a_manual_run_with_multiline_messages(db: Db, cli: CLI) -> None:
    """`logs` shows when a manual run was requested, and continuation lines indented."""
    with SQLiteStore(db.path, clock=db.clock) as store:
        db.clock.set(T0 + 5)
        run_id = store.force_run("t2", T0).id
        store.add_run_log("t2", run_id, T0 + 6, "one\ntwo\n\x1b[1mthree")
    code, out, _ = cli("logs", "t2", str(run_id), "--db", db.path)
    assert code == 0
    lines = out.splitlines()
    assert lines[4] == f"requested {local(5)} (a manual run)"
    assert lines[-4:] == [
        "",
        f"{local(6)}  one",
        " " * 27 + "two",
        " " * 27 + "\\x1b[1mthree",
    ]


def test_logs_json(db: Db, cli: CLI) -> None:
    """`logs --json` gives the run and every log line with raw and ISO times."""
    run = as_json(cli, "logs", "t1", "1", "--db", db.path)
    assert (run["id"], run["task_id"], run["status"], run["duration"]) == (
        1,
        "t1",
        "success",
        pytest.approx(1.2),
    )
    assert run["log"] == [
        {"logged_at": T0 + 0.6, "logged": local(0), "message": "starting"},
        {"logged_at": T0 + 1.6, "logged": local(1), "message": "done"},
    ]


def test_logs_of_a_run_without_log(db: Db, cli: CLI) -> None:
    """`logs` of a run with no log lines says so."""
    code, out, _ = cli("logs", "t1", "3", "--db", db.path)
    assert code == 0
    assert out.splitlines()[-1] == "(no log lines)"
    assert "duration  -" in out.splitlines()


def test_logs_of_an_unknown_run(db: Db, cli: CLI) -> None:
    """`logs` of a run the task does not have exits 1 naming the run."""
    assert cli("logs", "t1", "4", "--db", db.path) == (
        1,
        "",
        "tickactors: run not found: task 't1' has no run with id 4\n",
    )


# -- run-now -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "slot"),
    [
        pytest.param("1700000123", T0 + 123, id="unix-seconds"),
        pytest.param("2023-11-14T22:13:20", T0, id="iso-naive-is-utc"),
        pytest.param("2023-11-15T01:13:25+03:00", T0 + 5, id="iso-offset"),
        pytest.param("2023-11-14T22:13:30Z", T0 + 10, id="iso-z"),
        pytest.param("2023-11-14 22:13:40", T0 + 20, id="iso-space"),
    ],
)
def test_run_now_queues_a_manual_run_for_the_slot(db: Db, cli: CLI, when: str, slot: int) -> None:
    """`run-now --for TIME` queues a manual run for that slot and prints its id."""
    code, out, err = cli("run-now", "t1", "--for", when, "--db", db.path)
    assert (code, err) == (0, "")
    with SQLiteStore(db.path, writer=False) as store:
        (queued,) = store.manual_runs("t1")
    assert (queued.scheduled_for, queued.status) == (slot, RunStatus.SCHEDULED)
    assert queued.requested_at != 0
    assert queued.id == 5
    assert out == f"queued run 5 of task t1 for slot {history._iso(slot)}\n"


def test_run_now_defaults_to_now(db: Db, cli: CLI) -> None:
    """`run-now` without `--for` queues the run for the current whole second."""
    before = int(time.time())
    run = as_json(cli, "run-now", "t1", "--db", db.path)
    after = int(time.time())
    assert before <= run["scheduled_for"] <= after
    assert isinstance(run["scheduled_for"], int)
    assert (run["manual"], run["status"]) == (True, "scheduled")
    with SQLiteStore(db.path, writer=False) as store:
        assert [queued.id for queued in store.manual_runs("t1")] == [run["id"]]
        assert store.manual_runs("t1")[0].scheduled_for == run["scheduled_for"]


def test_run_now_twice_for_one_slot(db: Db, cli: CLI) -> None:
    """A second `run-now` for a slot already queued exits 1 with RunAlreadyQueued's message."""
    assert cli("run-now", "t1", "--for", str(T0), "--db", db.path)[0] == 0
    code, out, err = cli("run-now", "t1", "--for", str(T0), "--db", db.path)
    assert (code, out) == (1, "")
    assert err == (
        f"tickactors: run already queued: task 't1' already has a manual run for {T0} waiting\n"
    )


@pytest.mark.parametrize(
    ("when", "complaint"),
    [
        ("yesterday", "is not a time"),
        ("2023-11-14", "is a date without a time"),
        ("2023-11-14T22:13:20.5", "a slot is a whole second"),
        ("-5", "expected Unix seconds >= 0"),
    ],
)
def test_run_now_bad_time(
    db: Db, capsys: pytest.CaptureFixture[str], when: str, complaint: str
) -> None:
    """`run-now --for` with something not a time exits 2 and says what was expected."""
    err = usage_error(capsys, "run-now", "t1", f"--for={when}", "--db", db.path)
    assert complaint in err
    assert "--for" in err
    with SQLiteStore(db.path, writer=False) as store:
        assert store.manual_runs("t1") == []


# -- retry -------------------------------------------------------------------------------


def test_retry_of_a_finished_run_queues_a_copy(db: Db, cli: CLI) -> None:
    """`retry` of a finished run queues a manual run for its slot and prints the new id."""
    code, out, err = cli("retry", "t1", "2", "--db", db.path)
    assert (code, err) == (0, "")
    assert out == f"queued run 5 of task t1 for slot {local(10)} (a retry of run 2)\n"
    retried = as_json(cli, "retry", "t1", "1", "--db", db.path)
    assert (retried["id"], retried["retry_of"], retried["scheduled_for"]) == (6, 1, T0)
    with SQLiteStore(db.path, writer=False) as store:
        queued = store.manual_runs("t1")
    assert [(run.id, run.scheduled_for) for run in queued] == [(5, T0 + 10), (6, T0)]


@pytest.mark.parametrize("run_name", ["waiting", "busy"])
def test_retry_of_an_unfinished_run(db: Db, cli: CLI, run_name: str) -> None:
    """`retry` of a run not finished exits 1 with RunNotFinished's message and queues nothing."""
    task_id = "t1" if run_name == "waiting" else LONG_ID
    run_id = db.ids[run_name]
    code, out, err = cli("retry", task_id, str(run_id), "--db", db.path)
    assert (code, out) == (1, "")
    assert err == (
        f"tickactors: run not finished: run {run_id} of task {task_id!r} is still in flight; "
        "only a finished run (success, failed or canceled) can be retried\n"
    )
    with SQLiteStore(db.path, writer=False) as store:
        assert store.manual_runs(task_id) == []


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "nope"],
        ["logs", "nope", "1"],
        ["run-now", "nope"],
        ["retry", "nope", "1"],
    ],
    ids=lambda argv: argv[0],
)
def test_unknown_task(db: Db, cli: CLI, argv: list[str]) -> None:
    """A command on an unknown task exits 1 with one line naming the task, json or not."""
    expected = (1, "", "tickactors: task not found: no task with id 'nope'\n")
    assert cli(*argv, "--db", db.path) == expected
    assert cli(*argv, "--db", db.path, "--json") == expected


@pytest.mark.parametrize(
    "argv",
    [["tasks"], ["runs", "t1"], ["logs", "t1", "1"], ["run-now", "t1"], ["retry", "t1", "1"]],
    ids=lambda argv: argv[0],
)
def test_missing_database(tmp_path: Path, cli: CLI, argv: list[str]) -> None:
    """Every command on a missing database exits 1 naming it, and creates no file."""
    path = tmp_path / "missing.db"
    code, out, err = cli(*argv, "--db", path)
    assert (code, out) == (1, "")
    assert err == (
        f"tickactors: no database at {path}: start the daemon with --db {path} first "
        "(or point --db at the database it writes)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_default_database_is_tickactors_db_in_the_working_directory(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `--db` the commands read ./tickactors.db (and do not create it)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("tasks")
    assert code == 1
    assert "no database at tickactors.db" in err
    assert list(tmp_path.iterdir()) == []
    with SQLiteStore(tmp_path / "tickactors.db") as store:
        store.add_task(make_task("here"))
    assert [task["id"] for task in as_json(cli, "tasks")] == ["here"]


def test_memory_database_is_refused(tmp_path: Path, cli: CLI) -> None:
    """`--db :memory:` (the daemon's memory store) exits 1 saying to use a database file."""
    code, out, err = cli("tasks", "--db", ":memory:")
    assert (code, out) == (1, "")
    assert err.startswith("tickactors: --db :memory: keeps no history outside the daemon's")


def test_empty_file_is_not_turned_into_a_database(tmp_path: Path, cli: CLI) -> None:
    """An empty file exits 1 and stays empty (the commands never write a schema)."""
    path = tmp_path / "empty.db"
    path.touch()
    code, out, err = cli("tasks", "--db", path)
    assert (code, out) == (1, "")
    assert err.startswith(f"tickactors: {path} is empty, not a tickactors database yet")
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_not_a_database(tmp_path: Path, cli: CLI) -> None:
    """A file that is no SQLite database exits 1 with the store's error."""
    path = tmp_path / "notes.db"
    path.write_text("not sqlite at all, but long enough to be read as a header\n" * 10)
    code, out, err = cli("runs", "t1", "--db", path)
    assert (code, out) == (1, "")
    assert err.startswith(f"tickactors: store error: open on {path} failed: ")
    assert err.count("\n") == 1


def test_database_from_a_newer_tickactors(db: Db, cli: CLI) -> None:
    """A database of a newer schema version exits 1 with StoreTooNew's message."""
    connection = sqlite3.connect(db.path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    code, out, err = cli("tasks", "--db", db.path)
    assert (code, out) == (1, "")
    assert err.startswith(
        f"tickactors: store too new: {db.path} has schema version {SCHEMA_VERSION + 1}"
    )


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["runs", "t1", "--status", "done"], "argument --status: invalid choice: 'done'"),
        (["runs", "t1", "--limit", "0"], "argument --limit: '0': expected a whole number > 0"),
        (["runs", "t1", "--limit", "-3"], "argument --limit: '-3': expected a whole number > 0"),
        (["runs", "t1", "--limit", "ten"], "argument --limit: 'ten' is not a whole number"),
        (["logs", "t1", "first"], "argument RUN: 'first' is not a run id"),
        (["retry", "t1"], "the following arguments are required: RUN"),
    ],
)
def test_bad_arguments_exit_2(
    db: Db, capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    """Bad options exit 2 (argparse) with a message saying what is wrong."""
    assert complaint in usage_error(capsys, *argv, "--db", db.path)


def test_status_choices_are_the_run_statuses(db: Db, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad `--status` lists every RunStatus value as the choices."""
    err = usage_error(capsys, "runs", "t1", "--status", "ok", "--db", db.path)
    assert "(choose from 'scheduled', 'started', 'success', 'failed', 'canceled')" in err


# -- with the daemon's writer holding the database ---------------------------------------


def test_commands_work_while_a_writer_holds_the_database(tmp_path: Path, cli: CLI) -> None:
    """Readers list, and queue runs the writer then takes, while the writer is open."""
    path = tmp_path / "live.db"
    clock = FakeClock(T0)
    with SQLiteStore(path, clock=clock) as writer:
        populate(writer, clock)
        tasks = as_json(cli, "tasks", "--db", path)
        assert [task["last_run"]["id"] for task in tasks[:2]] == [4, 2]
        code, out, _ = cli("runs", "t1", "--db", path)
        assert (code, len(out.splitlines())) == (0, 6)
        assert cli("run-now", "t1", "--for", str(T0 + 500), "--db", path)[0] == 0
        assert cli("retry", "t1", "1", "--db", path)[0] == 0
        assert [(run.id, run.scheduled_for) for run in writer.manual_runs("t1")] == [
            (5, T0 + 500),
            (6, T0),
        ]
        created = writer.create_next_run("t1", T0 + 30).created
        assert (created.run_id, created.scheduled_for, created.is_manual) == (5, T0 + 500, True)
        writer.add_run_log("t1", 5, T0 + 31, "written while readers read")
        assert as_json(cli, "logs", "t1", "5", "--db", path)["log"][0]["message"] == (
            "written while readers read"
        )


# -- plumbing ----------------------------------------------------------------------------


def test_times_follow_the_viewers_zone(db: Db, cli: CLI) -> None:
    """Times are shown with the offset of the local zone: +03:00 here, +00:00 in UTC."""
    assert as_json(cli, "logs", "t1", "1", "--db", db.path)["slot"] == "2023-11-15T01:13:20+03:00"
    os.environ["TZ"] = "UTC0"
    time.tzset()
    run = as_json(cli, "logs", "t1", "1", "--db", db.path)
    assert (run["slot"], run["scheduled_for"]) == ("2023-11-14T22:13:20+00:00", T0)


def test_store_is_closed_after_each_command(
    db: Db, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command closes the store it opened, on success and on error, as a reader."""
    opened: list[tuple[bool, list[bool]]] = []

    class Recording(SQLiteStore):
        def __init__(self, path: str, *, writer: bool = True) -> None:
            super().__init__(path, writer=writer)
            self.closes: list[bool] = []
            opened.append((writer, self.closes))

        def close(self) -> None:
            self.closes.append(True)
            super().close()

    monkeypatch.setattr(history, "SQLiteStore", Recording)
    assert cli("tasks", "--db", db.path)[0] == 0
    assert cli("runs", "nope", "--db", db.path)[0] == 1
    assert cli("retry", "t1", "3", "--db", db.path)[0] == 1
    assert cli("run-now", "t1", "--db", db.path)[0] == 0
    assert opened == [(False, [True])] * 4


def test_add_history_commands_to_another_parser(db: Db) -> None:
    """add_history_commands adds the five subcommands; run_history_command runs them."""
    parser = argparse.ArgumentParser(prog="tickactors")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check")
    add_history_commands(commands)
    assert set(commands.choices) == {"check"} | HISTORY_COMMANDS
    assert {"tasks", "runs", "logs", "run-now", "retry"} == HISTORY_COMMANDS
    args = parser.parse_args(["runs", "t1", "--db", str(db.path), "--limit", "1", "--json"])
    assert (args.command, args.task_id, args.limit, args.status, args.json) == (
        "runs",
        "t1",
        1,
        None,
        True,
    )
    out = io.StringIO()
    assert run_history_command(args, stdout=out) == 0
    assert [run["id"] for run in json.loads(out.getvalue())] == [3]
    defaults = parser.parse_args(["tasks"])
    assert (defaults.db, defaults.json) == ("tickactors.db", False)


def test_json_is_one_document(db: Db, cli: CLI) -> None:
    """Each `--json` output is exactly one JSON document (a list or an object)."""
    for argv, kind in (
        (["tasks"], list),
        (["runs", "t1"], list),
        (["logs", "t1", "1"], dict),
        (["run-now", "t2"], dict),
        (["retry", "t1", "1"], dict),
    ):
        code, out, _ = cli(*argv, "--db", db.path, "--json")
        assert code == 0
        document, end = json.JSONDecoder().raw_decode(out)
        assert isinstance(document, kind)
        assert out[end:] == "\n"
