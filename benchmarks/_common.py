"""What every scenario shares: configuration, results, the no-op executor, measurements."""

from __future__ import annotations

import gc
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import structlog

from protocols import Promise, QueuedRun, RunResult

__all__ = [
    "Config",
    "Metric",
    "NoopExecutor",
    "Progress",
    "Results",
    "gc_quiet",
    "machine_info",
    "percentile",
    "quiet_logging",
    "rss_bytes",
    "wait_until",
]

Better = Literal["lower", "higher"]

TICKACTORS = "tickactors"
APSCHEDULER = "apscheduler"
#: The same schedulers on a durable store: SQLiteStore, and SQLAlchemyJobStore on SQLite.
TICKACTORS_SQLITE = "tickactors+sqlite"
APSCHEDULER_SQLITE = "apscheduler+sqlite"
#: Every system, in the order the report lists them.
SYSTEMS = (TICKACTORS, TICKACTORS_SQLITE, APSCHEDULER, APSCHEDULER_SQLITE)

#: One shared, immutable result: the executor allocates nothing per run but the promise.
_OK = RunResult()


@dataclass(frozen=True)
class Config:
    """Sizes and durations of one invocation (``quick`` shrinks everything)."""

    quick: bool = False
    repeat: int = 3
    tick_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    idle_ticks: int = 3_000
    latency_sizes: tuple[int, ...] = (100, 1_000, 10_000, 20_000)
    latency_window: float = 20.0
    throughput_backlog: int = 50_000  # 1 task, concurrency 100
    throughput_tasks: int = 1_000  # 1,000 tasks, concurrency 1 ...
    throughput_per_task: int = 50  # ... with this many due runs each
    throughput_single: int = 10_000  # 10,000 tasks with one due run each
    #: The durable store (tickactors+sqlite) and peer (apscheduler+sqlite) run the
    #: "N tasks, 1 run each" throughput case and the latency workload at these sizes.
    sqlite_latency_sizes: tuple[int, ...] = (1_000,)
    #: Tasks of apscheduler+sqlite's "N tasks, 1 run each" case (its case names the N;
    #: lower it if a full-size case takes too long).
    apscheduler_sqlite_single: int = 10_000
    claim_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    timeout: float = 120.0
    progress: bool = True

    @classmethod
    def make(cls, *, quick: bool, repeat: int | None, progress: bool = True) -> Config:
        if not quick:
            return cls(repeat=3 if repeat is None else repeat, progress=progress)
        return cls(
            quick=True,
            repeat=1 if repeat is None else repeat,
            tick_sizes=(100, 1_000),
            idle_ticks=200,
            latency_sizes=(100,),
            latency_window=3.0,
            throughput_backlog=2_000,
            throughput_tasks=100,
            throughput_per_task=20,
            throughput_single=500,
            sqlite_latency_sizes=(100,),
            apscheduler_sqlite_single=500,
            claim_sizes=(100, 1_000),
            timeout=30.0,
            progress=progress,
        )


@dataclass
class Metric:
    """One figure measured ``len(values)`` times (one value per repeat)."""

    workload: str  # tick | latency | throughput | claim
    case: str  # e.g. "N=10000, 1% due"
    system: str  # one of SYSTEMS
    name: str  # e.g. "p99 lateness"
    unit: str
    better: Better
    values: list[float] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.workload, self.case, self.system, self.name)

    @property
    def median(self) -> float:
        return float(statistics.median(self.values)) if self.values else float("nan")

    @property
    def min(self) -> float:
        return float(min(self.values)) if self.values else float("nan")

    @property
    def max(self) -> float:
        return float(max(self.values)) if self.values else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "case": self.case,
            "system": self.system,
            "name": self.name,
            "unit": self.unit,
            "better": self.better,
            "values": self.values,
            "median": self.median,
            "min": self.min,
            "max": self.max,
        }


