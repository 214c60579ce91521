"""What the actors of one Scheduler share: their services, the due-time sentinels, safe logging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from actors.metrics import LOG_ERROR, SchedulerMetrics
from actors.runtime import Runtime
from actors.store_actor import StorePort
from protocols.contracts import Executor

__all__ = [
    "BUSY",
    "DEFAULT_MAX_EXECUTIONS",
    "DUE",
    "NEVER",
    "SchedulerStats",
    "Services",
    "due_key",
    "log_safely",
]

#: The next due time of a task that will never be due by itself (inactive).
NEVER = 2**62
#: What a TaskActor last reported when it was due now (any int below every real time).
DUE = -(2**62)
#: What a TaskActor last reported when it was due now but had no free slot.
BUSY = DUE + 1


def due_key(active: bool, next_due: int, has_queue: bool, now: int, busy: bool = False) -> int:
    """What the SchedulerActor must know of a task.

    NEVER (inactive), the future time it is next due, DUE (due now, with a free slot:
    tick it), or BUSY (due now but every slot is taken: it will report again when a
    slot frees, so ticking it would be wasted work).
    """
    if not active:
        return NEVER
    if has_queue or next_due <= now:
        return BUSY if busy else DUE
    return next_due


#: Executions of a run whose outcome stays unknown before it is abandoned (failed).
DEFAULT_MAX_EXECUTIONS = 3


@attrs.frozen
class Services:
    """What every actor of one Scheduler shares (all of it thread-safe or immutable).

    ``port`` is how the actors reach the store (inline, or through its store actor):
    they never call the store itself."""

    port: StorePort
    executor: Executor
    metrics: SchedulerMetrics
    runtime: Runtime
    log: Any
    clock: Callable[[], float]
    max_executions: int = DEFAULT_MAX_EXECUTIONS


def log_safely(
    log: Any, metrics: SchedulerMetrics | None, level: str, event: str, **fields: Any
) -> None:
    """``log.<level>(event, **fields)``; a logger that raises is counted, never propagated.

    The host application's logger is outside our control (a full disk, a broken
    handler): whatever it does, the scheduler records the run and frees the slot.
    """
    try:
        getattr(log, level)(event, **fields)
    except Exception:
        if metrics is not None:
            metrics.error(LOG_ERROR)


@attrs.frozen
class SchedulerStats:
    """What a Scheduler holds right now (:meth:`actors.Scheduler.stats`).

    - ``claimed``: tasks claimed.
    - ``releasing``: tasks released whose runs in flight are still being cancelled
      (a remote job whose cancel completes later); a claim of one waits for nothing
      and never resumes those runs.
    - ``due``: claimed tasks due now, ticked on every tick until they catch up.
    - ``indexed``: items in the due-time index (at most ``2 * claimed + 64``).
    - ``now``: the time of the last tick.
    """

    claimed: int
    releasing: int
    due: int
    indexed: int
    now: int
