"""ThreadExecutor and SubprocessExecutor: the executor contract and their own behaviour."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from protocols.contracts import Executor
from protocols.errors import InvalidScript, RunCanceled, SchedulerError
from protocols.executors import SubprocessExecutor, ThreadExecutor
from protocols.executors.subprocess import CommandFailed
from protocols.model import QueuedRun
from protocols.testing.executor_contract import ExecutorContract

TIMEOUT = 10.0
_ids = iter(range(1, 1_000_000))


def make_run(script: str, task_id: str = "t1", scheduled_for: int = 120) -> QueuedRun:
    """A run of ``script`` with a fresh id."""
    return QueuedRun(
        task_id=task_id,
        run_id=next(_ids),
        scheduled_for=scheduled_for,
        due_at=scheduled_for,
        script=script,
    )


def poll(predicate: Any, timeout: float = TIMEOUT) -> bool:
    """Bounded polling for outside-world state (processes): True once predicate() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def process_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# Functions referenced as 'module:function' scripts.


def returns_statistics(run: QueuedRun) -> Mapping[str, Any]:
    """Statistics naming the run."""
    return {"task": run.task_id, "run": run.run_id}


def returns_nothing(run: QueuedRun) -> None:
    """No statistics."""


def raises_value_error(run: QueuedRun) -> None:
    """Fails."""
    raise ValueError(f"bad run {run.run_id}")


def returns_a_string(run: QueuedRun) -> Any:
    """Returns something that is not a mapping."""
    return "done"


class Namespace:
    """Holds a function reachable as 'module:Namespace.method'."""

    @staticmethod
    def method(run: QueuedRun) -> Mapping[str, Any]:
        """Statistics from a nested attribute."""
        return {"nested": True}


NOT_CALLABLE = 42


# -- ThreadExecutor -----------------------------------------------------------------------


class TestThreadExecutorContract(ExecutorContract):
    """ThreadExecutor with registered functions and a module:function reference."""

    def make_executor(self) -> Executor:
        """A ThreadExecutor whose 'hang' blocks until teardown."""
        self.release = threading.Event()

        def hang(run: QueuedRun) -> None:
            self.release.wait(60)

        return ThreadExecutor(4, functions={"fail": raises_value_error, "hang": hang})

    def close_executor(self, executor: Executor) -> None:
        """Release hanging functions and shut the pool down."""
        self.release.set()
        assert isinstance(executor, ThreadExecutor)
        executor.shutdown(cancel=True)

    def succeed_script(self) -> str:
        """A module:function reference."""
        return f"{__name__}:returns_statistics"

    def fail_script(self) -> str:
        """A registered function that raises."""
        return "fail"

    def hang_script(self) -> str:
        """A registered function that blocks until teardown."""
        return "hang"


@pytest.fixture
def threads() -> Iterator[ThreadExecutor]:
    """A ThreadExecutor with two workers."""
    executor = ThreadExecutor(2)
    yield executor
    executor.shutdown(cancel=True)


def test_thread_function_gets_the_run_and_returns_statistics(threads: ThreadExecutor) -> None:
    """The function receives the QueuedRun; its mapping becomes the statistics."""
    run = make_run(f"{__name__}:returns_statistics", task_id="abc")
    result = threads.execute(run).wait(TIMEOUT)
    assert result.error is None
    assert dict(result.statistics) == {"task": "abc", "run": run.run_id}


def test_thread_function_returning_none_has_no_statistics(threads: ThreadExecutor) -> None:
    """A function returning None succeeds with empty statistics."""
    result = threads.execute(make_run(f"{__name__}:returns_nothing")).wait(TIMEOUT)
    assert result.error is None
    assert dict(result.statistics) == {}


def test_thread_nested_attribute_reference(threads: ThreadExecutor) -> None:
    """'module:Class.method' references resolve."""
    result = threads.execute(make_run(f"{__name__}:Namespace.method")).wait(TIMEOUT)
    assert dict(result.statistics) == {"nested": True}


