"""``python -m benchmarks [--quick] [--only cost,replies,...] [--baseline REF [--repeat N]]``.

Everything runs against the local RabbitMQ and Redis, each measurement in its own vhost and
Redis prefix (deleted afterwards, also on failure or Ctrl-C), on free ports, loopback only.
Results are printed as tables and saved under bench-results/ as JSON and Markdown.

With ``--baseline REF`` every chosen scenario also runs on the services of commit REF,
interleaved with the current tree (REF, current, REF, current, ...), ``--repeat`` times each
(default: 3 for cost, 1 for the others); the report shows the medians side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import baseline, processes, report, wrk
from benchmarks.measure import Context
from benchmarks.pipeline import SERVICE_SETTINGS, services_dir
from benchmarks.processes import RESULTS_DIR, log
from benchmarks.scenarios import NEED_WRK, SCENARIOS, WITHOUT_HIKER


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for setting in args.set:
        name, sep, value = setting.partition("=")
        if not sep or not name.rpartition(".")[2].startswith("HIKER_"):
            _parser().error(f"--set takes [SERVICE.]HIKER_NAME=VALUE, not {setting!r}")
        SERVICE_SETTINGS[name] = value
    chosen = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        _parser().error(f"unknown scenario(s): {', '.join(unknown)}")
    if not wrk.available() and NEED_WRK.intersection(chosen):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    processes.install_signal_handlers()
    if args.side:
        return _child(args, chosen)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"run-{stamp}{'-quick' if args.quick else ''}"
    out.mkdir(parents=True, exist_ok=True)
    processes.log_to(out / "bench.log")
    results: dict[str, Any] = {
        "started": stamp,
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_start": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "scenarios": {},
    }
    started = time.monotonic()
    try:
        if args.baseline:
            failed = _compare(args, chosen, out, results)
        else:
            failed = _run_here(args, chosen, out, results)
    finally:
        for body_file in out.rglob("bodies-*.tsv"):  # large, and regenerated per run
            body_file.unlink()
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    results["seconds"] = round(time.monotonic() - started, 1)
    json_path = RESULTS_DIR / f"{out.name}.json"
    json_path.write_text(json.dumps(results, indent=2))
    markdown = report.render(results)
    (RESULTS_DIR / f"{out.name}.md").write_text(markdown)
    print(markdown)
    print(f"\nsaved {json_path} (and .md); logs and profiles in {out}")
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--only", default="", help=f"comma list of {','.join(SCENARIOS)}")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--prefetch", type=int, default=None, help="HIKER_PREFETCH for conversation and sender"
    )
    parser.add_argument(
        "--baseline", metavar="REF", help="also measure the services of this commit"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per side (default with --baseline: 3 for cost, 1 for the others; else 1)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[SERVICE.]HIKER_NAME=VALUE",
        help="a setting for every Hiker service (or one: ingress.HIKER_...) of both sides",
    )
    # A child harness of --baseline: one side's scenarios, results to a file, no report.
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser


def _context(args: argparse.Namespace, out: Path, side: str = "current") -> Context:
    return Context(
        quick=args.quick,
        out=out,
        tools_python=processes.tools_python(),
        connections=args.connections,
        prefetch=args.prefetch,
        side=side,
    )


def _scenario(name: str, ctx: Context) -> dict[str, Any]:
    log(f"=== {name} ===")
    t0 = time.monotonic()
    try:
        return SCENARIOS[name](ctx)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one scenario failing does not lose the others' results
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        log(f"=== {name} done in {time.monotonic() - t0:.0f}s ===")


def _run_here(
    args: argparse.Namespace, chosen: list[str], out: Path, results: dict[str, Any]
) -> bool:
    """Every scenario in this process, ``--repeat`` times (medians reported)."""
    ctx = _context(args, out)
    results["current"] = {"label": baseline.current_side().label, "hiker_file": _hiker_file()}
    runs: dict[str, list[dict[str, Any]]] = {}
    repeat = args.repeat or 1
    try:
        for name in chosen:
            for i in range(1, repeat + 1):
                here = replace(ctx, out=out / f"{name}-{i}") if repeat > 1 else ctx
                here.out.mkdir(parents=True, exist_ok=True)
                runs.setdefault(name, []).append(_scenario(name, here))
    except KeyboardInterrupt:
        results["interrupted"] = True
    return _collect(runs, results["scenarios"], results) or results.get("interrupted", False)


def _compare(
    args: argparse.Namespace, chosen: list[str], out: Path, results: dict[str, Any]
) -> bool:
    passthrough = ["--connections", str(args.connections)]
    passthrough += ["--quick"] if args.quick else []
    passthrough += ["--prefetch", str(args.prefetch)] if args.prefetch else []
    passthrough += [f"--set={setting}" for setting in args.set]
    processes.tools_python()  # installed once here, not by the first child
    current = baseline.current_side()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with baseline.baseline_side(args.baseline) as before:
        results["baseline"] = {"ref": args.baseline, "label": before.label, "scenarios": {}}
        results["current"] = {"label": current.label}
        try:
            for name in chosen:
                repeat = args.repeat or (3 if name == "cost" else 1)
                for i in range(1, repeat + 1):
                    for side in (before, current):
                        if side is before and name in WITHOUT_HIKER:
                            continue
                        result = baseline.run_side(
                            side, name, out / f"{name}-{side.name}-{i}", passthrough
                        )
                        runs.setdefault(name, {}).setdefault(side.name, []).append(result)
                        if result.get("hiker_file"):
                            results[side.name]["hiker_file"] = result["hiker_file"]
        except KeyboardInterrupt:
            log("interrupted: reporting what finished")
            results["interrupted"] = True
    failed = False
    for side_name in ("baseline", "current"):
        per_side = {name: r[side_name] for name, r in runs.items() if side_name in r}
        is_baseline = side_name == "baseline"
        target = results["baseline"]["scenarios"] if is_baseline else results["scenarios"]
        failed |= _collect(per_side, target, results, key=f"{side_name}_runs")
    return failed or results.get("interrupted", False)


def _collect(
    runs: dict[str, list[dict[str, Any]]],
    target: dict[str, Any],
    results: dict[str, Any],
    key: str = "runs",
) -> bool:
    """Medians of each scenario's runs into ``target``; every run kept under ``results[key]``
    when there was more than one. True when any run failed."""
    failed = False
    for name, found in runs.items():
        failed |= any("error" in r for r in found)
        target[name] = baseline.median_result(found)
        if len(found) > 1:
            target[name]["repeats"] = len(found)
            results.setdefault(key, {})[name] = found
    return failed


def _child(args: argparse.Namespace, chosen: list[str]) -> int:
    """One side of --baseline: the scenarios here, whose ``hiker`` is that side's."""
    processes.log_to(args.out / "bench.log")
    hiker_file = _hiker_file()
    log(f"{args.side} side: harness imports hiker from {hiker_file}")
    ctx = _context(args, args.out, side=args.side)
    scenarios: dict[str, Any] = {}
    name = chosen[0]
    try:
        for name in chosen:
            scenarios[name] = _scenario(name, ctx)
    except KeyboardInterrupt:
        scenarios.setdefault(name, {"error": "interrupted"})
    finally:
        for body_file in args.out.glob("bodies-*.tsv"):
            body_file.unlink()
        args.result.write_text(json.dumps({"hiker_file": hiker_file, "scenarios": scenarios}))
    return 1 if any("error" in r for r in scenarios.values()) else 0


def _hiker_file() -> str:
    return str(services_dir() / "hiker" / "__init__.py")


if __name__ == "__main__":
    sys.exit(main())
