"""The command line and :func:`run`, the one entry point (the smoke test calls it too)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks import apsched, claim, latency, report, throughput, tick
from benchmarks._common import Config, Progress, Results, machine_info, quiet_logging

__all__ = ["SCENARIOS", "main", "run"]

#: In the order they run: the quick, deterministic ones first.
SCENARIOS: dict[str, ModuleType] = {
    "tick": tick,
    "claim": claim,
    "throughput": throughput,
    "latency": latency,
    "apscheduler": apsched,
}

RESULTS_ROOT = Path(__file__).resolve().parent / "results"


def _now() -> str:
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


def run(
    scenarios: Sequence[str] = (),
    *,
    quick: bool = False,
    repeat: int | None = None,
    out: Path | None = None,
    progress: bool = True,
    command: str | None = None,
    on_write: Callable[[list[Path]], None] | None = None,
    latency_sizes: Sequence[int] | None = None,
) -> Path:
    """Run ``scenarios`` (all when empty) and write the outputs into ``out``.

    ``out`` defaults to ``benchmarks/results/<timestamp>/``. The outputs are
    rewritten after every step, so an interrupted run keeps what it measured.
    A scenario that raises is recorded under "Errors" and the others still run.
    ``latency_sizes`` replaces the latency workload's sizes on MemoryStore (the
    durable store's stay ``Config.sqlite_latency_sizes``). Returns the output directory.
    """
    names = list(scenarios) or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    names = [n for n in SCENARIOS if n in names]  # fixed order, no duplicates
    cfg = Config.make(quick=quick, repeat=repeat, progress=progress)
    if cfg.repeat < 1:
        raise ValueError("repeat must be at least 1")
    if latency_sizes is not None:
        if not latency_sizes or min(latency_sizes) < 1:
            raise ValueError("latency sizes must be positive task counts")
        cfg = dataclasses.replace(cfg, latency_sizes=tuple(latency_sizes))
    if out is None:
        out = RESULTS_ROOT / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    results = Results()
    durations: dict[str, float] = {}
    meta: dict[str, Any] = {
        "command": command or "benchmarks.run(" + ", ".join(map(repr, names)) + ")",
        "started": _now(),
        "finished": None,
        "scenarios": names,
        "config": {k: v for k, v in vars(cfg).items() if k != "progress"},
        "machine": machine_info(),
        "durations_s": durations,
    }
    total = sum(SCENARIOS[name].steps(cfg) for name in names)

    def write() -> None:
        meta["finished"] = _now()
        written = report.write_all(out, meta, results, cfg)
        if on_write is not None:
            on_write(written)

    bar = Progress(total, progress, write)
    try:
        with quiet_logging():
            for name in names:
                t0 = time.monotonic()
                try:
                    SCENARIOS[name].run(cfg, results, bar)
                except Exception:
                    results.errors.append(f"scenario {name} raised: {traceback.format_exc()}")
                durations[name] = round(time.monotonic() - t0, 1)
                write()
    finally:
        bar.close()
    return out


def _sizes(text: str) -> tuple[int, ...]:
    """``"1000"`` or ``"100,1_000"``: positive task counts."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of task counts: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"task counts must be positive: {text!r}")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark tickactors (and APScheduler 3.11 on the same workloads).",
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"what to run, among {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, 1 repeat: a smoke run of seconds"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs of each case (default 3; --quick: 1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for results.json/results.md/latency.png "
        "(default benchmarks/results/<timestamp>/)",
    )
    parser.add_argument(
        "--latency-sizes",
        type=_sizes,
        default=None,
        metavar="N[,N...]",
        help="task counts of the latency workload on MemoryStore and APScheduler's "
        "memory job store (default 100,1000,10000,20000; --quick: 100); the SQLite "
        "runs keep theirs (1000; --quick: 100)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    out = run(
        args.scenarios,
        quick=args.quick,
        repeat=args.repeat,
        out=args.out,
        progress=not args.no_progress,
        command=command.strip(),
        latency_sizes=args.latency_sizes,
    )
    print(f"results in {out}")
    print((out / "results.md").read_text())
    return 0
