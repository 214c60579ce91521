"""Stock :class:`~protocols.TaskStore` implementations."""

from __future__ import annotations

from protocols.stores.memory import MemoryStore

__all__ = ["MemoryStore"]
