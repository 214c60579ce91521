"""The daemon (``python -m actors``) end to end, and the RoutingExecutor it runs on."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.daemon import main
from protocols import QueuedRun
from protocols.executors.routing import NoRoute, RoutingExecutor
from protocols.testing.manual import ManualExecutor

DEADLINE = 30.0  # seconds: the bound on every wait below, never a fixed sleep

TASKS = """
[[task]]
id = "quick"
executor = "shell"
script = "echo quick run $TICKACTORS_RUN_ID"
every = 1

[[task]]
id = "long"
executor = "shell"
script = "echo $$ >> {pids}; exec sleep 300"
every = 1
"""


def _daemon(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """The daemon in ``cwd`` (default: a new temporary directory, where its database goes)."""
    return subprocess.Popen(
        [sys.executable, "-m", "actors", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd if cwd is not None else tempfile.mkdtemp(prefix="tickactors-daemon-"),
    )


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _next_event(lines: queue.Queue[str | None], event: str, seen: list[str]) -> dict[str, Any]:
    """The first JSON log line whose event is ``event`` (collecting lines into ``seen``)."""
    deadline = time.monotonic() + DEADLINE
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        record: dict[str, Any] = json.loads(line)
        if record.get("event") == event:
            return record
    raise AssertionError(f"no {event!r} log line; got: {''.join(seen)}")


def _successes(url: str, task_id: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "task_scheduler_runs_complete":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == {
                    "task_id": task_id,
                    "status": "success",
                }:
                    return sample.value
    return 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a reused pid of another user
        return True
    return True


@pytest.fixture
def running_daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """The daemon on an every-1s shell task and a long one, metrics on a free port."""
    pids = tmp_path / "pids"
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(TASKS.format(pids=pids))
    os.chmod(tasks, 0o600)
    proc = _daemon("run", str(tasks), "--metrics-port", "0", "--grace", "0.5", cwd=tmp_path)
    try:
        yield proc, pids
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and shell")
def test_daemon_runs_tasks_serves_metrics_and_stops_on_sigterm(
    running_daemon: tuple[subprocess.Popen[str], Path],
) -> None:
    """The daemon runs an every-1s task, counts it in /metrics, and stops cleanly."""
    proc, pids = running_daemon
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    started = _next_event(lines, "metrics_server_started", seen)
    assert started["addr"] == "127.0.0.1"
    assert started["port"] > 0
    url = started["url"]
    assert url == f"http://127.0.0.1:{started['port']}/metrics"

    deadline = time.monotonic() + DEADLINE
    while _successes(url, "quick") < 1:
        assert time.monotonic() < deadline, "no successful run of 'quick' in /metrics"
        assert proc.poll() is None, "the daemon exited early"
        threading.Event().wait(0.1)
    # The long task's command is running now (it started with the first tick, as quick's did).
    while not pids.exists() or not pids.read_text().split():
        assert time.monotonic() < deadline, "the long task never started"
        threading.Event().wait(0.05)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE) == 0
    stopping = _next_event(lines, "daemon_stopping", seen)
    assert stopping["reason"] == "SIGTERM"
    _next_event(lines, "daemon_stopped", seen)
    while (line := lines.get(timeout=DEADLINE)) is not None:
        seen.append(line)

    records = [json.loads(line) for line in seen]  # every stdout line is a JSON object
    assert all({"timestamp", "level", "event"} <= r.keys() for r in records)
    claimed = [r["task_id"] for r in records if r["event"] == "task_claimed"]
    assert claimed == ["quick", "long"]
    assert not any("quick run" in line for line in seen)  # commands' output stays captured
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()
    # The command in flight at SIGTERM (past --grace) was cancelled: its process is gone.
    for pid in map(int, pids.read_text().split()):
        assert not _alive(pid), f"command process {pid} outlived the daemon"


def test_bad_task_file_exits_2_naming_file_task_and_problem(tmp_path: Path) -> None:
    """A bad task file stops the daemon at start-up: exit 2, the problems on stderr."""
    tasks = tmp_path / "tasks.toml"
    tasks.write_text('[[task]]\nid = "backup"\nexecutor = "shell"\nscript = "true"\nevery = 0\n')
    os.chmod(tasks, 0o644)
    proc = _daemon("run", str(tasks), "--no-metrics")
    stdout, stderr = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 2
    assert stderr.startswith(f'{tasks}: task "backup": every: ')
    assert "tickactors: not started: 1 problem in the task file" in stderr
    assert "Traceback" not in stderr
    assert stdout == ""


def test_refuses_a_task_file_others_can_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group-writable task file is refused before anything runs."""
    tasks = tmp_path / "tasks.toml"
    tasks.write_text('[[task]]\nid = "a"\nexecutor = "shell"\nscript = "true"\nevery = 5\n')
    os.chmod(tasks, 0o664)
    assert main(["run", str(tasks), "--no-metrics"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{tasks}: refusing a task file that other users can write")


def test_check_reports_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``check`` validates without running: exit 0 and a summary."""
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(
        '[[task]]\nid = "a"\nexecutor = "python"\nscript = "actors.examples.jobs:process_stats"\n'
        'every = 5\n[[task]]\nid = "b"\nexecutor = "shell"\nscript = "true"\ncron = "* * * * *"\n'
        "active = false\n"
    )
    os.chmod(tasks, 0o644)
    assert main(["check", str(tasks)]) == 0
    assert capsys.readouterr().out == f"{tasks}: ok: 2 tasks (1 active)\n"


def test_example_task_file_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped example passes ``check`` (permissions included)."""
    example = Path(__file__).parent.parent / "actors" / "examples" / "tasks.toml"
    assert main(["check", str(example)]) == 0
    assert capsys.readouterr().out.endswith("ok: 5 tasks (4 active)\n")


def test_bad_command_line_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse errors exit 2 with usage."""
    with pytest.raises(SystemExit) as info:
        main(["run", "tasks.toml", "--grace", "-1"])
    assert info.value.code == 2
    assert "--grace" in capsys.readouterr().err


# -- RoutingExecutor ----------------------------------------------------------------------


def _run(task_id: str, run_id: int = 1) -> QueuedRun:
    return QueuedRun(task_id=task_id, run_id=run_id, scheduled_for=60, due_at=60, script="x")


def test_routing_executor_dispatches_by_task_and_waits_on_all() -> None:
    """Runs go to the executor their task's route names; wait() waits for every one."""
    shell, python = ManualExecutor(), ManualExecutor()
    routing = RoutingExecutor.by_task(
        {"shell": shell, "python": python}, {"a": "shell", "b": "python"}
    )
    promise_a = routing.execute(_run("a", 1))
    promise_b = routing.execute(_run("b", 2))
    assert [r.run_id for r in shell.executed] == [1]
    assert [r.run_id for r in python.executed] == [2]
    shell.succeed(1)
    python.succeed(2)
    assert promise_a.wait(DEADLINE).error is None
    assert promise_b.wait(DEADLINE).error is None
    routing.wait()
    assert (shell.wait_calls, python.wait_calls) == (1, 1)


def test_routing_executor_refuses_unknown_routes() -> None:
    """A run without a route raises NoRoute; a table naming a missing route is refused."""
    manual = ManualExecutor()
    routing = RoutingExecutor({"shell": manual}, lambda run: run.task_id)
    with pytest.raises(NoRoute, match="no executor for route 'python'"):
        routing.execute(_run("python"))
    with pytest.raises(NoRoute, match="no route for task 'c'"):
        RoutingExecutor.by_task({"shell": manual}, {"a": "shell"}).execute(_run("c"))
    with pytest.raises(ValueError, match="unknown routes: 'python'"):
        RoutingExecutor.by_task({"shell": manual}, {"a": "python"})
    assert manual.executed == []
