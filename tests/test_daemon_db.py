"""The daemon on its database: restarts continue, catch-up modes, one writer, run-now."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors.daemon import sync_tasks
from actors.taskfile import parse_task_file
from protocols import RunStatus, SQLiteStore, TaskStatus
from protocols.testing.store_contract import FakeClock

DEADLINE = 30.0


def _file(*tasks: str) -> str:
    return "".join(f'[[task]]\nexecutor = "shell"\nscript = "true"\n{task}\n' for task in tasks)


# -- sync_tasks: the task file onto the database (deterministic, no daemon) -------------


@pytest.fixture
def db(tmp_path: Path) -> SQLiteStore:
    """A new database at 1000 s."""
    return SQLiteStore(tmp_path / "t.db", clock=FakeClock(1_000.0))


def test_a_new_task_starts_now_or_at_start_at(db: SQLiteStore) -> None:
    """A task new to the database starts now (no slot before), or at start_at."""
    sync_tasks(
        db,
        parse_task_file(_file('id = "a"\nevery = 10', 'id = "b"\nevery = 10\nstart_at = 900')),
        1_000,
    )
    assert db.latest_completed("a") == 1_000
    assert db.latest_completed("b") == 900
    assert db.next_due_run("b") == 910


@pytest.mark.parametrize(
    ("catch_up", "next_slot"),
    [('"all"', 510), ('"latest"', 1_000), ('"none"', 1_010), ("true", 510), ("false", 1_010)],
)
def test_catch_up_decides_the_slots_missed_while_down(
    db: SQLiteStore, catch_up: str, next_slot: int
) -> None:
    """After downtime: "all" runs every missed slot, "latest" the most recent, "none" none."""
    sync_tasks(db, parse_task_file(_file('id = "a"\nevery = 10')), 500)
    sync_tasks(db, parse_task_file(_file(f'id = "a"\nevery = 10\ncatch_up = {catch_up}')), 1_000)
    assert db.next_due_run("a") == next_slot


def test_the_file_defines_tasks_and_a_dropped_task_is_deactivated_with_its_history(
    db: SQLiteStore,
) -> None:
    """Changed tasks take the file's definition; a task the file dropped is deactivated
    (its runs kept); a task other code added is left alone."""
    sync_tasks(db, parse_task_file(_file('id = "a"\nevery = 10', 'id = "b"\nevery = 10')), 500)
    run = db.create_next_run("b", 510).created
    db.add_task(parse_task_file(_file('id = "mine"\nevery = 5')).tasks[0], latest_completed=0)
    sync_tasks(db, parse_task_file(_file('id = "a"\nevery = 20\nactive = false')), 600)
    assert db.get_task("a").options.every == 20
    assert db.get_task("a").status is TaskStatus.INACTIVE
    assert db.get_task("b").status is TaskStatus.INACTIVE
    assert [r.id for r in db.find_runs("b")] == [run.run_id]
    assert db.get_task("mine").status is TaskStatus.ACTIVE
    sync_tasks(db, parse_task_file(_file('id = "b"\nevery = 10')), 700)
    assert db.get_task("b").status is TaskStatus.ACTIVE  # back in the file: active again


# -- the real daemon -------------------------------------------------------------------


class _Daemon:
    def __init__(self, directory: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actors", "run", "tasks.toml", "--no-metrics", *args],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, object]] = []

    def wait_for(self, event: str) -> dict[str, object]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + DEADLINE
        for line in self.proc.stdout:
            record = json.loads(line)
            self.lines.append(record)
            if record.get("event") == event:
                return record
            assert time.monotonic() < deadline, f"no {event} within {DEADLINE} s"
        raise AssertionError(f"the daemon exited without {event}: {self.lines}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.communicate(timeout=DEADLINE)
        return self.proc.returncode


def _tasks(directory: Path, text: str) -> None:
    (directory / "tasks.toml").write_text(text)
    os.chmod(directory / "tasks.toml", 0o644)


def test_a_restarted_daemon_continues_from_its_database(tmp_path: Path) -> None:
    """Stopped and started again, the daemon keeps every run and catches up the slots
    missed meanwhile: one run per slot, consecutive, none twice."""
    _tasks(tmp_path, _file('id = "tick"\nevery = 1'))
    for _ in range(2):
        daemon = _Daemon(tmp_path, "--duration", "2.5", "--grace", "1")
        daemon.proc.communicate(timeout=DEADLINE)
        assert daemon.proc.returncode == 0
        time.sleep(1.2)  # downtime: at least one slot is missed
    with SQLiteStore(tmp_path / "tickactors.db", writer=False) as db:
        runs = db.find_runs("tick")
        slots = sorted(run.scheduled_for for run in runs)
        assert len(slots) >= 4
        assert slots == list(range(slots[0], slots[-1] + 1))
        assert {run.status for run in runs} <= {RunStatus.SUCCESS, RunStatus.CANCELED}


def test_a_second_daemon_on_the_same_database_is_refused(tmp_path: Path) -> None:
    """One writer per database: the second daemon exits 1 naming the file and the holder."""
    _tasks(tmp_path, _file('id = "a"\nevery = 3600'))
    first = _Daemon(tmp_path)
    try:
        first.wait_for("daemon_started")
        second = _Daemon(tmp_path)
        assert second.proc.wait(DEADLINE) == 1
        refused = second.wait_for("store_open_failed")
        assert "already open for writing" in str(refused["error"])
        assert f"pid {first.proc.pid}" in str(refused["error"])
    finally:
        assert first.stop() == 0


def test_run_now_from_the_command_line_reaches_the_running_daemon(tmp_path: Path) -> None:
    """``tickactors run-now`` queues a run in the database; the running daemon executes it
    (the bound asserted is 3x the documented poll of 0.5 s plus a tick; measured and printed)."""
    _tasks(tmp_path, _file('id = "a"\nevery = 3600'))
    daemon = _Daemon(tmp_path)
    try:
        daemon.wait_for("daemon_started")
        queued_at = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "actors", "run-now", "a", "--for", "100", "--json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=True,
        )
        run_id = json.loads(done.stdout)["id"]
        finished = daemon.wait_for("run_finished")
        took = time.monotonic() - queued_at
        print(f"run-now reached the daemon and finished in {took:.2f} s")
        assert finished["run_id"] == run_id
        assert took < 3 * (0.5 + 1.0)
    finally:
        assert daemon.stop() == 0


def test_a_failed_shell_run_keeps_its_output_in_its_log(tmp_path: Path) -> None:
    """A failing command's stderr and stdout tails are in its run's log in the database
    (the last 64 KiB of each), so a failed run says why."""
    script = "echo before; yes x | head -c 70000; echo broke >&2; exit 3"
    _tasks(tmp_path, f'[[task]]\nid = "a"\nexecutor = "shell"\nscript = "{script}"\nevery = 3600\n')
    daemon = _Daemon(tmp_path)
    try:
        daemon.wait_for("daemon_started")
        subprocess.run(
            [sys.executable, "-m", "actors", "run-now", "a"],
            cwd=tmp_path,
            capture_output=True,
            timeout=DEADLINE,
            check=True,
        )
        daemon.wait_for("run_failed")
    finally:
        assert daemon.stop() == 0
    with SQLiteStore(tmp_path / "tickactors.db", writer=False) as db:
        (run,) = db.find_runs("a")
        (line,) = [entry.message for entry in run.log if entry.message.startswith("Run failed")]
    assert "exited with code 3; stderr (tail): broke; stdout (tail): " in line
    assert line.endswith("x")
    tail = line.split("stdout (tail): ", 1)[1]
    assert 60_000 < len(tail) <= 64 * 1024
