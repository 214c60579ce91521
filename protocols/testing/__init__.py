"""The public test kit: a deterministic executor, contract suites, strategies, a state machine.

``ManualExecutor`` needs nothing beyond tickactors. The contract suites
(``TaskStoreContract``, ``ExecutorContract``), the hypothesis strategies and the
state machine need pytest and hypothesis (the ``test`` extra); they are imported
lazily, on first use, so ``import protocols.testing`` works without them. When pytest
is present, the suites' modules are registered for assertion rewriting, so a
failing contract test shows a readable diff.
"""

from __future__ import annotations

import importlib
from typing import Any

from protocols.testing.manual import ManualExecutor

__all__ = [
    "ExecutorContract",
    "FakeClock",
    "ManualExecutor",
    "TaskStoreContract",
    "make_task",
]

_LAZY = {
    "TaskStoreContract": "protocols.testing.store_contract",
    "FakeClock": "protocols.testing.store_contract",
    "make_task": "protocols.testing.store_contract",
    "ExecutorContract": "protocols.testing.executor_contract",
}

try:
    import pytest
except ImportError:  # pragma: no cover - pytest is optional for the kit's plain parts
    pass
else:
    pytest.register_assert_rewrite(
        "protocols.testing.store_contract", "protocols.testing.executor_contract"
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'protocols.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
