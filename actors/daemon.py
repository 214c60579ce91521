"""The tickactors daemon: ``python -m actors run TASKS.toml`` (or ``tickactors run``).

It loads the tasks of a task file (:mod:`actors.taskfile`) into an in-memory store,
claims them on a :class:`~actors.Scheduler` ticking on the wall clock, runs shell
tasks with :class:`~protocols.SubprocessExecutor` and python tasks with
:class:`~protocols.ThreadExecutor`, writes one JSON log line per event to stdout,
and serves Prometheus metrics over HTTP.

Stopping (SIGINT, SIGTERM, or ``--duration``): no new runs start; runs in flight get
up to ``--grace`` seconds to finish; whatever is left is cancelled. A shell run's
process group gets SIGTERM, and SIGKILL ``--kill-grace`` seconds later if any of it
is still alive; a python run function gets ``--kill-grace`` seconds to return, after
which it is abandoned (a Python thread cannot be killed: the process exits under
it). Every process group the daemon started is dead before it exits, including
background children that finished commands left behind.

The bound: the daemon exits within ``grace + kill_grace +`` :data:`STOP_MARGIN` (2)
seconds of the first SIGINT/SIGTERM, whatever its runs do (the margin covers the
scheduler's own stop, the wait for SIGKILLed processes to die, and exiting; past
``grace + kill_grace + 1`` s it stops waiting, SIGKILLs every process group left and
exits 1). A second SIGINT/SIGTERM during the stop exits at once, with 128 + the
signal's number (130, 143), after SIGKILLing every process group left (within
:data:`~protocols.executors.subprocess.REAP_TIMEOUT`, 0.5 s).

The defaults, ``--grace 5 --kill-grace 3``, bound the stop at 10 s: the daemon's own
SIGKILL of what is left of its commands comes 8 s after the signal, before the
SIGKILL of ``docker stop`` (10 s by default; Kubernetes waits 30 s, systemd 90 s),
which would kill the daemon alone and orphan its commands. The kill grace is shorter
than the grace because a command that handles SIGTERM is expected to exit promptly.

Exit status: 0 after a clean stop; 2 for a bad command line or task file (the
problems go to stderr, one line each, naming the file and the task); 1 when it
cannot start (e.g. the metrics port is taken), fails unexpectedly, or the stop was
not clean (a python run function still running at the end of the kill grace, a
process surviving SIGKILL, the stop overrunning its bound; each is logged);
128 + signum when a second signal forced the exit.

This module is an application: it is the one place that configures structlog (and
routes the standard library's ``logging`` through the same JSON renderer).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import FrameType, TracebackType
from typing import Any, Final, NoReturn, TextIO
from wsgiref.simple_server import WSGIServer

import attrs
import prometheus_client
import structlog
from structlog.typing import EventDict, FilteringBoundLogger

from actors import Scheduler
from actors.catchup import MISSED_CAP, count_missed, latest_due_slot
from actors.history import HISTORY_COMMANDS, add_history_commands, run_history_command
from actors.taskfile import TaskEntry, TaskFile, TaskFileError, load_task_file
from protocols import (
    Executor,
    MemoryStore,
    QueuedRun,
    SQLiteStore,
    StoreError,
    SubprocessExecutor,
    TaskNotFound,
    TaskStatus,
    ThreadExecutor,
)
from protocols.executors.routing import RoutingExecutor
from protocols.options import parse_duration
from protocols.stores.sqlite import Durability

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_GRACE",
    "DEFAULT_KEEP_RUNS",
    "DEFAULT_KILL_GRACE",
    "DEFAULT_OUTPUT_LIMIT",
    "DEFAULT_METRICS_PORT",
    "MEMORY_DB",
    "STOP_MARGIN",
    "DaemonOptions",
    "Executors",
    "build_parser",
    "configure_logging",
    "main",
    "run_daemon",
    "sync_tasks",
]

DEFAULT_METRICS_PORT: Final = 9464
DEFAULT_DB: Final = "tickactors.db"
"""The daemon's database, in the working directory."""
MEMORY_DB: Final = ":memory:"
"""``--db :memory:``: a memory store, nothing kept across restarts."""
DEFAULT_KEEP_RUNS: Final = 1_000
"""Finished runs kept per task."""
DEFAULT_OUTPUT_LIMIT: Final = 64 * 1024
"""Bytes of a shell command's stdout and of its stderr kept in its run's log (the last)."""
_TASKFILE_KEY: Final = "daemon.taskfile_tasks"
DEFAULT_GRACE: Final = 5.0
"""Seconds runs in flight get to finish on their own once the daemon stops."""
DEFAULT_KILL_GRACE: Final = 3.0
"""Seconds between a cancelled command's SIGTERM and SIGKILL (a python function's last chance)."""
QUEUE_POLL: Final = 0.5
"""Seconds between looks for manual runs queued in the database by another process."""
STOP_MARGIN: Final = 2.0
"""The daemon exits within ``grace + kill_grace + STOP_MARGIN`` s of the first signal."""
_STOP_OVERRUN: Final = 1.0  # past grace + kill_grace + this, the stop is forced
_LEADING_KEYS: Final = ("timestamp", "level", "event")
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@attrs.frozen
class DaemonOptions:
    """What ``run`` was asked to do (the command line, parsed)."""

    task_file: str
    metrics_port: int | None = DEFAULT_METRICS_PORT
    """``None``: no metrics server; 0: any free port."""
    metrics_addr: str = "127.0.0.1"
    grace: float = DEFAULT_GRACE
    kill_grace: float = DEFAULT_KILL_GRACE
    duration: float | None = None
    tick_interval: float = 0.1
    keep_runs: int = DEFAULT_KEEP_RUNS
    keep_for: int | None = None
    """Seconds a finished run is kept at least (None: no age limit)."""
    log_level: str = "info"
    db: str = DEFAULT_DB
    """The SQLite database (``":memory:"``: a memory store, nothing kept)."""
    durability: Durability = "process"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``tickactors {run,check} TASKS.toml [options]``; returns the exit code.

    ``run`` ends the process itself (:func:`os._exit`, after flushing the logs) when
    returning would hang or the stop is forced: a python run function still running
    (the interpreter would wait for its thread at exit), a second signal, or a stop
    overrunning its bound.
    """
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:  # before the signal handlers are in place
        return 128 + signal.SIGINT


def _main(args: argparse.Namespace) -> int:
    if args.command in HISTORY_COMMANDS:
        return run_history_command(args)
    kill_grace: float = getattr(args, "kill_grace", DEFAULT_KILL_GRACE)
    executors = Executors(
        shell=SubprocessExecutor(kill_grace=kill_grace, output_limit=DEFAULT_OUTPUT_LIMIT)
    )
    try:
        task_file = load_task_file(args.task_file, resolve_python=executors.python.resolve)
    except TaskFileError as exc:
        _print_problems(exc, "invalid" if args.command == "check" else "not started")
        return EXIT_USAGE
    if args.command == "check":
        active = sum(1 for task in task_file.tasks if task.active)
        print(f"{task_file.source}: ok: {len(task_file.entries)} tasks ({active} active)")
        return EXIT_OK
    options = DaemonOptions(
        task_file=args.task_file,
        metrics_port=None if args.no_metrics else args.metrics_port,
        metrics_addr=args.metrics_addr,
        grace=args.grace,
        kill_grace=kill_grace,
        duration=args.duration,
        tick_interval=args.tick_interval,
        keep_runs=args.keep_runs,
        keep_for=args.keep_for,
        log_level=args.log_level,
        db=args.db,
        durability=args.durability,
    )
    configure_logging(options.log_level)
    code = run_daemon(task_file, options, executors)
    if executors.python.busy():  # the interpreter would wait for these threads at exit
        _exit_now(code)
    return code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tickactors``."""
    parser = argparse.ArgumentParser(
        prog="tickactors",
        description="Run the tasks of a TOML task file on the wall clock.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the tasks until SIGINT/SIGTERM (or --duration)",
        description="Run the tasks of TASKS.toml, logging JSON lines to stdout.",
    )
    run.add_argument("task_file", metavar="TASKS.toml", help="the task file")
    metrics = run.add_mutually_exclusive_group()
    metrics.add_argument(
        "--metrics-port",
        type=_port,
        default=DEFAULT_METRICS_PORT,
        metavar="PORT",
        help=f"serve Prometheus metrics on PORT (default {DEFAULT_METRICS_PORT}; "
        "0 picks a free port and logs it)",
    )
    metrics.add_argument("--no-metrics", action="store_true", help="serve no metrics")
    run.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the metrics server binds to (default 127.0.0.1; 0.0.0.0 for all)",
    )
    run.add_argument(
        "--grace",
        type=_seconds(allow_zero=True),
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help="on stop, wait up to SECONDS for runs in flight to finish, then cancel "
        "them (default 5; 0 cancels at once)",
    )
    run.add_argument(
        "--kill-grace",
        type=_seconds(allow_zero=True),
        default=DEFAULT_KILL_GRACE,
        metavar="SECONDS",
        help="after the cancel, SIGKILL a command's process group SECONDS after its "
        "SIGTERM, and abandon a python function still running then (default 3). "
        f"The daemon exits within grace + kill grace + {STOP_MARGIN:g} s of the first "
        "SIGINT/SIGTERM; a second one exits at once",
    )
    run.add_argument(
        "--duration",
        type=_seconds(allow_zero=False),
        default=None,
        metavar="SECONDS",
        help="stop after SECONDS (default: run until SIGINT/SIGTERM)",
    )
    run.add_argument(
        "--tick-interval",
        type=_seconds(allow_zero=False),
        default=0.1,
        metavar="SECONDS",
        help="how often the wall clock is polled for a new second (default 0.1)",
    )
    run.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"the SQLite database keeping runs, latest completed slots and manual "
        f"queues across restarts (default {DEFAULT_DB} in the working directory; "
        f"{MEMORY_DB} keeps nothing)",
    )
    run.add_argument(
        "--durability",
        choices=("process", "power"),
        default="process",
        help="what a commit survives: 'process' (default) the daemon being killed, "
        "'power' also a power loss (an fsync per commit)",
    )
    run.add_argument(
        "--keep-runs",
        type=_non_negative_int,
        default=DEFAULT_KEEP_RUNS,
        metavar="N",
        help=f"finished runs kept per task (default {DEFAULT_KEEP_RUNS})",
    )
    run.add_argument(
        "--keep-for",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="also delete finished runs older than DURATION (such as 30d; default: "
        "no age limit), a batch at a time off the run path",
    )
    run.add_argument("--log-level", choices=tuple(_LEVELS), default="info", help="default info")
    check = commands.add_parser(
        "check",
        help="check a task file and exit (0: valid, 2: problems)",
        description="Check TASKS.toml as `run` would, without running anything.",
    )
    check.add_argument("task_file", metavar="TASKS.toml", help="the task file")
    add_history_commands(commands)
    return parser


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """One JSON object per line on ``stream`` (default stdout), for structlog and ``logging``.

    Each line has ``timestamp`` (ISO 8601, UTC), ``level`` and ``event``, plus the
    logger's bound context (``task_id``, ``run_id``...). Events below ``level`` cost
    next to nothing (structlog's filtering bound logger).
    """
    stream = sys.stdout if stream is None else stream
    level_no = _LEVELS[level]
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.dict_tracebacks,
            _leading_keys,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.dict_tracebacks,
                _leading_keys,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level_no, logging.INFO))  # libraries' debug chatter stays out


