"""The daemon's stop, with real processes and wall time: bounded, and leaving no process.

Every wait here has a deadline and waits on something (a file a job writes, a log
line, the daemon's exit), never a fixed sleep. The bounds the daemon documents
(``actors.daemon``: exit within grace + kill grace + STOP_MARGIN of the first signal,
at once on a second one) are asserted with 3x slack, and the measured figures are
printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from actors.daemon import STOP_MARGIN
from protocols.executors.subprocess import REAP_TIMEOUT

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="POSIX signals, /bin/sh and /proc"
)

DEADLINE = 30.0  # seconds: the bound on every wait for something that should happen
SLACK = 3.0  # the factor on every bound the daemon promises
GRACE = 0.5
KILL_GRACE = 0.5
REPO = Path(__file__).resolve().parent.parent

STUCK_JOB = '''
import os
import threading


def stuck(run):
    """Never returns (nothing tells it the run was cancelled)."""
    with open(os.environ["STUCK_MARKER"], "a") as marker:
        marker.write(f"{run.run_id}\\n")
    threading.Event().wait()
'''

PYTHON_STUCK = """
[[task]]
id = "stuck"
executor = "python"
script = "stuckjobs:stuck"
every = 1
"""

# Records its process group (the shell is the group leader: $$ is the pgid).
SHELL_STUBBORN = """
[[task]]
id = "stubborn"
executor = "shell"
script = "echo $$ >> {pgids}; trap '' TERM; sleep 30"
every = 1
"""

# Succeeds at once, leaving a background child that ignores SIGTERM in its group.
SHELL_LEAVER = """
[[task]]
id = "leaver"
executor = "shell"
script = "trap '' TERM; sleep 30 </dev/null >/dev/null 2>&1 & echo $$ >> {pgids}"
every = 1
"""


class Daemon:
    """``python -m actors run`` in a subprocess, its JSON log lines read by a thread."""

    def __init__(self, tmp_path: Path, tasks: str, *args: str) -> None:
        task_file = tmp_path / "tasks.toml"
        task_file.write_text(tasks)
        os.chmod(task_file, 0o600)
        (tmp_path / "stuckjobs.py").write_text(STUCK_JOB)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
        env["STUCK_MARKER"] = str(tmp_path / "stuck")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actors", "run", str(task_file), "--no-metrics", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        assert self.proc.stdout is not None
        threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True).start()

    def next_event(self, event: str) -> dict[str, Any]:
        """The next JSON log line whose event is ``event``."""
        deadline = time.monotonic() + DEADLINE
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            record: dict[str, Any] = json.loads(line)
            if record.get("event") == event:
                return record
        raise AssertionError(f"no {event!r} log line; got: {''.join(self.seen)}")

    def events(self) -> list[dict[str, Any]]:
        """Every log line, once the daemon has exited."""
        while (line := self.lines.get(timeout=DEADLINE)) is not None:
            self.seen.append(line)
        return [json.loads(line) for line in self.seen]

    def exit_after_signal(self, sig: signal.Signals, bound: float) -> tuple[int, float]:
        """Send ``sig``; the exit code and the seconds until exit (fails past ``bound``)."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the daemon was still alive {bound:.1f} s after {sig.name}"
            ) from None
        return code, time.monotonic() - sent

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons() -> Iterator[Callable[..., Daemon]]:
    """Starts daemons; kills what is left of them (and of their commands) afterwards."""
    started: list[Daemon] = []
    pgid_files: list[Path] = []

    def start(tmp_path: Path, tasks: str, *args: str) -> Daemon:
        daemon = Daemon(tmp_path, tasks, *args)
        started.append(daemon)
        pgid_files.append(tmp_path / "pgids")
        return daemon

    yield start
    for daemon in started:
        daemon.close()
    for path in pgid_files:  # so that a failing test leaves no process behind
        for pgid in _pgids(path):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _pgids(path: Path) -> list[int]:
    try:
        return [int(word) for word in path.read_text().split()]
    except FileNotFoundError:
        return []


def _wait_for(what: str, condition: Callable[[], bool], daemon: Daemon) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert daemon.proc.poll() is None, f"the daemon exited before {what}"
        assert time.monotonic() < deadline, f"{what} did not happen in {DEADLINE} s"
        threading.Event().wait(0.02)


def _members(pgid: int) -> dict[int, str]:
    """The processes of group ``pgid`` and their states (``Z``: zombie), from /proc."""
    members: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            data = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 1 :].split()
        if int(fields[2]) == pgid:
            members[int(name)] = fields[0].decode()
    return members


