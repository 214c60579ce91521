"""tickactors' benchmark harness: ``python -m benchmarks [SCENARIO...] [--quick]``.

Scenarios: ``tick``, ``claim``, ``throughput``, ``latency`` (tickactors) and
``apscheduler`` (the latency, throughput and claim workloads on APScheduler 3.11).
``throughput`` and ``latency`` also run tickactors on ``SQLiteStore`` (system
``tickactors+sqlite``), and ``apscheduler`` runs the same two workloads with a
``SQLAlchemyJobStore`` on SQLite (``apscheduler+sqlite``), the durable peer.
Each is run ``--repeat`` times (default 3) and reported as median and min-max in
``results.json``, ``results.md`` and ``latency.png``. See :mod:`benchmarks.cli`.
"""

from __future__ import annotations

from benchmarks.cli import SCENARIOS, main, run

__all__ = ["SCENARIOS", "main", "run"]
