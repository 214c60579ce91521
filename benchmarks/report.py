"""The outputs: ``results.json``, ``results.md`` (tables, targets) and ``latency.png``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import (
    APSCHEDULER,
    APSCHEDULER_SQLITE,
    SYSTEMS,
    TICKACTORS,
    TICKACTORS_SQLITE,
    Config,
    Metric,
    Results,
)

__all__ = ["Target", "evaluate_targets", "write_all"]

KIB = 1024
WORKLOADS = ("tick", "latency", "throughput", "claim")
TITLES = {
    "tick": "tick: one tick with N claimed tasks (tick(now) until settle())",
    "latency": "latency: N tasks every 1 s on the wall-clock ticker",
    "throughput": "throughput: draining a backlog of due runs, end to end",
    "claim": "claim: N idle tasks",
}


@dataclass
class Target:
    """One target of the issue: what was measured against what was asked."""

    target: str
    case: str
    measured: str
    threshold: str
    met: bool | None  # None: not measured in this invocation


def fmt(value: float) -> str:
    """Three significant figures, thousands separated."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, 2 - magnitude)
    rounded = round(value, decimals)
    return f"{rounded:,.{decimals}f}"


def _spread(metric: Metric) -> str:
    if len(metric.values) < 2:
        return ""
    return f"{fmt(metric.min)}-{fmt(metric.max)}"


# -- targets ---------------------------------------------------------------------------


def _sizes(results: Results, workload: str, system: str, name: str) -> list[str]:
    return [
        m.case
        for m in results.metrics.values()
        if m.key[0] == workload and m.system == system and m.name == name
    ]


def _n(case: str) -> int:
    return int(case.split("=")[1].split(",")[0].replace("_", "")) if "=" in case else 0


def _case_for(results: Results, workload: str, n: int, name: str) -> Metric | None:
    for metric in results.metrics.values():
        if (
            metric.workload == workload
            and metric.system == TICKACTORS
            and metric.name == name
            and metric.case.startswith(f"N={n:,}")
        ):
            return metric
    return None


def _ratio_target(
    out: list[Target],
    results: Results,
    workload: str,
    case: str,
    name: str,
    target: str,
    bound: float,
    *,
    at_least: bool,
    ours_system: str = TICKACTORS,
    theirs_system: str = APSCHEDULER,
    theirs_case: str | None = None,
) -> None:
    """``ours_system``'s median over ``theirs_system``'s (in ``theirs_case``, default
    the same case), against ``bound``."""
    other = case if theirs_case is None else theirs_case
    ours = results.get(workload, case, ours_system, name)
    theirs = results.get(workload, other, theirs_system, name)
    if ours is None or theirs is None or not theirs.median:
        out.append(Target(target, case, "not measured", f"{bound:g}x", None))
        return
    ratio = ours.median / theirs.median
    met = ratio >= bound if at_least else ratio <= bound
    where = "" if other == case else f" ({theirs_system}: {other})"
    measured = f"{fmt(ours.median)} vs {fmt(theirs.median)} {ours.unit}{where}: {ratio:.2f}x"
    out.append(Target(target, case, measured, f"{'≥' if at_least else '≤'} {bound:g}x", met))


