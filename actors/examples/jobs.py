"""Python jobs for the example task file (``actors/examples/tasks.toml``).

A job for :class:`~protocols.ThreadExecutor` takes the :class:`~protocols.QueuedRun`
and may return a mapping of statistics, which the scheduler records in the run's log.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

from protocols import QueuedRun

__all__ = ["process_stats"]


def process_stats(run: QueuedRun) -> dict[str, float | int | str]:
    """Statistics about the daemon's own process, and how late this run started."""
    stats: dict[str, float | int | str] = {
        "task_id": run.task_id,
        "run_id": run.run_id,
        "scheduled_for": run.scheduled_for,
        "lateness_s": round(time.time() - run.due_at, 3),
        "threads": threading.active_count(),
        "gc_objects": len(gc.get_objects()),
        "python": sys.version.split()[0],
    }
    if hasattr(os, "getloadavg"):
        stats["load_1m"] = os.getloadavg()[0]
    return stats