def _leading_keys(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """Put ``timestamp``, ``level`` and ``event`` first, for people reading the lines."""
    lead = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    return {**lead, **event_dict}


def _default_shell() -> SubprocessExecutor:
    return SubprocessExecutor(kill_grace=DEFAULT_KILL_GRACE, output_limit=DEFAULT_OUTPUT_LIMIT)


@attrs.frozen
class Executors:
    """The daemon's executors: ``shell`` tasks run in processes, ``python`` ones in threads."""

    shell: SubprocessExecutor = attrs.field(factory=_default_shell)
    python: ThreadExecutor = attrs.field(factory=ThreadExecutor)

    def route(self, entries: Iterable[TaskEntry]) -> RoutingExecutor:
        """One executor for the scheduler, routing each task's runs by its executor kind."""
        routes: dict[str, Executor] = {"shell": self.shell, "python": self.python}
        return RoutingExecutor.by_task(routes, {e.task.id: e.executor for e in entries})

    def shutdown(self, kill_grace: float) -> tuple[list[QueuedRun], list[int]]:
        """Take no new runs and end the ones left, within ``kill_grace + REAP_TIMEOUT`` s.

        Cancels every run; SIGKILLs what is left of each process group ``kill_grace``
        seconds after its SIGTERM, and waits for it to die; gives python functions
        until ``kill_grace`` seconds from now to return. Returns the python runs
        still running (abandoned) and the process groups that survived SIGKILL.
        """
        cancelled_at = time.monotonic()
        self.python.shutdown(wait=False, cancel=True)
        survivors = self.shell.terminate_all(kill_grace)
        remaining = max(0.0, cancelled_at + kill_grace - time.monotonic())
        try:
            self.python.shutdown(wait=True, timeout=remaining)
        except TimeoutError:
            pass  # reported through busy()
        return self.python.busy(), survivors

    def kill(self) -> list[int]:
        """SIGKILL every process group left now; the ones that survived (within 0.5 s)."""
        self.python.shutdown(wait=False, cancel=True)
        return self.shell.terminate_all(0)


def run_daemon(task_file: TaskFile, options: DaemonOptions, executors: Executors) -> int:
    """Run the tasks of ``task_file`` until a signal or ``options.duration``; the exit code.

    The stop is bounded (see the module's docstring); a second signal during it, or
    an overrun, ends the process here with :func:`os._exit`.
    """
    log: FilteringBoundLogger = structlog.get_logger("tickactors.daemon")
    try:
        store = _open_store(options, log)
    except StoreError as exc:
        log.error("store_open_failed", db=options.db, error=str(exc))
        return EXIT_FAILURE
    try:
        return _run_on(store, task_file, options, _with_group_file(executors, options, log), log)
    finally:
        if isinstance(store, SQLiteStore):
            store.close()


def _open_store(options: DaemonOptions, log: FilteringBoundLogger) -> MemoryStore | SQLiteStore:
    """The daemon's store: a SQLite file it holds for writing, or a memory store."""
    if options.db == MEMORY_DB:
        log.info("store_opened", db=MEMORY_DB, kept_across_restarts=False)
        return MemoryStore(max_finished_runs=options.keep_runs)
    store = SQLiteStore(
        options.db,
        durability=options.durability,
        keep_runs=options.keep_runs,
        keep_for=options.keep_for,
    )
    log.info(
        "store_opened",
        db=os.path.abspath(options.db),
        durability=options.durability,
        kept_across_restarts=True,
    )
    return store


def _with_group_file(
    executors: Executors, options: DaemonOptions, log: FilteringBoundLogger
) -> Executors:
    """With a database, shell commands' process groups are kept in ``DB.groups``.

    Made once the database's writer lock is held (so a second daemon never touches
    the first one's commands), the executor first SIGKILLs the groups a killed
    daemon left running: a run resumed now never executes beside its first execution.
    """
    if options.db == MEMORY_DB or executors.shell.group_file is not None:
        return executors
    old = executors.shell
    shell = SubprocessExecutor(
        shell=old.shell,
        env=old.env,
        cwd=old.cwd,
        kill_grace=old.kill_grace,
        output_limit=old.output_limit,
        group_file=options.db + ".groups",
    )
    if shell.recovered:
        log.warning(
            "process_groups_left_by_a_dead_daemon_killed",
            pgids=shell.recovered,
            hint="their runs are resumed and executed again",
        )
    return attrs.evolve(executors, shell=shell)


def _run_on(
    store: MemoryStore | SQLiteStore,
    task_file: TaskFile,
    options: DaemonOptions,
    executors: Executors,
    log: FilteringBoundLogger,
) -> int:
    executor = executors.route(task_file.entries)
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=registry)
    prometheus_client.PlatformCollector(registry=registry)
    prometheus_client.GCCollector(registry=registry)

    with _SignalWaiter((signal.SIGINT, signal.SIGTERM)) as signals:
        server: WSGIServer | None = None
        if options.metrics_port is not None:
            try:
                server, _ = prometheus_client.start_http_server(
                    options.metrics_port, addr=options.metrics_addr, registry=registry
                )
            except OSError as exc:
                log.error(
                    "metrics_server_failed",
                    addr=options.metrics_addr,
                    port=options.metrics_port,
                    error=str(exc),
                    hint="choose another --metrics-port, or --metrics-port 0 for any free port",
                )
                return EXIT_FAILURE
            port = server.server_port
            host = (
                f"[{options.metrics_addr}]" if ":" in options.metrics_addr else options.metrics_addr
            )
            log.info(
                "metrics_server_started",
                addr=options.metrics_addr,
                port=port,
                url=f"http://{host}:{port}/metrics",
            )
        code = EXIT_OK
        scheduler: Scheduler | None = None
        try:
            scheduler = Scheduler(
                store, executor, registry=registry, tick_interval=options.tick_interval
            )
            scheduler.start()
            sync_tasks(store, task_file, int(time.time()), log)
            _claim_all(scheduler, store, task_file, log)
            log.info(
                "daemon_started",
                task_file=task_file.source,
                tasks=len(task_file.entries),
                pid=os.getpid(),
                duration=options.duration,
                grace=options.grace,
                kill_grace=options.kill_grace,
            )
            received = _serve(scheduler, store, task_file, options, signals, log)
            reason = "duration" if received is None else signal.Signals(received).name
            log.info(
                "daemon_stopping",
                reason=reason,
                grace=options.grace,
                kill_grace=options.kill_grace,
                exit_within=options.grace + options.kill_grace + STOP_MARGIN,
            )
        except Exception:
            log.exception("daemon_failed")
            code = EXIT_FAILURE
        try:
            code = max(code, _stop(scheduler, executors, options, signals, log))
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
    log.info("daemon_stopped", task_file=task_file.source, exit_code=code)
    return code