def _durable_targets(out: list[Target], results: Results) -> None:
    """SQLiteStore against MemoryStore, and against APScheduler on SQLite."""
    thr_cases = _sizes(results, "throughput", TICKACTORS_SQLITE, "runs/s")
    if not thr_cases:
        for target, bound in (
            ("SQLiteStore throughput ≥ 0.5x MemoryStore's", 0.5),
            ("SQLiteStore throughput ≥ 5x APScheduler+SQLite", 5.0),
        ):
            out.append(Target(target, "", "not measured", f"≥ {bound:g}x", None))
    peer_cases = _sizes(results, "throughput", APSCHEDULER_SQLITE, "runs/s")
    for case in thr_cases:
        _ratio_target(
            out,
            results,
            "throughput",
            case,
            "runs/s",
            "SQLiteStore throughput ≥ 0.5x MemoryStore's",
            0.5,
            at_least=True,
            ours_system=TICKACTORS_SQLITE,
            theirs_system=TICKACTORS,
        )
        # The peer may have run the case at a smaller N (its case says which).
        peer = case if case in peer_cases else next(iter(peer_cases), case)
        _ratio_target(
            out,
            results,
            "throughput",
            case,
            "runs/s",
            "SQLiteStore throughput ≥ 5x APScheduler+SQLite",
            5.0,
            at_least=True,
            ours_system=TICKACTORS_SQLITE,
            theirs_system=APSCHEDULER_SQLITE,
            theirs_case=peer,
        )
    for case in _sizes(results, "latency", TICKACTORS_SQLITE, "p99 lateness") or ["N=1,000"]:
        _ratio_target(
            out,
            results,
            "latency",
            case,
            "p99 lateness",
            "SQLiteStore lateness p99 ≤ 1.2x MemoryStore's",
            1.2,
            at_least=False,
            ours_system=TICKACTORS_SQLITE,
            theirs_system=TICKACTORS,
        )


def evaluate_targets(results: Results, cfg: Config) -> list[Target]:
    out: list[Target] = []
    # Throughput: 1.5x APScheduler's, and the 25,000 runs/s aim.
    thr_cases = [
        m.case
        for m in results.metrics.values()
        if m.workload == "throughput" and m.name == "runs/s" and m.system == TICKACTORS
    ]
    if not thr_cases:
        out.append(Target("throughput ≥ 1.5x APScheduler", "", "not measured", "≥ 1.5x", None))
    for case in thr_cases:
        _ratio_target(
            out,
            results,
            "throughput",
            case,
            "runs/s",
            "throughput ≥ 1.5x APScheduler",
            1.5,
            at_least=True,
        )
        ours = results.get("throughput", case, TICKACTORS, "runs/s")
        assert ours is not None
        out.append(
            Target(
                "throughput aim 25,000 runs/s",
                case,
                f"{fmt(ours.median)} runs/s",
                "≥ 25,000 runs/s",
                ours.median >= 25_000,
            )
        )
    # Latency: p99 at most half APScheduler's at 100, 1,000, 10,000.
    for n in (100, 1_000, 10_000):
        _ratio_target(
            out,
            results,
            "latency",
            f"N={n:,}",
            "p99 lateness",
            "lateness p99 ≤ ½ APScheduler's",
            0.5,
            at_least=False,
        )
    # No run lost at 10,000 and 20,000 (any repeat losing one fails).
    for n in (10_000, 20_000):
        missed = results.get("latency", f"N={n:,}", TICKACTORS, "runs missed")
        if missed is None:
            out.append(Target("zero runs lost", f"N={n:,}", "not measured", "0", None))
        else:
            out.append(
                Target(
                    "zero runs lost",
                    f"N={n:,}",
                    f"{fmt(missed.max)} missed (worst run)",
                    "0",
                    missed.max == 0,
                )
            )
    # Claim: 100,000 in < 10 s; < 4 KiB per idle claimed task; bounded threads.
    claim_time = _case_for(results, "claim", 100_000, "claim time")
    if claim_time is None:
        out.append(
            Target("claim 100,000 tasks < 10 s", "N=100,000", "not measured", "< 10 s", None)
        )
    else:
        out.append(
            Target(
                "claim 100,000 tasks < 10 s",
                claim_time.case,
                f"{fmt(claim_time.median)} s",
                "< 10 s",
                claim_time.median < 10,
            )
        )
    bulk_time = _case_for(results, "claim", 100_000, "claim time (claim_tasks)")
    if bulk_time is not None:
        out.append(
            Target(
                "claim 100,000 tasks < 10 s (claim_tasks)",
                bulk_time.case,
                f"{fmt(bulk_time.median)} s",
                "< 10 s",
                bulk_time.median < 10,
            )
        )
    for case in _sizes(results, "claim", TICKACTORS, "memory per idle claimed task"):
        mem = results.get("claim", case, TICKACTORS, "memory per idle claimed task")
        assert mem is not None
        out.append(
            Target(
                "< 4 KiB per idle claimed task",
                case,
                f"{fmt(mem.median / KIB)} KiB",
                "< 4 KiB",
                mem.median < 4 * KIB,
            )
        )
    thread_cases = _sizes(results, "claim", TICKACTORS, "threads added")
    if thread_cases:
        threads = {c: results.get("claim", c, TICKACTORS, "threads added") for c in thread_cases}
        worst = max(m.max for m in threads.values() if m is not None)
        flat = len({m.max for m in threads.values() if m is not None}) == 1
        out.append(
            Target(
                "bounded number of threads",
                ", ".join(thread_cases),
                f"at most {worst:g} added, {'same' if flat else 'varies'} for every N",
                "constant in N",
                flat and worst <= 8,
            )
        )
    for case in _sizes(results, "claim", TICKACTORS, "memory per task (task + store + claim)"):
        _ratio_target(
            out,
            results,
            "claim",
            case,
            "memory per task (task + store + claim)",
            "memory per task ≤ APScheduler's per job",
            1.0,
            at_least=False,
        )
    _durable_targets(out, results)
    # An idle tick under 50 µs whatever N.
    idle = [
        m
        for m in results.metrics.values()
        if m.workload == "tick" and m.name == "idle tick (back to back)"
    ]
    if not idle:
        out.append(Target("idle tick < 50 µs", "", "not measured", "< 50 µs", None))
    for metric in idle:
        out.append(
            Target(
                "idle tick < 50 µs",
                metric.case,
                f"{fmt(metric.median)} µs",
                "< 50 µs",
                metric.median < 50,
            )
        )
    return out


