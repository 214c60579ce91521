"""kill -9, many times: the daemon on its SQLite database loses no slot and doubles none.

The real daemon runs four tasks due every second (shell and Python jobs, concurrency
1 and 3, the slow ones slower than their period) and is killed with SIGKILL at random
moments (seeded, printed), restarted, and killed again; a last run drains the backlog
and stops on SIGTERM. Every job appends a line to a side file when it starts and when
it ends (its run id, slot, and the daemon's pid). Then, from the database and the
side file:

- every due slot of the window has exactly one run record, none twice;
- every run is finished, in a terminal state;
- a run executed more than once was caught in flight by a kill, and its log says it
  was resumed; a run whose completion was recorded is never executed again; a run
  caught in flight three times is abandoned (failed), its log saying so;
- every execution is of a run the database knows, for its slot;
- two executions of one run never overlap (a shell job the killed daemon left running
  is gone before the run executes again).

``TICKACTORS_KILLS`` (default 10) and ``TICKACTORS_KILL_SEED`` set the kills and the
seed; ``python -m tests.test_kill9 --kills 100`` runs a hundred and prints a summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

import attrs

from protocols import RunStatus, SQLiteStore

KILLS = int(os.environ.get("TICKACTORS_KILLS", "10"))
SEED = int(os.environ.get("TICKACTORS_KILL_SEED", str(random.SystemRandom().randrange(10**6))))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

JOBS = """\
import os, time

def _line(run, event):
    with open(os.environ["KILL9_SIDE"], "a") as side:
        side.write(
            f"py {run.task_id} {run.run_id} {run.scheduled_for} {os.getpid()} {event}\\n"
        )

def quick(run):
    _line(run, "start")
    time.sleep(0.2)
    _line(run, "end")

def slow(run):
    _line(run, "start")
    time.sleep(1.5)
    _line(run, "end")
"""

_SHELL = (
    'echo "sh $TICKACTORS_TASK_ID $TICKACTORS_RUN_ID $TICKACTORS_SCHEDULED_FOR $PPID start"'
    ' >> "$KILL9_SIDE"; sleep {0}; '
    'echo "sh $TICKACTORS_TASK_ID $TICKACTORS_RUN_ID $TICKACTORS_SCHEDULED_FOR $PPID end"'
    ' >> "$KILL9_SIDE"'
)

TASKS = f"""\
[[task]]
id = "sh-quick"
executor = "shell"
script = '{_SHELL.format(0.2)}'
every = 1

[[task]]
id = "sh-slow"
executor = "shell"
script = '{_SHELL.format(1.5)}'
every = 1
concurrency = 3

[[task]]
id = "py-quick"
executor = "python"
script = "kill9_jobs:quick"
every = 1