def test_thread_exception_becomes_result_error(threads: ThreadExecutor) -> None:
    """An exception raised by the function is the result's error."""
    run = make_run(f"{__name__}:raises_value_error")
    result = threads.execute(run).wait(TIMEOUT)
    assert isinstance(result.error, ValueError)
    assert str(result.error) == f"bad run {run.run_id}"


def test_thread_non_mapping_return_fails_the_run(threads: ThreadExecutor) -> None:
    """A function returning neither a mapping nor None fails with TypeError."""
    result = threads.execute(make_run(f"{__name__}:returns_a_string")).wait(TIMEOUT)
    assert isinstance(result.error, TypeError)
    assert "returned str" in str(result.error)


def test_thread_registered_functions(threads: ThreadExecutor) -> None:
    """Names registered in the constructor or with register() run their function."""
    executor = ThreadExecutor(1, functions={"one": lambda run: {"which": 1}})
    try:
        executor.register("two", lambda run: {"which": 2})
        assert executor.execute(make_run("one")).wait(TIMEOUT).statistics == {"which": 1}
        assert executor.execute(make_run("two")).wait(TIMEOUT).statistics == {"which": 2}
        executor.register("one", lambda run: {"which": 3})
        assert executor.execute(make_run("one")).wait(TIMEOUT).statistics == {"which": 3}
    finally:
        executor.shutdown()


def test_thread_resolution_is_cached(threads: ThreadExecutor) -> None:
    """A script resolves to the same function every time."""
    script = f"{__name__}:returns_nothing"
    assert threads.resolve(script) is threads.resolve(script) is returns_nothing


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("", "not a registered name"),
        ("unregistered", "not a registered name"),
        ("no_such_module_xyz:run", "cannot import module"),
        ("os:no_such_function", "has no attribute"),
        (f"{__name__}:NOT_CALLABLE", "is not callable"),
        (":run", "not a registered name"),
        ("os:", "not a registered name"),
    ],
)
def test_thread_unresolvable_script_raises_invalid_script(
    threads: ThreadExecutor, script: str, reason: str
) -> None:
    """execute raises InvalidScript naming the script, the reason and the expected form."""
    with pytest.raises(InvalidScript) as caught:
        threads.execute(make_run(script))
    message = str(caught.value)
    assert repr(script) in message
    assert reason in message
    assert "'module:function'" in message
    assert isinstance(caught.value, ValueError)


def test_thread_cancel_before_start_never_runs() -> None:
    """A run cancelled while queued behind a busy worker never calls its function."""
    release = threading.Event()
    started = threading.Event()
    calls: list[int] = []

    def blocker(run: QueuedRun) -> None:
        started.set()
        release.wait(TIMEOUT)

    def record(run: QueuedRun) -> None:
        calls.append(run.run_id)

    executor = ThreadExecutor(1, functions={"block": blocker, "record": record})
    try:
        busy = executor.execute(make_run("block"))
        assert started.wait(TIMEOUT)
        queued = executor.execute(make_run("record"))
        queued.cancel()
        with pytest.raises(RunCanceled):
            queued.wait(0)
        release.set()
        busy.wait(TIMEOUT)
        later = executor.execute(make_run("record"))
        later.wait(TIMEOUT)
        executor.wait(TIMEOUT)
    finally:
        executor.shutdown()
    assert calls == [later.run.run_id]


def test_thread_cancel_while_running_cancels_at_once() -> None:
    """Cancelling a running function cancels the promise now; the function ends on its own."""
    release = threading.Event()
    started = threading.Event()
    finished = threading.Event()

    def slow(run: QueuedRun) -> Mapping[str, Any]:
        started.set()
        release.wait(TIMEOUT)
        finished.set()
        return {"late": True}

    executor = ThreadExecutor(1, functions={"slow": slow})
    try:
        promise = executor.execute(make_run("slow"))
        assert started.wait(TIMEOUT)
        promise.cancel()
        with pytest.raises(RunCanceled):
            promise.wait(0)
        executor.wait(0)  # the cancelled promise is done though the thread still runs
        assert not finished.is_set()
        release.set()
    finally:
        executor.shutdown(wait=True)
    assert finished.is_set()
    with pytest.raises(RunCanceled):
        promise.wait(0)


