"""SubprocessExecutor: runs the run's script as a shell command in its own process group."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

import structlog

from protocols.errors import InvalidScript, SchedulerError
from protocols.executors.promise import Promise, PromiseTracker
from protocols.model import QueuedRun, RunResult

__all__ = ["CommandFailed", "SubprocessExecutor"]

_log = structlog.get_logger(__name__)

_READ_SIZE = 65536
_POLL_INTERVAL = 0.05  # only where pidfd_open is missing (not Linux >= 5.3)
_DATA, _EOF, _EMPTY = 1, 0, -1  # what one read of a pipe got


class CommandFailed(SchedulerError):
    """A shell command exited with a non-zero code (or was killed by a signal).

    ``returncode`` is the exit code (negative: the signal number that killed it);
    ``stderr_tail`` and ``stdout_tail`` are the last bytes of its output, decoded.
    """

    def __init__(
        self,
        returncode: int,
        stderr_tail: str = "",
        command: str = "",
        stdout_tail: str = "",
    ) -> None:
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.command = command
        self.stdout_tail = stdout_tail
        if returncode < 0:
            try:
                how = f"was killed by signal {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with code {returncode}"
        message = f"command {how}"
        if stderr_tail.strip():
            message += f"; stderr (tail): {stderr_tail.strip()}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.returncode, self.stderr_tail, self.command, self.stdout_tail))


class SubprocessExecutor:
    """Runs each run's ``script`` with ``shell -c script`` in a new process group.

    The command gets ``env`` (default: this process's environment; when given it is
    the whole environment, as with :class:`subprocess.Popen`) plus
    ``TICKACTORS_TASK_ID``, ``TICKACTORS_RUN_ID`` and ``TICKACTORS_SCHEDULED_FOR``;
    it runs in ``cwd`` with stdin from ``/dev/null``. Exit code 0 succeeds with
    statistics ``exit_code``, ``stdout_tail``, ``stderr_tail`` (the last
    ``output_limit`` bytes of each stream, decoded as UTF-8) and ``duration``
    (seconds); any other exit fails the run with :class:`CommandFailed`. An empty
    script raises :class:`~protocols.errors.InvalidScript` from :meth:`execute`.

    ``cancel()`` cancels the promise at once and sends SIGTERM to the whole process
    group, then SIGKILL to what is left of the group after ``kill_grace`` seconds.

    Cost: one daemon thread per process in flight, which reads both pipes (only the
    tails are kept, so output never blocks the command nor fills memory) and waits
    for the process (through a pidfd on Linux, so a background child that keeps the
    pipes open does not delay the result); plus one timer thread per cancelled
    command for the SIGKILL escalation. Background children left running when the
    shell exits are not waited for nor killed (unless the run is cancelled), and
    what they write after that is not collected.
    """

    def __init__(
        self,
        *,
        shell: str = "/bin/sh",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        kill_grace: float = 5.0,
        output_limit: int = 4096,
    ) -> None:
        if kill_grace < 0:
            raise ValueError(f"kill_grace must not be negative, not {kill_grace}")
        if output_limit < 0:
            raise ValueError(f"output_limit must not be negative, not {output_limit}")
        self.shell = shell
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.kill_grace = kill_grace
        self.output_limit = output_limit
        self._tracker = PromiseTracker()
        self._closed = False

    def __enter__(self) -> SubprocessExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(cancel=True)

    def execute(self, run: QueuedRun) -> Promise:
        """Start the command and return its promise (raises if it cannot start)."""
        if self._closed:
            raise SchedulerError("SubprocessExecutor is shut down: it takes no new runs")
        if not run.script.strip():
            raise InvalidScript(
                f"empty script for run {run.run_id} of task {run.task_id!r}: "
                "SubprocessExecutor runs the script as a shell command"
            )
        env = dict(os.environ if self.env is None else self.env)
        env["TICKACTORS_TASK_ID"] = run.task_id
        env["TICKACTORS_RUN_ID"] = str(run.run_id)
        env["TICKACTORS_SCHEDULED_FOR"] = str(run.scheduled_for)
        started = time.monotonic()
        proc = subprocess.Popen(
            [self.shell, "-c", run.script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        promise = Promise(run)
        child = _Child(proc, promise, self.kill_grace, self.output_limit, started)
        promise.set_running()
        try:
            threading.Thread(
                target=child.watch, name=f"tickactors-proc-{proc.pid}", daemon=True
            ).start()
        except BaseException:
            child.abandon()
            raise
        promise.on_cancel(child.terminate)
        self._tracker.track(promise)
        return promise

    def wait(self, timeout: float | None = None) -> None:
        """Block until every promise this executor created is done.

        A cancelled run's promise is done at once, while its processes may still be
        exiting. Raises :class:`TimeoutError` if ``timeout`` seconds pass first.
        """
        if not self._tracker.wait(timeout):
            raise TimeoutError(f"{len(self._tracker)} commands still in flight after {timeout} s")

    def shutdown(self, wait: bool = True, *, cancel: bool = False) -> None:
        """Take no new runs; optionally cancel the commands in flight; optionally wait."""
        self._closed = True
        if cancel:
            for promise in self._tracker.snapshot():
                promise.cancel()
        if wait:
            self._tracker.wait()


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies left (macOS), or a reused id: not ours
        return False
    return True


def _open_pidfd(pid: int) -> int | None:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:
        return None
    return fd


class _Child:
    """One command: its output tails, its exit, and its termination on cancel."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        promise: Promise,
        kill_grace: float,
        output_limit: int,
        started: float,
    ) -> None:
        self.proc = proc
        self.promise = promise
        self.kill_grace = kill_grace
        self.limit = output_limit
        self.started = started
        self.lock = threading.Lock()
        self.group_gone = False  # set once the leader is reaped and the group is empty
        self.timer: threading.Timer | None = None

    # -- cancel ------------------------------------------------------------------------

    def terminate(self, _promise: Promise) -> None:
        """SIGTERM the group now, SIGKILL it after the grace period."""
        with self.lock:
            if self.group_gone:
                return
            self._signal(signal.SIGTERM)
            if self.kill_grace <= 0:
                self._signal(signal.SIGKILL)
                return
            self.timer = threading.Timer(self.kill_grace, self._kill)
            self.timer.daemon = True
        self.timer.start()

    def _kill(self) -> None:
        with self.lock:
            if not self.group_gone and _group_exists(self.proc.pid):
                self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def abandon(self) -> None:
        """The watcher could not start: kill the group and reap the leader here."""
        self._signal(signal.SIGKILL)
        self.proc.communicate()
        self.promise.cancel()

    # -- watching ----------------------------------------------------------------------

    def watch(self) -> None:
        try:
            out, err = self._collect()
            with self.lock:
                returncode = self.proc.wait()
                self.group_gone = not _group_exists(self.proc.pid)
                timer = self.timer
            if timer is not None and self.group_gone:
                timer.cancel()
        except BaseException as exc:
            _log.exception(
                "watching a command failed",
                task_id=self.promise.run.task_id,
                run_id=self.promise.run.run_id,
                pid=self.proc.pid,
            )
            self._signal(signal.SIGKILL)
            self.promise.set_exception(exc)
            return
        stdout_tail = _decode(out)
        stderr_tail = _decode(err)
        stats = {
            "exit_code": returncode,
            "stdout_tail": stdout_tail,
            "stderr_tail": stderr_tail,
            "duration": round(time.monotonic() - self.started, 6),
        }
        if returncode == 0:
            self.promise.set_result(RunResult(statistics=stats))
        else:
            error = CommandFailed(returncode, stderr_tail, self.promise.run.script, stdout_tail)
            self.promise.set_result(RunResult(error=error, statistics=stats))

    def _collect(self) -> tuple[bytearray, bytearray]:
        """Read both pipes (keeping the tails) until the leader exits; then drain them."""
        proc = self.proc
        assert proc.stdout is not None
        assert proc.stderr is not None
        pipes: dict[int, tuple[IO[bytes], bytearray]] = {
            proc.stdout.fileno(): (proc.stdout, bytearray()),
            proc.stderr.fileno(): (proc.stderr, bytearray()),
        }
        out = pipes[proc.stdout.fileno()][1]
        err = pipes[proc.stderr.fileno()][1]
        pidfd = _open_pidfd(proc.pid)
        sel = selectors.DefaultSelector()
        try:
            for fd in pipes:
                os.set_blocking(fd, False)
                sel.register(fd, selectors.EVENT_READ)
            if pidfd is not None:
                sel.register(pidfd, selectors.EVENT_READ)
            open_fds = set(pipes)
            exited = False
            while not exited:
                timeout = None if pidfd is not None else _POLL_INTERVAL
                for key, _ in sel.select(timeout):
                    if key.fd == pidfd:
                        exited = True
                    elif self._read(key.fd, pipes[key.fd][1]) == _EOF:
                        sel.unregister(key.fd)
                        open_fds.discard(key.fd)
                if pidfd is None and proc.poll() is not None:
                    exited = True
            # The leader is gone: take what is already buffered, without waiting for
            # a background child that still holds the pipes open.
            for fd in open_fds:
                for _ in range(64):
                    if self._read(fd, pipes[fd][1]) != _DATA:
                        break
        finally:
            sel.close()
            if pidfd is not None:
                os.close(pidfd)
            for stream, _buf in pipes.values():
                stream.close()
        return out, err

    def _read(self, fd: int, buf: bytearray) -> int:
        """Read once into ``buf``, keeping its tail: ``_DATA``, ``_EOF`` or ``_EMPTY``."""
        try:
            chunk = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return _EMPTY
        if not chunk:
            return _EOF
        buf += chunk
        excess = len(buf) - self.limit
        if excess > 0:
            del buf[:excess]
        return _DATA


def _decode(data: bytearray) -> str:
    return data.decode("utf-8", errors="replace")