# -- writers ---------------------------------------------------------------------------


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _machine_lines(machine: dict[str, Any]) -> list[str]:
    mem = machine.get("memory_bytes")
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    dirty = " (uncommitted changes)" if machine.get("dirty") else ""
    load = ", ".join(f"{x:.2f}" for x in machine.get("loadavg_at_start", []))
    return [
        f"- CPU: {machine['cpu']}; {machine['cores']} cores ({machine['usable_cores']} usable)"
        + (f"; {mem / 2**30:.1f} GiB RAM" if mem else ""),
        f"- OS: {machine['os']}; {machine['python']}",
        f"- Packages: {packages}",
        f"- Commit: {machine.get('commit')}{dirty}; load average at start: {load}",
        f"- SQLite files (tickactors+sqlite, apscheduler+sqlite) in: {machine.get('temp_dir')}",
    ]


def markdown(meta: dict[str, Any], results: Results, targets: list[Target]) -> str:
    lines = [
        "# tickactors benchmarks",
        "",
        f"`{meta['command']}`, {meta['started']} → {meta['finished']}"
        f" ({meta['config']['repeat']} repeats each: median and min-max)",
        "",
        *_machine_lines(meta["machine"]),
        "",
        "## Targets",
        "",
    ]
    mark = {True: "✅ met", False: "❌ not met", None: "— not measured"}
    lines += _table(
        ["target", "case", "measured (median)", "asked", "status"],
        [[t.target, t.case, t.measured, t.threshold, mark[t.met]] for t in targets],
    )
    for workload in WORKLOADS:
        metrics = _by_case(m for m in results.metrics.values() if m.workload == workload)
        if not metrics:
            continue
        lines += ["", f"## {TITLES[workload]}", ""]
        lines += _table(
            ["case", "system", "metric", "median", "min-max", "unit"],
            [[m.case, m.system, m.name, fmt(m.median), _spread(m), m.unit] for m in metrics],
        )
    compare = _comparisons(results)
    if compare:
        lines += [
            "",
            "## tickactors vs APScheduler (ratio of medians, tickactors / APScheduler)",
            "",
        ]
        lines += _table(
            ["workload", "case", "metric", "tickactors", "APScheduler", "ratio", "better is"],
            compare,
        )
    stores = _stores(results)
    if stores:
        lines += [
            "",
            "## Stores side by side: MemoryStore vs SQLiteStore, and APScheduler on each (medians)",
            "",
        ]
        lines += _table(
            [
                "workload",
                "case",
                "metric",
                TICKACTORS,
                TICKACTORS_SQLITE,
                "sqlite / memory",
                APSCHEDULER,
                APSCHEDULER_SQLITE,
                f"{TICKACTORS_SQLITE} / {APSCHEDULER_SQLITE}",
                "better is",
            ],
            stores,
        )
    if results.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in results.notes]]
    if results.errors:
        lines += ["", "## Errors and anomalies", "", *[f"- {e}" for e in results.errors]]
    return "\n".join(lines) + "\n"