def test_thread_shutdown_refuses_new_runs() -> None:
    """execute after shutdown raises SchedulerError."""
    executor = ThreadExecutor(1)
    executor.shutdown()
    with pytest.raises(SchedulerError, match="shut down"):
        executor.execute(make_run(f"{__name__}:returns_nothing"))


def test_thread_wait_timeout() -> None:
    """wait(timeout) raises TimeoutError while a run is in flight."""
    release = threading.Event()

    def block(run: QueuedRun) -> None:
        release.wait(TIMEOUT)

    executor = ThreadExecutor(1, functions={"block": block})
    try:
        promise = executor.execute(make_run("block"))
        with pytest.raises(TimeoutError, match="1 runs still in flight"):
            executor.wait(0.01)
        release.set()
        promise.wait(TIMEOUT)
        executor.wait(TIMEOUT)
    finally:
        executor.shutdown()


def test_thread_shutdown_timeout_names_the_functions_still_running() -> None:
    """shutdown(timeout=...) gives up on a function that does not return: TimeoutError
    naming its run, which busy() lists until it returns."""
    release = threading.Event()
    started = threading.Event()

    def block(run: QueuedRun) -> None:
        started.set()
        release.wait(TIMEOUT)

    executor = ThreadExecutor(1, functions={"block": block})
    try:
        run = make_run("block", task_id="stuck")
        promise = executor.execute(run)
        assert started.wait(TIMEOUT)
        begun = time.monotonic()
        with pytest.raises(
            TimeoutError, match=r"1 run functions still running after 0.2 s: 'stuck'"
        ):
            executor.shutdown(cancel=True, timeout=0.2)
        took = time.monotonic() - begun
        assert 0.2 <= took < 3 * 0.2 + 1.0, took
        with pytest.raises(RunCanceled):
            promise.wait(0)
        assert executor.busy() == [run]
    finally:
        release.set()
    executor.shutdown(wait=True, timeout=TIMEOUT)
    assert executor.busy() == []


def test_thread_invalid_max_workers() -> None:
    """max_workers below 1 is refused."""
    with pytest.raises(ValueError, match="max_workers"):
        ThreadExecutor(0)


# -- SubprocessExecutor -------------------------------------------------------------------


class TestSubprocessExecutorContract(ExecutorContract):
    """SubprocessExecutor running /bin/sh commands."""

    def make_executor(self) -> Executor:
        """A SubprocessExecutor with a short kill grace."""
        return SubprocessExecutor(kill_grace=1.0)

    def close_executor(self, executor: Executor) -> None:
        """Cancel whatever still runs."""
        assert isinstance(executor, SubprocessExecutor)
        executor.shutdown(cancel=True)

    def succeed_script(self) -> str:
        """Exits 0."""
        return "echo ok"

    def fail_script(self) -> str:
        """Exits 3 with a message on stderr."""
        return "echo boom >&2; exit 3"

    def hang_script(self) -> str:
        """Sleeps until killed."""
        return "sleep 60"


@pytest.fixture
def procs() -> Iterator[SubprocessExecutor]:
    """A SubprocessExecutor with a short kill grace."""
    executor = SubprocessExecutor(kill_grace=0.5)
    yield executor
    executor.shutdown(cancel=True)


def test_subprocess_success_statistics(procs: SubprocessExecutor) -> None:
    """Exit 0 succeeds with exit_code, output tails and duration."""
    result = procs.execute(make_run("echo hello; echo note >&2")).wait(TIMEOUT)
    assert result.error is None
    assert result.statistics["exit_code"] == 0
    assert result.statistics["stdout_tail"] == "hello\n"
    assert result.statistics["stderr_tail"] == "note\n"
    assert result.statistics["duration"] >= 0


def test_subprocess_environment_variables(procs: SubprocessExecutor) -> None:
    """The command sees the task id, run id and scheduled time."""
    run = make_run(
        'echo "$TICKACTORS_TASK_ID $TICKACTORS_RUN_ID $TICKACTORS_SCHEDULED_FOR"',
        task_id="task-9",
        scheduled_for=1700000000,
    )
    result = procs.execute(run).wait(TIMEOUT)
    assert result.statistics["stdout_tail"] == f"task-9 {run.run_id} 1700000000\n"


