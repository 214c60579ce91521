"""``python -m benchmarks.burst [N]``: from a tick with N runs due to each run's start.

The wall-clock latency workload's p99 is set by its worst second (the first runs of every
task, a garbage collection), so it moves a lot between repeats. This measures the same
path without the ticker: N tasks due every second, ``tick(now)`` then ``settle()``, and
for each tick the p50 and p99 of the time from the tick to ``execute`` of each run.
Medians of 12 ticks (after 3 warm-up ticks), MemoryStore and SQLiteStore back to back,
three times; the ratio compares like with like.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from benchmarks._common import quiet_logging
from benchmarks._setup import BASE, Rig, StoreName, make_tasks

__all__ = ["burst", "main"]

TICKS = 15
WARM_UP = 3


def burst(n: int, store: StoreName) -> tuple[float, float]:
    """Medians over the ticks of (p50, p99) of tick-to-start, in milliseconds."""
    rig = Rig.make(now=BASE, store=store)
    try:
        tasks = rig.add(make_tasks(n, every=1), BASE)
        starts: list[float] = []
        execute = rig.executor.execute

        def timed(run: Any) -> Any:
            starts.append(time.perf_counter())
            return execute(run)

        rig.executor.execute = timed  # type: ignore[method-assign]
        rig.scheduler.start()
        rig.claim(tasks)
        rig.scheduler.settle()
        p50: list[float] = []
        p99: list[float] = []
        for k in range(1, TICKS + 1):
            starts.clear()
            ticked = time.perf_counter()
            rig.scheduler.tick(BASE + k)
            rig.scheduler.settle()
            late = sorted(start - ticked for start in starts)
            if k > WARM_UP and late:
                p50.append(late[len(late) // 2])
                p99.append(late[min(len(late) - 1, int(len(late) * 0.99))])
        rig.scheduler.stop()
    finally:
        rig.close()
    return statistics.median(p50) * 1e3, statistics.median(p99) * 1e3


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 1_000
    with quiet_logging():
        for _ in range(3):
            memory = burst(n, "memory")
            sqlite = burst(n, "sqlite")
            print(
                f"N={n:,}: memory p50 {memory[0]:.1f} ms p99 {memory[1]:.1f} ms | "
                f"sqlite p50 {sqlite[0]:.1f} ms p99 {sqlite[1]:.1f} ms | "
                f"p99 sqlite/memory {sqlite[1] / memory[1]:.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
