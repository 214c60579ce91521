"""Task options (PLACEHOLDER: validation and duration parsing to be completed)."""

from __future__ import annotations

import attrs

__all__ = ["TaskOptions"]


@attrs.frozen
class TaskOptions:
    """When a task runs: ``every`` or ``cron``, shifted by ``offset``."""

    name: str
    every: int | None = None
    cron: str | None = None
    offset: int = 0
    concurrency: int = 1
    timezone: str = "UTC"
