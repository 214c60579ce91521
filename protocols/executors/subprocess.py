"""SubprocessExecutor: runs the run's script as a shell command in its own process group."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, Final

import structlog

from protocols.errors import InvalidScript, SchedulerError
from protocols.executors.promise import Promise, PromiseTracker
from protocols.model import QueuedRun, RunResult

__all__ = ["REAP_TIMEOUT", "CommandFailed", "SubprocessExecutor", "kill_recorded_groups"]

_log = structlog.get_logger(__name__)

_READ_SIZE = 65536
_POLL_INTERVAL = 0.05  # only where pidfd_open is missing (not Linux >= 5.3)
_GROUP_POLL = 0.02  # how often terminate_all looks for the process groups' end
REAP_TIMEOUT = 0.5
"""Seconds :meth:`SubprocessExecutor.terminate_all` waits for SIGKILLed processes to die."""
_DATA, _EOF, _EMPTY = 1, 0, -1  # what one read of a pipe got


class CommandFailed(SchedulerError):
    """A shell command exited with a non-zero code (or was killed by a signal).

    ``returncode`` is the exit code (negative: the signal number that killed it);
    ``stderr_tail`` and ``stdout_tail`` are the last bytes of its output, decoded;
    the message carries both (stderr first), so a failed run's log says why.
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
        if stdout_tail.strip():  # the run's log says why, whichever stream the job used
            message += f"; stdout (tail): {stdout_tail.strip()}"
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
    group, then SIGKILL to what is left of the group after ``kill_grace`` seconds
    (from a daemon timer thread: it fires only while this process lives).

    :meth:`terminate_all` (and ``shutdown(cancel=True)``, which waits by default)
    ends every process group this executor started that still has a live process,
    and returns once they are dead: what a process about to exit calls, so that no
    command outlives it.

    ``group_file``: a file where the executor keeps the process groups it started
    that may still live (``pgid`` and the leader's start time, one per line). Made
    with a file an earlier process left behind (it was killed, say with SIGKILL, and
    its commands lived on), the executor first SIGKILLs those groups
    (:func:`kill_recorded_groups`; their ids in :attr:`recovered`), so a run resumed
    after the crash never executes beside its first execution. A resumed run's
    command also gets ``TICKACTORS_RESUMED_FROM`` (when the earlier execution started);
    every command gets ``TICKACTORS_EXECUTION`` (1 for a run's first execution).

    Cost: one daemon thread per process in flight, which reads both pipes (only the
    tails are kept, so output never blocks the command nor fills memory) and waits
    for the process (through a pidfd on Linux, so a background child that keeps the
    pipes open does not delay the result); plus one timer thread per cancelled
    command for the SIGKILL escalation. Background children left running when the
    shell exits are not waited for, and what they write after that is not
    collected; they are killed when the run is cancelled or by :meth:`terminate_all`.
    The executor remembers each group until it has no process left (checked at each
    :meth:`execute`), so groups left behind this way cost one entry each.
    """

    def __init__(
        self,
        *,
        shell: str = "/bin/sh",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        kill_grace: float = 5.0,
        output_limit: int = 4096,
        group_file: str | os.PathLike[str] | None = None,
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
        # Starting a command and closing are atomic under this lock, so that no group
        # starts after terminate_all took its snapshot.
        self._lock = threading.Lock()
        self._groups: dict[int, _Child] = {}  # pgid -> child, while the group may live
        self.group_file = None if group_file is None else os.fspath(group_file)
        #: Process groups an earlier process recorded in ``group_file`` and left alive,
        #: SIGKILLed when this executor was made.
        self.recovered: list[int] = []
        if self.group_file is not None:
            self.recovered = kill_recorded_groups(self.group_file)
            self._save_groups()

    def __enter__(self) -> SubprocessExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(cancel=True)

    def execute(self, run: QueuedRun) -> Promise:
        """Start the command and return its promise (raises if it cannot start)."""
        if self._closed:
            raise _shut_down()
        if not run.script.strip():
            raise InvalidScript(
                f"empty script for run {run.run_id} of task {run.task_id!r}: "
                "SubprocessExecutor runs the script as a shell command"
            )
        env = dict(os.environ if self.env is None else self.env)
        env["TICKACTORS_TASK_ID"] = run.task_id
        env["TICKACTORS_RUN_ID"] = str(run.run_id)
        env["TICKACTORS_SCHEDULED_FOR"] = str(run.scheduled_for)
        env["TICKACTORS_EXECUTION"] = str(run.execution)
        if run.resumed_from is not None:  # executed again: the job may act idempotently
            env["TICKACTORS_RESUMED_FROM"] = repr(run.resumed_from)
        with self._lock:
            if self._closed:
                raise _shut_down()
            self._forget_ended_groups()
            started = time.monotonic()
            if self.group_file is None:
                argv, gate = [self.shell, "-c", run.script], None
            else:
                # The command waits at a gate until its group is in the group file: if
                # this process dies before (kill -9), the gate reads EOF and the command
                # never runs, so no command can outlive us unrecorded.
                gate = os.pipe()
                argv = [self.shell, "-c", _GATE, self.shell, run.script]
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL if gate is None else gate[0],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except BaseException:
                if gate is not None:
                    os.close(gate[0])
                    os.close(gate[1])
                raise
            promise = Promise(run)
            child = _Child(proc, promise, self.kill_grace, self.output_limit, started)
            child.on_group_gone = self._forget
            self._groups[proc.pid] = child
            if gate is not None:
                os.close(gate[0])
                child.start_time = _start_time(proc.pid) or 0
                self._record_group(proc.pid, child.start_time)
                try:
                    os.write(gate[1], b"\n")  # recorded: the command may run
                except OSError:
                    pass  # it died already: the watcher reports how
                finally:
                    os.close(gate[1])
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
        """Take no new runs; optionally cancel the commands in flight; optionally wait.

        ``cancel=True, wait=True`` is :meth:`terminate_all`: it returns once every
        process group is dead (a warning is logged for any that survives SIGKILL).
        ``wait=True`` alone waits for the commands' promises.
        """
        if cancel and wait:
            survivors = self.terminate_all()
            if survivors:
                _log.warning("process groups survived SIGKILL", pgids=survivors)
            return
        with self._lock:
            self._closed = True
        if cancel:
            for promise in self._tracker.snapshot():
                promise.cancel()
        if wait:
            self._tracker.wait()

    def terminate_all(
        self, kill_grace: float | None = None, *, timeout: float = REAP_TIMEOUT
    ) -> list[int]:
        """Shut down and end every process group started here that has a live process.

        Takes no new runs, cancels the commands in flight, sends SIGTERM to every
        group left (finished commands' background children included) that has not
        had one yet, SIGKILL to what is left ``kill_grace`` seconds (default: the
        executor's) after each group's SIGTERM (``0``: SIGKILL at once), then waits
        up to ``timeout`` more seconds for the killed processes to die. So it
        returns within ``kill_grace + timeout`` seconds. Returns the ids of the
        groups that still have a live process (normally none: only a process stuck
        in the kernel survives SIGKILL that long). A process counts as dead once it
        is a zombie: its parent, or init for an orphan, reaps it.
        """
        grace = self.kill_grace if kill_grace is None else kill_grace
        if grace < 0:
            raise ValueError(f"kill_grace must not be negative, not {grace}")
        with self._lock:
            self._closed = True
            children = list(self._groups.values())
        for promise in self._tracker.snapshot():
            promise.cancel()  # SIGTERM to its group, through _Child.terminate
        live = _live_groups(children)
        now = time.monotonic()
        for child in live:
            if grace <= 0:
                child.send(signal.SIGKILL)
            elif child.sigterm_at is None:
                child.send(signal.SIGTERM)
        kill_at = {child: (child.sigterm_at or now) + grace for child in live}
        pending = set(live)  # had SIGTERM, not SIGKILL yet
        while pending:
            now = time.monotonic()
            for child in [c for c in pending if kill_at[c] <= now]:
                child.send(signal.SIGKILL)
                pending.discard(child)
            if not pending:
                break
            time.sleep(min(_GROUP_POLL, max(0.0, min(kill_at[c] for c in pending) - now)))
            pending = set(_live_groups(pending))  # a group ended by SIGTERM needs no SIGKILL
        deadline = time.monotonic() + timeout
        while live := _live_groups(live):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(_GROUP_POLL, remaining))
        for child in children:  # let the watchers reap the leaders (bounded)
            child.reaped.wait(max(0.0, deadline - time.monotonic()))
        return sorted(child.pid for child in live)

    def _forget(self, child: _Child) -> None:
        with self._lock:
            if self._groups.get(child.pid) is child:
                del self._groups[child.pid]
                if self.group_file is not None:
                    self._save_groups()

    def _forget_ended_groups(self) -> None:
        """Drop the groups whose leader was reaped and which have no process left."""
        ended = [
            pgid
            for pgid, child in self._groups.items()
            if child.reaped.is_set() and not _group_alive(pgid)
        ]
        for pgid in ended:
            del self._groups[pgid]
        if ended and self.group_file is not None:
            self._save_groups()

    # -- the group file (call with the lock held, or from __init__) ---------------------

    def _record_group(self, pgid: int, start_time: int) -> None:
        """Append ``pgid`` and its leader's start time to the group file."""
        assert self.group_file is not None
        line = f"{pgid} {start_time}\n".encode()
        try:
            fd = os.open(self.group_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            _log.warning("group file not written", path=self.group_file, error=str(exc))

    def _save_groups(self) -> None:
        """Rewrite the group file with the groups that may still live (atomically)."""
        assert self.group_file is not None
        lines = "".join(
            f"{pgid} {child.start_time}\n" for pgid, child in sorted(self._groups.items())
        )
        temporary = f"{self.group_file}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, lines.encode())
            finally:
                os.close(fd)
            os.replace(temporary, self.group_file)
        except OSError as exc:
            _log.warning("group file not written", path=self.group_file, error=str(exc))


#: What a command started with a group file runs first: wait until the executor has
#: recorded the group (a line on stdin, the gate), or exit 125 unrun if the executor
#: died first (EOF); then run the script ($1) as ``shell -c script`` would, with stdin
#: from /dev/null as every command has.
_GATE: Final = 'read -r _ || exit 125; exec "$0" -c "$1" </dev/null'


def kill_recorded_groups(path: str, *, timeout: float = REAP_TIMEOUT) -> list[int]:
    """SIGKILL the process groups a dead process recorded in ``path``; their ids.

    Each line is ``pgid starttime`` (the leader's start time in clock ticks since
    boot, from ``/proc``). A group is killed when it still has a live process and
    its leader is either gone (a command's background children) or the very process
    recorded (same start time): Linux does not reuse a process id while a group of
    that id has a member, so a live group whose leader is gone is the recorded one,
    and a live leader with another start time is someone else's, left alone. Waits
    up to ``timeout`` seconds for the killed processes to die. A missing file means
    nothing to do.
    """
    try:
        with open(path, encoding="ascii") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        _log.warning("group file unreadable", path=path, error=str(exc))
        return []
    killed: list[int] = []
    for line in lines:
        fields = line.split()
        if len(fields) != 2 or not all(field.isdigit() for field in fields):
            continue
        pgid, started = int(fields[0]), int(fields[1])
        if pgid <= 1 or not _group_exists(pgid):
            continue
        leader = _start_time(pgid)
        if leader is not None and started and leader != started:
            continue  # the id was reused by a process that is not ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
    deadline = time.monotonic() + timeout
    while killed and time.monotonic() < deadline:
        live = _live_pgids()
        if live is None or not live.intersection(killed):
            break
        time.sleep(_GROUP_POLL)
    return sorted(set(killed))


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (``/proc``), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 1 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def _shut_down() -> SchedulerError:
    return SchedulerError("SubprocessExecutor is shut down: it takes no new runs")


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # only zombies left (macOS), or a reused id: not ours
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """True while the group has a process that is not a zombie (see :func:`_live_groups`).

    An orphaned zombie stays until init reaps it, and some containers' init never
    does: a group of zombies only is gone.
    """
    if not _group_exists(pgid):
        return False
    if not os.path.isdir("/proc/self"):
        return True
    live = _live_pgids()
    return live is None or pgid in live


def _live_groups(children: Iterable[_Child]) -> list[_Child]:
    """The children whose process group still has a process that is not a zombie.

    ``killpg(pgid, 0)`` succeeds while zombies are left (an orphan waits for init to
    reap it, which can take seconds), so on Linux the groups it finds are checked in
    ``/proc``; elsewhere (no ``/proc``) a group that takes signals counts as live.
    """
    candidates = [child for child in children if _group_exists(child.pid)]
    if not candidates or not os.path.isdir("/proc/self"):
        return candidates
    live = _live_pgids()
    if live is None:
        return candidates
    return [child for child in candidates if child.pid in live]


def _live_pgids() -> set[int] | None:
    """The process groups of every process not dead yet, from ``/proc`` (None: unreadable)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    pgids: set[int] = set()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = data[data.rfind(b")") + 1 :].split()
        if len(fields) < 3 or fields[0] in (b"Z", b"X", b"x"):
            continue
        with contextlib.suppress(ValueError):
            pgids.add(int(fields[2]))
    return pgids


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
        self.pid = proc.pid  # also the process group's id
        self.start_time = 0  # the leader's, in clock ticks after boot (with a group file)
        self.lock = threading.Lock()
        self.group_gone = False  # set once the leader is reaped and the group is empty
        self.reaped = threading.Event()  # the leader was reaped (or watching it failed)
        self.sigterm_at: float | None = None  # time.monotonic() of the group's SIGTERM
        self.timer: threading.Timer | None = None
        self.on_group_gone: Callable[[_Child], None] | None = None

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

    def send(self, sig: signal.Signals) -> None:
        """Signal the group (unless it is known to be gone)."""
        with self.lock:
            if not self.group_gone:
                self._signal(sig)

    def _kill(self) -> None:
        with self.lock:
            if not self.group_gone and _group_exists(self.proc.pid):
                self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGTERM and self.sigterm_at is None:
            self.sigterm_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def abandon(self) -> None:
        """The watcher could not start: kill the group and reap the leader here."""
        self._signal(signal.SIGKILL)
        self.proc.communicate()
        self.reaped.set()
        self.promise.cancel()

    # -- watching ----------------------------------------------------------------------

    def watch(self) -> None:
        try:
            out, err = self._collect()
            with self.lock:
                returncode = self.proc.wait()
                self.reaped.set()
                self.group_gone = not _group_alive(self.pid)
                timer = self.timer
            if self.group_gone:
                if timer is not None:
                    timer.cancel()
                if self.on_group_gone is not None:
                    self.on_group_gone(self)
        except BaseException as exc:
            _log.exception(
                "watching a command failed",
                task_id=self.promise.run.task_id,
                run_id=self.promise.run.run_id,
                pid=self.proc.pid,
            )
            self._signal(signal.SIGKILL)
            self.reaped.set()  # nobody will: do not make terminate_all wait for it
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