def _serve(
    scheduler: Scheduler,
    store: MemoryStore | SQLiteStore,
    task_file: TaskFile,
    options: DaemonOptions,
    signals: _SignalWaiter,
    log: FilteringBoundLogger,
) -> int | None:
    """Wait for a signal (its number) or the end of ``--duration`` (None).

    Meanwhile, every :data:`QUEUE_POLL` seconds, manual runs queued in the database
    by another process (``tickactors run-now`` / ``retry``) are handed to the
    scheduler, which starts them like its own.
    """
    deadline = None if options.duration is None else time.monotonic() + options.duration
    task_ids = [entry.task.id for entry in task_file.entries if entry.task.active]
    while True:
        wait = QUEUE_POLL
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))
        received = signals.wait(wait)
        if received is not None:
            return received
        if deadline is not None and time.monotonic() >= deadline:
            return None
        if isinstance(store, SQLiteStore):
            try:
                if store.changed_by_others():
                    for task_id in task_ids:
                        if store.manual_runs(task_id):
                            scheduler.notify_queued(task_id)
            except Exception as exc:  # the store is down: ticks go on; try again later
                log.warning("queue_poll_failed", error=str(exc))


@attrs.define
class _StopOutcome:
    abandoned: list[QueuedRun] = attrs.Factory(list)
    survivors: list[int] = attrs.Factory(list)
    failed: bool = False


