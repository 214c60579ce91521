"""The benchmark harness's quick mode runs and writes outputs that parse (no timing checks)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import SCENARIOS, run
from benchmarks.cli import main


@pytest.mark.timeout(180)
def test_quick_run_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    out = run(quick=True, out=tmp_path / "bench", progress=False)

    doc = json.loads((out / "results.json").read_text())
    assert doc["scenarios"] == list(SCENARIOS)
    assert doc["machine"]["python"]
    assert doc["machine"]["packages"]["apscheduler"]
    assert not doc["errors"], doc["errors"]
    workloads = {(m["workload"], m["system"]) for m in doc["metrics"]}
    for workload in ("tick", "latency", "throughput", "claim"):
        assert (workload, "tickactors") in workloads
    for workload in ("latency", "throughput", "claim"):
        assert (workload, "apscheduler") in workloads
    for metric in doc["metrics"]:
        assert metric["min"] <= metric["median"] <= metric["max"]
    assert {t["target"] for t in doc["targets"]} >= {
        "throughput ≥ 1.5x APScheduler",
        "idle tick < 50 µs",
        "< 4 KiB per idle claimed task",
    }
    missed = [
        m["max"]
        for m in doc["metrics"]
        if m["system"] == "tickactors" and m["name"] == "runs missed"
    ]
    assert missed
    assert max(missed) == 0

    # The durable store and the durable peer: throughput (with CPU per run, as every
    # system has) and latency rows, and the ratios the issue sets as targets.
    def metric(workload: str, system: str, name: str) -> dict[str, Any]:
        found = [
            m
            for m in doc["metrics"]
            if (m["workload"], m["system"], m["name"]) == (workload, system, name)
        ]
        assert len(found) == 1, (workload, system, name, found)
        return found[0]

    for system in ("tickactors+sqlite", "apscheduler+sqlite"):
        assert metric("throughput", system, "runs/s")["median"] > 0
        assert metric("latency", system, "runs executed")["median"] > 0  # lateness samples
        assert math.isfinite(metric("latency", system, "p99 lateness")["median"])
        assert 0 < metric("latency", system, "started within 1 s")["median"] <= 100
    for system in ("tickactors", "tickactors+sqlite", "apscheduler", "apscheduler+sqlite"):
        cpu = [
            m
            for m in doc["metrics"]
            if (m["workload"], m["system"], m["name"]) == ("throughput", system, "CPU per run")
        ]
        assert cpu, system
        assert all(m["median"] > 0 for m in cpu), cpu
    durable = {t["target"]: t for t in doc["targets"] if "SQLiteStore" in t["target"]}
    assert set(durable) == {
        "SQLiteStore throughput ≥ 0.5x MemoryStore's",
        "SQLiteStore throughput ≥ 5x APScheduler+SQLite",
        "SQLiteStore lateness p99 ≤ 1.2x MemoryStore's",
    }
    assert all(t["met"] is not None for t in durable.values()), durable  # all measured

    markdown = (out / "results.md").read_text()
    assert markdown.startswith("# tickactors benchmarks")
    assert "## Targets" in markdown
    assert "| case | system | metric | median | min-max | unit |" in markdown
    assert "tickactors+sqlite / apscheduler+sqlite" in markdown

    png = (out / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_cli_rejects_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nope", "--quick"])
    assert exc.value.code == 2
    assert "unknown scenario" in capsys.readouterr().err


def test_burst_measures_every_run_on_both_stores() -> None:
    """benchmarks.burst: tick-to-start percentiles on both stores (no timing checks)."""
    from benchmarks.burst import burst

    for store in ("memory", "sqlite"):
        p50, p99 = burst(20, store)  # type: ignore[arg-type]
        assert 0 < p50 <= p99
