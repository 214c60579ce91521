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
    "DST_ZONES",
    "FIXED_ZONES",
    "ExecutorContract",
    "FakeClock",
    "InvalidOptions",
    "ManualExecutor",
    "RecordingStore",
    "SchedulerMachine",
    "StoreEvent",
    "TaskStoreContract",
    "cron_expressions",
    "durations",
    "invalid_task_options",
    "make_task",
    "run_scheduler_machine",
    "scheduler_machine",
    "strategies",
    "task_options",
    "tasks",
    "timezones",
]

_STORE = "protocols.testing.store_contract"
_MACHINE = "protocols.testing.state_machine"
_STRATEGIES = "protocols.testing.strategies"
_LAZY = {
    "TaskStoreContract": _STORE,
    "FakeClock": _STORE,
    "make_task": _STORE,
    "ExecutorContract": "protocols.testing.executor_contract",
    "SchedulerMachine": _MACHINE,
    "RecordingStore": _MACHINE,
    "StoreEvent": _MACHINE,
    "scheduler_machine": _MACHINE,
    "run_scheduler_machine": _MACHINE,
    "task_options": _STRATEGIES,
    "invalid_task_options": _STRATEGIES,
    "InvalidOptions": _STRATEGIES,
    "tasks": _STRATEGIES,
    "cron_expressions": _STRATEGIES,
    "durations": _STRATEGIES,
    "timezones": _STRATEGIES,
    "FIXED_ZONES": _STRATEGIES,
    "DST_ZONES": _STRATEGIES,
}

try:
    import pytest
except ImportError:  # pragma: no cover - pytest is optional for the kit's plain parts
    pass
else:
    pytest.register_assert_rewrite(_STORE, "protocols.testing.executor_contract", _MACHINE)


def __getattr__(name: str) -> Any:
    if name == "strategies":
        return importlib.import_module(_STRATEGIES)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'protocols.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