def _stop(
    scheduler: Scheduler | None,
    executors: Executors,
    options: DaemonOptions,
    signals: _SignalWaiter,
    log: FilteringBoundLogger,
) -> int:
    """Stop the scheduler and end every run, bounded; the exit code.

    The stop runs in a thread, while this (main) thread waits for it, for a second
    signal and for the bound: :class:`Scheduler.stop` and the executors may block
    (on a run function that never returns, say) and Python cannot interrupt them. A
    second signal or an overrun SIGKILLs every process group left and ends the
    process here (:func:`os._exit`), with 128 + signum or 1.
    """
    started = time.monotonic()
    deadline = started + options.grace + options.kill_grace + _STOP_OVERRUN
    outcome = _StopOutcome()
    done = threading.Event()

    def stop() -> None:
        try:
            if scheduler is not None:
                scheduler.stop(grace=options.grace)
            outcome.abandoned, outcome.survivors = executors.shutdown(options.kill_grace)
        except Exception:
            log.exception("daemon_stop_failed")
            outcome.failed = True
        finally:
            done.set()
            signals.wake()

    threading.Thread(target=stop, name="tickactors-stop", daemon=True).start()
    while not done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            log.error(
                "daemon_stop_timed_out",
                after=round(time.monotonic() - started, 3),
                hint="the scheduler's stop did not end in time; killing every process group",
            )
            _force_exit(executors, log, EXIT_FAILURE)
        received = signals.wait(remaining, wake=True)
        if received is not None:
            log.warning(
                "daemon_forced_stop",
                signal=signal.Signals(received).name,
                after=round(time.monotonic() - started, 3),
            )
            _force_exit(executors, log, 128 + received)
    code = EXIT_FAILURE if outcome.failed else EXIT_OK
    if outcome.abandoned:
        log.error(
            "runs_abandoned",
            runs=[{"task_id": run.task_id, "run_id": run.run_id} for run in outcome.abandoned],
            kill_grace=options.kill_grace,
            hint="a python run function still running after the kill grace; Python cannot "
            "kill its thread, so the process exits under it",
        )
        code = EXIT_FAILURE
    if outcome.survivors:
        log.error("process_groups_survived_sigkill", pgids=outcome.survivors)
        code = EXIT_FAILURE
    return code