def _assert_groups_dead(pgids: list[int]) -> None:
    """No process of ``pgids`` is alive now; then wait (bounded) for them to be reaped.

    A killed process is a zombie until its parent reaps it; orphans wait for init,
    which takes up to ~2 s on some machines. The daemon promises that every process is
    dead when it exits; ``killpg(pgid, 0)`` raising ProcessLookupError once init has
    reaped them is measured and printed.
    """
    assert pgids, "no process group was recorded"
    live = {
        pgid: m for pgid in pgids if (m := {p: s for p, s in _members(pgid).items() if s != "Z"})
    }
    assert not live, f"processes alive after the daemon exited: {live}"
    started = time.monotonic()
    deadline = started + DEADLINE
    remaining = set(pgids)
    while remaining and time.monotonic() < deadline:
        for pgid in list(remaining):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                remaining.discard(pgid)
        if remaining:
            threading.Event().wait(0.02)
    zombies = {pgid: _members(pgid) for pgid in remaining}
    assert all(set(m.values()) <= {"Z"} for m in zombies.values()), zombies
    print(
        f"{len(pgids)} process groups: none alive at the daemon's exit; "
        f"killpg(pgid, 0) raised ProcessLookupError for {len(pgids) - len(remaining)} "
        f"of them within {time.monotonic() - started:.2f} s (init reaping the orphans)"
    )


def test_sigterm_stops_the_daemon_in_bounded_time_while_a_python_job_is_stuck(
    tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    """A python run that never returns: exit 1 within grace + kill grace + margin."""
    daemon = daemons(tmp_path, PYTHON_STUCK, "--grace", str(GRACE), "--kill-grace", str(KILL_GRACE))
    daemon.next_event("daemon_started")
    _wait_for("the stuck job's start", (tmp_path / "stuck").exists, daemon)

    promised = GRACE + KILL_GRACE + STOP_MARGIN
    code, took = daemon.exit_after_signal(signal.SIGTERM, SLACK * promised)
    print(
        f"exit {code} {took:.2f} s after SIGTERM with --grace {GRACE} --kill-grace "
        f"{KILL_GRACE} (promised {promised:.1f} s, asserted {SLACK * promised:.1f} s)"
    )
    assert code == 1  # not a clean stop: a run function was abandoned
    assert took >= 0.9 * (GRACE + KILL_GRACE)  # the function had its grace and kill grace
    events = daemon.events()
    abandoned = [e for e in events if e["event"] == "runs_abandoned"]
    assert [run["task_id"] for run in abandoned[0]["runs"]] == ["stuck"]
    assert events[-1]["event"] == "daemon_stopped"
    assert events[-1]["exit_code"] == 1
    assert "Traceback" not in daemon.stderr()


def test_a_second_signal_exits_at_once_killing_every_process_group(
    tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    """Long graces, a stuck python job and a stubborn command: SIGINT during the stop
    exits 130 at once, and the command's process group is dead."""
    pgids = tmp_path / "pgids"
    daemon = daemons(
        tmp_path,
        PYTHON_STUCK + SHELL_STUBBORN.format(pgids=pgids),
        "--grace",
        "30",
        "--kill-grace",
        "30",
    )
    daemon.next_event("daemon_started")
    _wait_for("the stuck job's start", (tmp_path / "stuck").exists, daemon)
    _wait_for("the stubborn command's start", lambda: bool(_pgids(pgids)), daemon)

    daemon.proc.send_signal(signal.SIGTERM)
    daemon.next_event("daemon_stopping")
    promised = REAP_TIMEOUT + 0.5  # SIGKILL the groups, wait for them to die, exit
    code, took = daemon.exit_after_signal(signal.SIGINT, SLACK * promised)
    print(
        f"exit {code} {took:.2f} s after the second signal (SIGINT) with --grace 30 "
        f"--kill-grace 30 (promised {promised:.1f} s, asserted {SLACK * promised:.1f} s)"
    )
    assert code == 128 + signal.SIGINT
    forced = daemon.next_event("daemon_forced_stop")
    assert forced["signal"] == "SIGINT"
    _assert_groups_dead(_pgids(pgids))
    assert "Traceback" not in daemon.stderr()


def test_sigterm_kills_commands_that_ignore_it_before_the_daemon_exits(
    tmp_path: Path, daemons: Callable[..., Daemon]
) -> None:
    """A command in flight ignoring SIGTERM, and background children left by finished
    commands: SIGKILLed after the kill grace, all dead when the daemon exits 0."""
    pgids = tmp_path / "pgids"
    daemon = daemons(
        tmp_path,
        SHELL_STUBBORN.format(pgids=pgids) + SHELL_LEAVER.format(pgids=pgids),
        "--grace",
        str(GRACE),
        "--kill-grace",
        str(KILL_GRACE),
    )
    daemon.next_event("daemon_started")
    while True:  # a leaver run succeeded: its background child is left in its group
        finished = daemon.next_event("run_finished")
        if finished["task_id"] == "leaver" and finished["status"] == "success":
            break
    _wait_for("both commands' start", lambda: len(_pgids(pgids)) >= 2, daemon)

    promised = GRACE + KILL_GRACE + STOP_MARGIN
    code, took = daemon.exit_after_signal(signal.SIGTERM, SLACK * promised)
    print(
        f"exit {code} {took:.2f} s after SIGTERM with --grace {GRACE} --kill-grace "
        f"{KILL_GRACE} (promised {promised:.1f} s, asserted {SLACK * promised:.1f} s)"
    )
    assert code == 0
    _assert_groups_dead(_pgids(pgids))
    assert took >= 0.9 * (GRACE + KILL_GRACE)  # the commands had both graces
    events = daemon.events()
    assert events[-1]["event"] == "daemon_stopped"
    assert events[-1]["exit_code"] == 0
    assert "Traceback" not in daemon.stderr()
