"""The benchmark harness's quick mode runs and writes outputs that parse (no timing checks)."""

from __future__ import annotations

import json
from pathlib import Path

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

    markdown = (out / "results.md").read_text()
    assert markdown.startswith("# tickactors benchmarks")
    assert "## Targets" in markdown
    assert "| case | system | metric | median | min-max | unit |" in markdown

    png = (out / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_cli_rejects_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nope", "--quick"])
    assert exc.value.code == 2
    assert "unknown scenario" in capsys.readouterr().err
