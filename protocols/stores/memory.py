"""PLACEHOLDER: the in-memory TaskStore (being written)."""

from __future__ import annotations


class MemoryStore:
    pass