def _by_case(metrics: Iterable[Metric]) -> list[Metric]:
    """Cases in the order first recorded; within one, systems in the order of SYSTEMS."""
    listed = list(metrics)
    first: dict[str, int] = {}
    for metric in listed:
        first.setdefault(metric.case, len(first))
    rank = {system: i for i, system in enumerate(SYSTEMS)}
    return sorted(listed, key=lambda m: (first[m.case], rank.get(m.system, len(rank))))


def _ratio(ours: Metric | None, theirs: Metric | None) -> str:
    if ours is None or theirs is None or not theirs.median:
        return "n/a"
    ratio = ours.median / theirs.median
    return "n/a" if math.isnan(ratio) else f"{ratio:.2f}x"


def _stores(results: Results) -> list[list[str]]:
    """Every figure measured on a durable store, with the same figure on the others."""
    keys: dict[tuple[str, str, str], Metric] = {}
    for metric in results.metrics.values():
        if metric.system in (TICKACTORS_SQLITE, APSCHEDULER_SQLITE):
            keys.setdefault((metric.workload, metric.case, metric.name), metric)
    rows = []
    for (workload, case, name), metric in keys.items():
        memory, sqlite, peer, durable_peer = (
            results.get(workload, case, system, name)
            for system in (TICKACTORS, TICKACTORS_SQLITE, APSCHEDULER, APSCHEDULER_SQLITE)
        )
        rows.append(
            [
                workload,
                case,
                f"{name} ({metric.unit})",
                _median(memory),
                _median(sqlite),
                _ratio(sqlite, memory),
                _median(peer),
                _median(durable_peer),
                _ratio(sqlite, durable_peer),
                metric.better,
            ]
        )
    return rows


def _median(metric: Metric | None) -> str:
    return "—" if metric is None else fmt(metric.median)


def _comparisons(results: Results) -> list[list[str]]:
    rows = []
    for metric in results.metrics.values():
        if metric.system != TICKACTORS:
            continue
        theirs = results.get(metric.workload, metric.case, APSCHEDULER, metric.name)
        if theirs is None:
            continue
        ratio = metric.median / theirs.median if theirs.median else float("nan")
        rows.append(
            [
                metric.workload,
                metric.case,
                f"{metric.name} ({metric.unit})",
                fmt(metric.median),
                fmt(theirs.median),
                "n/a" if math.isnan(ratio) else f"{ratio:.2f}x",
                metric.better,
            ]
        )
    return rows


def chart(results: Results, path: Path) -> bool:
    """CDFs of lateness per N, every system (and store) on the same axes."""
    if not results.lateness:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({case for _, case in results.lateness}, key=_n)
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        for system in SYSTEMS:
            samples = results.lateness.get((system, case))
            if not samples:
                continue
            xs = sorted(max(s * 1e3, 1e-3) for s in samples)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.plot(xs, ys, label=f"{system} ({len(samples):,} runs)")
        ax.set_xscale("log")
        ax.set_xlabel("lateness (ms, log scale)")
        ax.set_ylabel("fraction of runs")
        ax.set_title(f"{case} tasks every 1 s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_all(out: Path, meta: dict[str, Any], results: Results, cfg: Config) -> list[Path]:
    """Write results.json, results.md and (when there are latency samples) latency.png."""
    out.mkdir(parents=True, exist_ok=True)
    targets = evaluate_targets(results, cfg)
    doc = {
        **meta,
        "metrics": [m.to_json() for m in results.metrics.values()],
        "targets": [asdict(t) for t in targets],
        "notes": results.notes,
        "errors": results.errors,
    }
    written = [out / "results.json", out / "results.md"]
    written[0].write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    written[1].write_text(markdown(meta, results, targets))
    if chart(results, out / "latency.png"):
        written.append(out / "latency.png")
    return written
