"""Profiles of the hot paths, every thread included: ``python -m benchmarks.profiling``.

cProfile only sees the thread that enables it, and tickactors' handlers run on the
runtime's worker threads, so :func:`profile_all_threads` wraps
``threading.Thread._bootstrap_inner`` to profile every thread started meanwhile, and
merges the statistics. Workloads: ``tick`` (ticks with 1% of N due), ``idle`` (ticks
with nothing due), ``fanout`` (ticks with all N due), ``pipeline`` (draining a
backlog: the run pipeline), ``claim`` (claiming N idle tasks). Setup (claims) is
profiled too; see :func:`profile`. Each profile is preceded by the share of the
workload's wall time (measured without the profiler) spent in garbage collection.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._common import quiet_logging
from benchmarks._setup import BASE, Rig, make_tasks

__all__ = ["main", "profile_all_threads"]


@contextmanager
def profile_all_threads() -> Iterator[list[cProfile.Profile]]:
    """Profile this thread and every thread started inside the block."""
    profiles: list[cProfile.Profile] = []
    # Thread subclasses override run(), so wrap what calls it (private, CPython 3.10-3.13).
    original = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def bootstrap_inner(self: threading.Thread) -> None:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()
        try:
            original(self)
        finally:
            prof.disable()

    main = cProfile.Profile()
    profiles.append(main)
    threading.Thread._bootstrap_inner = bootstrap_inner  # type: ignore[attr-defined]
    main.enable()
    try:
        yield profiles
    finally:
        main.disable()
        threading.Thread._bootstrap_inner = original  # type: ignore[attr-defined]


def _tick(n: int) -> Callable[[], None]:
    rig = Rig.make()
    due = max(1, n // 100)
    tasks = rig.add(make_tasks(due, every=1, prefix="d"), BASE)
    tasks += rig.add(make_tasks(n - due, every=604_800, prefix="i"), BASE)
    rig.scheduler.start()
    rig.claim(tasks)
    rig.scheduler.settle()
    rig.scheduler.tick(BASE + 1)  # spawn the runners first
    rig.scheduler.settle()

    def work() -> None:
        for now in range(BASE + 2, BASE + 502):
            rig.scheduler.tick(now)
            rig.scheduler.settle()
        rig.scheduler.stop()

    return work


def _idle(n: int) -> Callable[[], None]:
    rig = Rig.make()
    tasks = rig.add(make_tasks(n, every=604_800), BASE)
    rig.scheduler.start()
    rig.claim(tasks)
    rig.scheduler.settle()

    def work() -> None:
        for now in range(BASE + 1, BASE + 50_001):
            rig.scheduler.tick(now)
        rig.scheduler.settle()
        rig.scheduler.stop()

    return work


def _fanout(n: int) -> Callable[[], None]:
    rig = Rig.make()
    tasks = rig.add(make_tasks(n, every=1), BASE)
    rig.scheduler.start()
    rig.claim(tasks)
    rig.scheduler.settle()
    rig.scheduler.tick(BASE + 1)  # the first run of each task
    rig.scheduler.settle()

    def work() -> None:
        for now in range(BASE + 2, BASE + 7):
            rig.scheduler.tick(now)
            rig.scheduler.settle()
        rig.scheduler.stop()

    return work


def _pipeline(n: int) -> Callable[[], None]:
    per_task = 50
    rig = Rig.make(now=BASE - per_task)
    tasks = rig.add(make_tasks(n, every=1), BASE - per_task)
    rig.scheduler.start()
    rig.claim(tasks)
    rig.scheduler.settle()

    def work() -> None:
        rig.scheduler.tick(BASE)
        rig.scheduler.settle()
        rig.scheduler.stop()

    return work


def _claim(n: int) -> Callable[[], None]:
    rig = Rig.make()
    tasks = rig.add(make_tasks(n, every=604_800), BASE)
    rig.scheduler.start()

    def work() -> None:
        rig.claim(tasks)
        rig.scheduler.settle()

    return work


WORKLOADS: dict[str, tuple[Callable[[int], Callable[[], None]], int]] = {
    "tick": (_tick, 10_000),
    "idle": (_idle, 1_000),
    "fanout": (_fanout, 10_000),
    "pipeline": (_pipeline, 1_000),
    "claim": (_claim, 20_000),
}


def profile(name: str, n: int | None = None, *, top: int = 30, sort: str = "tottime") -> str:
    """Profile one workload (its setup excluded) and return the pstats summary."""
    make, default_n = WORKLOADS[name]
    # The runtime's worker threads start with the scheduler, so the setup (claims) is
    # profiled too: each workload is sized so that the part it is about dominates.
    with quiet_logging(), profile_all_threads() as profiles:
        make(default_n if n is None else n)()
    stream = io.StringIO()
    stats: Any = None
    for prof in profiles:
        if prof.getstats():
            if stats is None:
                stats = pstats.Stats(prof, stream=stream)
            else:
                stats.add(prof)
    if stats is None:
        return ""
    stats.sort_stats(sort).print_stats(top)
    return stream.getvalue()


def gc_share(name: str, n: int | None = None) -> str:
    """Run one workload unprofiled and say how much of its wall time the GC took."""
    make, default_n = WORKLOADS[name]
    spent = [0.0, 0.0]
    counts = [0, 0, 0]

    def track(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]
            counts[info["generation"]] += 1

    with quiet_logging():
        work = make(default_n if n is None else n)
        gc.collect()
        gc.callbacks.append(track)
        try:
            t0 = time.perf_counter()
            work()
            wall = time.perf_counter() - t0
        finally:
            gc.callbacks.remove(track)
    return (
        f"garbage collection: {spent[0]:.2f} s of {wall:.2f} s ({spent[0] / wall:.0%}); "
        f"collections by generation: {counts[0]}, {counts[1]}, {counts[2]}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling")
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help=", ".join(WORKLOADS))
    parser.add_argument("-n", type=int, default=None, help="tasks (default per workload)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="pstats key (tottime, cumulative)")
    parser.add_argument("--out", type=Path, default=None, help="also write NAME.txt here")
    args = parser.parse_args(argv)
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")
    for name in args.workloads or list(WORKLOADS):
        text = gc_share(name, args.n) + "\n\n" + profile(name, args.n, top=args.top, sort=args.sort)
        print(f"==== {name} ====\n{text}")
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}-{args.sort}.txt").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