def test_subprocess_env_and_cwd(tmp_path: Path) -> None:
    """env replaces the environment (plus TICKACTORS_*), and cwd is honoured."""
    executor = SubprocessExecutor(env={"GREETING": "hi"}, cwd=str(tmp_path))
    try:
        result = executor.execute(make_run('echo "$GREETING $HOME"; pwd')).wait(TIMEOUT)
    finally:
        executor.shutdown()
    assert result.statistics["stdout_tail"] == f"hi \n{tmp_path}\n"


def test_subprocess_failure_has_exit_code_and_stderr_tail(procs: SubprocessExecutor) -> None:
    """A non-zero exit fails with CommandFailed carrying the code and stderr tail."""
    result = procs.execute(make_run("echo partial; echo 'disk full' >&2; exit 7")).wait(TIMEOUT)
    error = result.error
    assert isinstance(error, CommandFailed)
    assert isinstance(error, SchedulerError)
    assert error.returncode == 7
    assert error.stderr_tail == "disk full\n"
    assert error.stdout_tail == "partial\n"
    assert (
        str(error) == "command exited with code 7; stderr (tail): disk full; stdout (tail): partial"
    )
    assert result.statistics["exit_code"] == 7


def test_command_failed_pickles() -> None:
    """CommandFailed survives pickling with its attributes."""
    error = CommandFailed(-9, "oops", "sleep 1", "out")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.returncode, copy.stderr_tail, copy.command, copy.stdout_tail) == (
        -9,
        "oops",
        "sleep 1",
        "out",
    )
    assert (
        str(copy)
        == str(error)
        == ("command was killed by signal SIGKILL; stderr (tail): oops; stdout (tail): out")
    )


def test_subprocess_output_tail_is_bounded() -> None:
    """Only the last output_limit bytes are kept; big output does not deadlock."""
    executor = SubprocessExecutor(output_limit=100)
    script = "i=0; while [ $i -lt 2000 ]; do echo line$i; echo err$i >&2; i=$((i+1)); done; exit 1"
    try:
        result = executor.execute(make_run(script)).wait(TIMEOUT)
        big = executor.execute(make_run("head -c 3000000 /dev/zero | tr '\\0' a")).wait(TIMEOUT)
    finally:
        executor.shutdown()
    assert isinstance(result.error, CommandFailed)
    assert len(result.error.stderr_tail) <= 100
    assert result.error.stderr_tail.endswith("err1999\n")
    assert result.statistics["stdout_tail"].endswith("line1999\n")
    assert big.error is None
    assert big.statistics["stdout_tail"] == "a" * 100


@pytest.mark.parametrize("script", ["", "   ", "\n\t"])
def test_subprocess_empty_script_is_invalid(procs: SubprocessExecutor, script: str) -> None:
    """An empty script raises InvalidScript from execute."""
    with pytest.raises(InvalidScript, match="empty script"):
        procs.execute(make_run(script))


def test_subprocess_cancel_kills_the_process_group(
    procs: SubprocessExecutor, tmp_path: Path
) -> None:
    """cancel() kills the shell and its background children."""
    pidfile = tmp_path / "pid"
    promise = procs.execute(
        make_run(f"sleep 60 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait")
    )
    assert poll(pidfile.exists)
    child = int(pidfile.read_text())
    assert process_alive(child)
    promise.cancel()
    with pytest.raises(RunCanceled):
        promise.wait(0)
    assert poll(lambda: not process_alive(child))
    procs.wait(TIMEOUT)