def _force_exit(executors: Executors, log: FilteringBoundLogger, code: int) -> NoReturn:
    """SIGKILL every process group left, log, and end the process now with ``code``."""
    survivors = executors.kill()
    if survivors:
        log.error("process_groups_survived_sigkill", pgids=survivors)
    log.info("daemon_stopped", exit_code=code, forced=True)
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Flush the logs and end the process without waiting for its threads."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing more to say
            pass
    os._exit(code)


def sync_tasks(
    store: MemoryStore | SQLiteStore,
    task_file: TaskFile,
    now: int,
    log: FilteringBoundLogger | None = None,
) -> None:
    """Make the store's tasks the task file's, and apply each task's ``catch_up``.

    A task new to the store is added (starting at ``start_at``, or now); a known one
    is updated to the file's definition, keeping its latest completed slot; then
    ``catch_up`` decides about the slots missed while the daemon was down (``"all"``
    keeps them, ``"latest"`` keeps the most recent, ``"none"`` skips them). A task an
    earlier task file put in the database and this one lacks is deactivated (its
    history kept); tasks other code added are never touched.
    """
    if log is None:
        log = structlog.get_logger("tickactors.daemon")
    ids = {entry.task.id for entry in task_file.entries}
    previous: set[str] = set()
    if isinstance(store, SQLiteStore):
        previous = set(json.loads(store.get_meta(_TASKFILE_KEY) or "[]"))
    for entry in task_file.entries:
        task = entry.task
        try:
            stored = store.get_task(task.id)
        except TaskNotFound:
            store.add_task(task, latest_completed=entry.latest_completed(now))
            log.info("task_added", task_id=task.id, start_at=entry.start_at)
        else:
            if stored != task:
                store.update_task(task)
                log.info("task_updated", task_id=task.id)
        base = store.latest_completed(task.id)
        if entry.catch_up == "none":
            store.update_task(task, latest_completed=now)
        elif entry.catch_up == "latest":
            latest = latest_due_slot(task.options, base, now)
            if latest is not None:
                store.update_task(task, latest_completed=latest - 1)
        missed = count_missed(task.options, base, now) if task.active else 0
        replay = count_missed(task.options, store.latest_completed(task.id), now)
        if missed:
            log.info(
                "task_catching_up",
                task_id=task.id,
                catch_up=entry.catch_up,
                missed_slots=missed if missed < MISSED_CAP else f">={MISSED_CAP}",
                replaying=(replay if replay < MISSED_CAP else f">={MISSED_CAP}")
                if task.active
                else 0,
            )
    for task_id in sorted(previous - ids):
        try:
            stored = store.get_task(task_id)
        except TaskNotFound:
            continue
        if stored.active:
            store.update_task(attrs.evolve(stored, status=TaskStatus.INACTIVE))
            log.warning(
                "task_deactivated",
                task_id=task_id,
                reason="no longer in the task file; its history is kept",
            )
    if isinstance(store, SQLiteStore):
        store.set_meta(_TASKFILE_KEY, json.dumps(sorted(previous | ids)))