[[task]]
id = "py-slow"
executor = "python"
script = "kill9_jobs:slow"
every = 1
concurrency = 3
"""
TASK_IDS = ("sh-quick", "sh-slow", "py-quick", "py-slow")


@attrs.frozen
class Execution:
    """One execution of a run, as its job wrote it to the side file."""

    kind: str
    task_id: str
    run_id: int
    slot: int
    pid: int
    index: int  # the line of its start
    end: int | None  # the line of its end (None: it never ended)


@attrs.define
class Generation:
    """One daemon process: its pid, and how it ended."""

    pid: int
    killed: bool


class Daemon:
    """The daemon in ``directory`` on ``db``, its JSON log lines read by a thread."""

    def __init__(self, directory: Path) -> None:
        env = {
            **os.environ,
            "KILL9_SIDE": str(directory / "side"),
            "PYTHONPATH": os.pathsep.join([str(directory), os.environ.get("PYTHONPATH", "")]),
        }
        self.log: IO[str] = open(directory / "daemon.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "actors",
                "run",
                "tasks.toml",
                "--db",
                "kill9.db",
                "--no-metrics",
                "--grace",
                "3",
                "--kill-grace",
                "0.5",
                "--tick-interval",
                "0.05",
            ],
            cwd=directory,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout

    def wait_started(self) -> None:
        """Until the daemon logs ``daemon_started`` (bounded)."""
        deadline = time.monotonic() + START_TIMEOUT
        for line in self.stdout:
            self.log.write(line)
            if json.loads(line).get("event") == "daemon_started":
                return
            assert time.monotonic() < deadline, "the daemon did not start in time"
        raise AssertionError(f"the daemon exited before starting: {self.proc.wait()}")

    def finish(self) -> int:
        """The rest of its output, once it has exited; its exit code."""
        rest, _ = self.proc.communicate(timeout=STOP_TIMEOUT)
        self.log.write(rest)
        self.log.close()
        return self.proc.returncode


def _executions(side: Path) -> list[Execution]:
    starts: dict[tuple[str, int, int], int] = {}
    executions: list[Execution] = []
    for index, line in enumerate(side.read_text().splitlines()):
        kind, task_id, run_id, slot, pid, event = line.split()
        key = (task_id, int(run_id), int(pid))
        if event == "start":
            assert key not in starts, f"run {run_id} started twice by one daemon: {line}"
            starts[key] = len(executions)
            executions.append(
                Execution(kind, task_id, int(run_id), int(slot), int(pid), index, None)
            )
        else:
            position = starts.pop(key)
            executions[position] = attrs.evolve(executions[position], end=index)
    return executions


def run_kills(directory: Path, kills: int, seed: int) -> dict[str, Any]:
    """Kill the daemon ``kills`` times, drain, and check every invariant; a summary."""
    rng = random.Random(seed)
    print(f"kill -9 test: {kills} kills, seed {seed}, in {directory}", flush=True)
    (directory / "kill9_jobs.py").write_text(JOBS)
    (directory / "tasks.toml").write_text(TASKS)
    os.chmod(directory / "tasks.toml", 0o644)
    (directory / "side").touch()
    generations: list[Generation] = []
    for _ in range(kills):
        daemon = Daemon(directory)
        daemon.wait_started()
        time.sleep(rng.uniform(0.2, 2.5))  # a random moment, seeded
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.finish()
        generations.append(Generation(daemon.proc.pid, killed=True))
    launched = time.time()
    daemon = Daemon(directory)
    daemon.wait_started()
    with SQLiteStore(directory / "kill9.db", writer=False) as reader:
        deadline = time.monotonic() + 60
        while True:  # until the backlog is drained: nothing due is left unstarted
            now = int(time.time())
            behind = [t for t in TASK_IDS if reader.next_due_run(t) < now - 1]
            # ... and every run the killed daemons left in progress has started again
            # here (stop(grace) never starts a run still waiting to be resumed).
            left = [
                run.id
                for t in TASK_IDS
                for run in reader.currently_running(t)
                if run.started_at is None or run.started_at < launched
            ]
            if not behind and not left:  # every slot up to now - 2 has its run
                break
            assert time.monotonic() < deadline, f"{behind} never caught up, {left} not resumed"
            time.sleep(0.2)
    end = now - 2  # the window: every slot up to here must have its run
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.finish() == 0, "the last daemon did not stop cleanly"
    generations.append(Generation(daemon.proc.pid, killed=False))
    return _check(directory, generations, end)


def _check(directory: Path, generations: list[Generation], end: int) -> dict[str, Any]:
    executions = _executions(directory / "side")
    killed = {g.pid for g in generations if g.killed}
    order = {g.pid: index for index, g in enumerate(generations)}
    runs: dict[int, Any] = {}
    with SQLiteStore(directory / "kill9.db", writer=False) as reader:
        for task_id in TASK_IDS:
            found = reader.find_runs(task_id)
            scheduled = sorted(run.scheduled_for for run in found if not run.requested_at)
            # every due slot of the window exactly once: consecutive, none twice
            assert scheduled == list(range(scheduled[0], scheduled[-1] + 1)), task_id
            assert scheduled[-1] >= end, (task_id, scheduled[-1], end)
            assert reader.currently_running(task_id) == [], f"{task_id}: runs left in progress"
            for run in found:
                assert run.status in (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELED), run
                runs[run.id] = reader.find_run(task_id, run.id)
    by_run: dict[int, list[Execution]] = defaultdict(list)
    for execution in executions:
        run = runs.get(execution.run_id)
        assert run is not None, f"an execution the database does not know: {execution}"
        assert (run.task_id, run.scheduled_for) == (execution.task_id, execution.slot)
        by_run[execution.run_id].append(execution)
    again = 0
    for run_id, runs_executions in by_run.items():
        for first, second in itertools.pairwise(runs_executions):
            # the earlier execution was caught in flight by a kill of its daemon...
            assert first.pid in killed, f"run {run_id} executed again after {first}"
            assert order[first.pid] < order[second.pid], (first, second)
            # ...and was over before the next began (no line of it after that start)
            assert first.end is None or first.end < second.index, (first, second)
        if len(runs_executions) > 1:
            again += 1
            log = [line.message for line in runs[run_id].log]
            assert any(line.startswith("Resumed after restart") for line in log), log
    # The jobs never fail: a failed run is one caught in flight max_executions times
    # (3), abandoned on the next claim as STORE.md says, its log saying so.
    abandoned = [run for run in runs.values() if run.status is RunStatus.FAILED]
    for run in abandoned:
        assert run.log[-1].message.startswith("Abandoned after 3 executions"), run.log
        assert run.executions == 3, run
        assert all(e.pid in killed for e in by_run[run.id]), by_run[run.id]
    summary = {
        "daemons": len(generations),
        "kills": len(killed),
        "runs": len(runs),
        "executions": len(executions),
        "runs_executed_again": again,
        "runs_abandoned": len(abandoned),
        "statuses": {
            status.value: sum(run.status is status for run in runs.values()) for status in RunStatus
        },
    }
    print(f"kill -9 test: {json.dumps(summary)}", flush=True)
    return summary


def test_kill_9_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILLed at random moments and restarted, the daemon keeps one run per due slot,
    finishes every run, and never executes a run twice at once or after its completion."""
    summary = run_kills(tmp_path, KILLS, SEED)
    assert summary["kills"] == KILLS
    assert summary["runs"] > 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="kill -9 the daemon many times, then check")
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=SEED)
    arguments = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tickactors-kill9-") as scratch:
        run_kills(Path(scratch), arguments.kills, arguments.seed)
