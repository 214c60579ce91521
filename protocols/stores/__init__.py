"""Stock :class:`~protocols.TaskStore` implementations."""

from __future__ import annotations

from protocols.stores.memory import MemoryStore
from protocols.stores.sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore"]