def _claim_all(
    scheduler: Scheduler,
    store: MemoryStore | SQLiteStore,
    task_file: TaskFile,
    log: FilteringBoundLogger,
) -> None:
    """Claim every task of the file (the store holds them: see :func:`sync_tasks`)."""
    for entry in task_file.entries:
        task = entry.task
        scheduler.claim_task(task)
        log.info(
            "task_claimed",
            task_id=task.id,
            executor=entry.executor,
            every=task.options.every,
            cron=task.options.cron,
            offset=task.options.offset,
            concurrency=task.options.concurrency,
            timezone=task.options.timezone,
            active=task.active,
            catch_up=entry.catch_up,
            latest_completed=store.latest_completed(task.id),
            next_due=store.next_due_run(task.id),
            in_progress=len(store.currently_running(task.id)),
        )


def _print_problems(exc: TaskFileError, verdict: str) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    count = len(exc.problems)
    print(
        f"tickactors: {verdict}: {count} problem{'s' if count != 1 else ''} in the task file",
        file=sys.stderr,
    )


class _SignalWaiter:
    """Turns signals into something the main thread can wait for, with a timeout.

    The signal handlers do nothing in Python; ``signal.set_wakeup_fd`` writes each
    signal's number to a socket, and :meth:`wait` selects on it. No lock is taken in
    a handler, so a signal can never deadlock the thread it interrupts. Outside the
    main thread (where handlers cannot be set) :meth:`wait` only times out.
    """

    def __init__(self, signums: Iterable[int]) -> None:
        self._signums = tuple(signums)
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._installed = False

    def __enter__(self) -> _SignalWaiter:
        try:
            self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        except ValueError:  # not the main thread
            return self
        self._installed = True
        for signum in self._signums:
            self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()

    @staticmethod
    def _handler(signum: int, frame: FrameType | None) -> None:
        """Nothing: the wakeup socket carries the signal."""

    def wake(self) -> None:
        """Make a ``wait(..., wake=True)`` in another thread return None now (thread-safe)."""
        try:
            self._writer.send(b"\0")
        except (BlockingIOError, OSError):  # the buffer is full (it will wake) or closed
            pass

    def wait(self, timeout: float | None, *, wake: bool = False) -> int | None:
        """The next signal's number, or None once ``timeout`` seconds pass (None: forever).

        With ``wake``, also None as soon as :meth:`wake` is called.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._reader], [], [], remaining)
            if ready:
                try:
                    data = self._reader.recv(1)
                except BlockingIOError:
                    continue
                if data and data[0] in self._signums:
                    return data[0]
                if wake and data == b"\0":
                    return None
                continue  # another signal with a Python handler, or a stale wake
            if deadline is not None and time.monotonic() >= deadline:
                return None


def _duration(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive duration such as 30d")
    return seconds


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return value


def _non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _seconds(*, allow_zero: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not value >= 0 or value == float("inf") or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise argparse.ArgumentTypeError(f"{text!r}: expected seconds {bound}")
        return value

    return parse