def test_subprocess_sigkill_after_grace(procs: SubprocessExecutor, tmp_path: Path) -> None:
    """Processes ignoring SIGTERM are killed with SIGKILL after kill_grace."""
    pidfile = tmp_path / "pid"
    script = f"trap '' TERM; sleep 60 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait"
    promise = procs.execute(make_run(script))
    assert poll(pidfile.exists)
    child = int(pidfile.read_text())
    cancelled_at = time.monotonic()
    promise.cancel()
    with pytest.raises(RunCanceled):
        promise.wait(0)
    assert poll(lambda: not process_alive(child))
    assert time.monotonic() - cancelled_at >= 0.4  # it took the SIGKILL, not the SIGTERM


def _live_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are not zombies, from /proc."""
    live = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 1 :].split()
            if int(fields[2]) == pgid and fields[0] != b"Z":
                live.append(int(name))
    return live


def test_subprocess_shutdown_cancel_returns_once_every_group_is_dead(tmp_path: Path) -> None:
    """shutdown(cancel=True) SIGKILLs what ignores SIGTERM after kill_grace, also the
    background children of finished commands, and returns once all of it is dead."""
    kill_grace = 0.3
    executor = SubprocessExecutor(kill_grace=kill_grace)
    stubborn, leaver = tmp_path / "stubborn", tmp_path / "leaver"
    try:
        running = executor.execute(
            make_run(
                f"echo $$ > {stubborn}.tmp; mv {stubborn}.tmp {stubborn}; trap '' TERM; sleep 60"
            )
        )
        finished = executor.execute(
            make_run(f"trap '' TERM; sleep 60 >/dev/null 2>&1 & echo $$ > {leaver}")
        )
        assert finished.wait(TIMEOUT).error is None  # its background sleep lives on
        assert poll(stubborn.exists)
        pgids = [int(stubborn.read_text()), int(leaver.read_text())]
        assert all(_live_members(pgid) for pgid in pgids)
        begun = time.monotonic()
        executor.shutdown(cancel=True)
        took = time.monotonic() - begun
        live = {pgid: _live_members(pgid) for pgid in pgids}
        print(f"shutdown(cancel=True) took {took:.2f} s with kill_grace {kill_grace}")
        assert live == {pgid: [] for pgid in pgids}
        assert kill_grace * 0.9 <= took <= 3 * (kill_grace + 0.5)  # + REAP_TIMEOUT
        with pytest.raises(RunCanceled):
            running.wait(0)
    finally:
        executor.terminate_all(0)


def test_subprocess_background_child_holding_pipes_does_not_delay_result(
    procs: SubprocessExecutor,
) -> None:
    """The result arrives when the shell exits, even if a background child keeps the pipes."""
    promise = procs.execute(make_run("sleep 60 & echo $!"))
    result = promise.wait(TIMEOUT)
    child = int(result.statistics["stdout_tail"])
    try:
        assert result.error is None
        assert process_alive(child)
    finally:
        os.kill(child, signal.SIGKILL)


def test_subprocess_command_killed_by_signal(procs: SubprocessExecutor) -> None:
    """A command that dies of a signal fails, naming the signal."""
    result = procs.execute(make_run("kill -TERM $$")).wait(TIMEOUT)
    assert isinstance(result.error, CommandFailed)
    assert result.error.returncode == -signal.SIGTERM
    assert "killed by signal SIGTERM" in str(result.error)


def test_subprocess_missing_cwd_raises_from_execute() -> None:
    """A command that cannot start makes execute raise."""
    executor = SubprocessExecutor(cwd="/nonexistent/directory/xyz")
    with pytest.raises(FileNotFoundError):
        executor.execute(make_run("true"))
    executor.wait(0)


def test_subprocess_shutdown_refuses_new_runs() -> None:
    """execute after shutdown raises SchedulerError."""
    executor = SubprocessExecutor()
    executor.shutdown()
    with pytest.raises(SchedulerError, match="shut down"):
        executor.execute(make_run("true"))


def test_subprocess_invalid_settings() -> None:
    """Negative kill_grace or output_limit are refused."""
    with pytest.raises(ValueError, match="kill_grace"):
        SubprocessExecutor(kill_grace=-1)
    with pytest.raises(ValueError, match="output_limit"):
        SubprocessExecutor(output_limit=-1)


# -- the group file: no command outlives a killed daemon's restart ------------------------


def _pgids_in(path: Path) -> set[int]:
    return {int(line.split()[0]) for line in path.read_text().splitlines() if line.strip()}


def test_a_group_left_by_a_dead_executor_is_killed_by_the_next_one(tmp_path: Path) -> None:
    """Groups recorded by an executor that died (no shutdown) are SIGKILLed by the next
    executor on the same group file, background children included."""
    groups = tmp_path / "groups"
    dead = SubprocessExecutor(kill_grace=0.5, group_file=groups)
    promise = dead.execute(make_run("sleep 60 & sleep 60"))
    pgid = next(iter(_pgids_in(groups)))
    assert os.getpgid(pgid) == pgid  # alive, as after a kill -9 of its daemon
    successor = SubprocessExecutor(kill_grace=0.5, group_file=groups)
    try:
        assert successor.recovered == [pgid]
        assert not _live_members(pgid), "the recorded group outlived the recovery"
        assert _pgids_in(groups) == set()
        killed = promise.wait(TIMEOUT)  # the dead executor's run failed: SIGKILLed
        assert isinstance(killed.error, CommandFailed)
        assert killed.error.returncode == -signal.SIGKILL
    finally:
        successor.shutdown(cancel=True)
        dead.shutdown(cancel=True)


def test_a_recorded_group_whose_id_was_reused_is_left_alone(tmp_path: Path) -> None:
    """A live leader whose start time differs from the recorded one is not ours: untouched."""
    groups = tmp_path / "groups"
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        groups.write_text(f"{stranger.pid} 1\n")  # another process's start time
        executor = SubprocessExecutor(group_file=groups)
        assert executor.recovered == []
        assert stranger.poll() is None
        executor.shutdown(cancel=True)
    finally:
        stranger.kill()
        stranger.wait()


def test_the_group_file_forgets_groups_that_ended(tmp_path: Path) -> None:
    """A group is recorded while it may live and dropped once it has no process left."""
    groups = tmp_path / "groups"
    executor = SubprocessExecutor(kill_grace=0.5, group_file=groups)
    try:
        running = executor.execute(make_run("sleep 60"))
        (sleeping,) = _pgids_in(groups)
        executor.execute(make_run("true")).wait(TIMEOUT)
        running.cancel()

        def forgotten() -> bool:
            # Each execute forgets the groups that ended (a group's last process may die
            # just after its leader was reaped, when the watcher looked).
            executor.execute(make_run("true")).wait(TIMEOUT)
            return sleeping not in _pgids_in(groups)

        assert poll(forgotten), groups.read_text()
        assert running.done()
    finally:
        executor.shutdown(cancel=True)


def test_a_resumed_run_tells_its_command_when_it_first_started(
    procs: SubprocessExecutor,
) -> None:
    """TICKACTORS_RESUMED_FROM is set for a run executed again, and only then;
    TICKACTORS_EXECUTION numbers the execution."""
    script = 'echo "${TICKACTORS_RESUMED_FROM:-none} $TICKACTORS_EXECUTION"'
    fresh = procs.execute(make_run(script)).wait(TIMEOUT)
    again = procs.execute(attrs.evolve(make_run(script), resumed_from=12.5, execution=2))
    assert fresh.statistics["stdout_tail"] == "none 1\n"
    assert again.wait(TIMEOUT).statistics["stdout_tail"] == "12.5 2\n"


def test_a_command_whose_executor_died_before_recording_it_never_runs(tmp_path: Path) -> None:
    """The gate: a command started with a group file runs only once its group is
    recorded; if the executor dies first (its end of the gate closes unwritten), the
    command exits 125 without running."""
    from protocols.executors.subprocess import _GATE

    marker = tmp_path / "ran"
    for recorded, code, ran in ((False, 125, False), (True, 0, True)):
        read, write = os.pipe()
        proc = subprocess.Popen(["/bin/sh", "-c", _GATE, "/bin/sh", f"touch {marker}"], stdin=read)
        os.close(read)
        if recorded:
            os.write(write, b"\n")
        os.close(write)
        assert proc.wait(TIMEOUT) == code
        assert marker.exists() is ran