class Results:
    """Every metric of an invocation, in the order first recorded, plus latency samples."""

    def __init__(self) -> None:
        self.metrics: dict[tuple[str, str, str, str], Metric] = {}
        #: (system, case) -> lateness samples in seconds, every repeat pooled (for the chart).
        self.lateness: dict[tuple[str, str], list[float]] = {}
        self.notes: list[str] = []
        self.errors: list[str] = []

    def add(
        self,
        workload: str,
        case: str,
        system: str,
        name: str,
        value: float,
        unit: str,
        better: Better = "lower",
    ) -> None:
        key = (workload, case, system, name)
        metric = self.metrics.get(key)
        if metric is None:
            metric = self.metrics[key] = Metric(workload, case, system, name, unit, better)
        metric.values.append(float(value))

    def get(self, workload: str, case: str, system: str, name: str) -> Metric | None:
        return self.metrics.get((workload, case, system, name))

    def note(self, text: str) -> None:
        """Add a note to the report (once: the same text again is ignored)."""
        if text not in self.notes:
            self.notes.append(text)

    def add_lateness(self, system: str, case: str, samples: Sequence[float]) -> None:
        pooled = self.lateness.setdefault((system, case), [])
        # Keep the chart's input bounded: at most ~200k points per series.
        step = max(1, len(samples) // 200_000)
        pooled.extend(samples[::step])


class Progress:
    """A tqdm bar over the steps of the whole invocation (silent when disabled)."""

    def __init__(
        self, total: int, enabled: bool, on_done: Callable[[], None] | None = None
    ) -> None:
        self._on_done = on_done
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm  # type: ignore[import-untyped]

            self._bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def step(self, desc: str) -> None:
        """Say what runs now (the bar advances when it is done)."""
        if self._bar is not None:
            self._bar.set_description_str(desc)

    def done(self) -> None:
        """One step finished (the outputs are rewritten, so a stopped run keeps it)."""
        if self._bar is not None:
            self._bar.update(1)
        if self._on_done is not None:
            self._on_done()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class NoopExecutor:
    """An Executor whose promises are complete before ``execute`` returns.

    With ``window=(start, end)`` it records, for each run scheduled in
    ``[start, end)``, ``(task_id, scheduled_for, lateness)`` where lateness is the
    time ``execute`` was called minus the run's ``due_at``. It always counts runs.
    """

    def __init__(self) -> None:
        self.count = 0  # only the runtime's worker calls execute (workers=1)
        self.window: tuple[int, int] | None = None
        self.records: list[tuple[str, int, float]] = []

    def execute(self, run: QueuedRun) -> Promise:
        self.count += 1
        window = self.window
        if window is not None and window[0] <= run.scheduled_for < window[1]:
            self.records.append((run.task_id, run.scheduled_for, time.time() - run.due_at))
        promise = Promise(run)
        promise.set_result(_OK)
        return promise

    def wait(self) -> None:
        return None


@contextmanager
def quiet_logging() -> Iterator[None]:
    """structlog filtered below WARNING (per-run events cost nothing), restored after.

    APScheduler's stdlib loggers are raised to ERROR: it warns once per missed run,
    which would otherwise print thousands of lines and slow it down.
    """
    previous = structlog.get_config()
    aps = logging.getLogger("apscheduler")
    aps_level = aps.level
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    aps.setLevel(logging.ERROR)
    try:
        yield
    finally:
        structlog.configure(**previous)
        aps.setLevel(aps_level)


@contextmanager
def gc_quiet() -> Iterator[None]:
    """Collect before a measurement so garbage from the previous one does not count."""
    gc.collect()
    yield


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in [0, 100])."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def rss_bytes() -> int:
    """The process's resident set size now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def thread_count() -> int:
    return threading.active_count()


def wait_until(predicate: Callable[[], bool], deadline: float, poll: float = 0.005) -> bool:
    """Poll ``predicate`` until true or ``time.monotonic()`` passes ``deadline``."""
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(poll)
    return True


def sleep_until_wall(when: float) -> None:
    """Sleep until the wall clock reads ``when``."""
    while True:
        left = when - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


PACKAGES = (
    "tickactors",
    "pykka",
    "structlog",
    "prometheus-client",
    "attrs",
    "croniter",
    "apscheduler",
    "sqlalchemy",
    "tqdm",
    "matplotlib",
)


def temp_filesystem() -> str:
    """Where ``tempfile.mkdtemp()`` puts the SQLite files: directory, file system, device."""
    where = os.path.realpath(tempfile.gettempdir())
    best = ("", "?", "?")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                device, mount, fstype = line.split()[:3]
                inside = where == mount or where.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best[0]):
                    best = (mount, fstype, device)
    except (OSError, ValueError):
        pass
    return f"{where} on {best[1]} ({best[2]})"


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python, package versions and the commit measured."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": _memory_total(),
        "temp_dir": temp_filesystem(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "loadavg_at_start": load,
    }
