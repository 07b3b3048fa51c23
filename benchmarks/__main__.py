"""``python -m benchmarks [--quick] [--only cost,replies,...] [--baseline REF [--repeat N]]``.

Everything runs against the local RabbitMQ and Redis, each pipeline in its own vhost and Redis
prefix (deleted afterwards, also on failure or Ctrl-C), on free ports, loopback only. The
figures are printed as Markdown and saved under bench-results/ (never committed) with every
run's details as JSON, the services' logs and the profiles.

With ``--baseline REF`` every scenario also runs on the services of commit REF, interleaved with
the current tree (REF, current, REF, current, ...), ``--repeat`` times each (default: 3 for
cost, 1 for the others); the report shows the medians side by side. The stable figure on a
shared machine is CPU time per served message; wall-clock rates on two cores that also run
RabbitMQ, Redis, the Graph mock and the load generator move by tens of percent between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from benchmarks import ai, broadcast, harness, parts, report, served
from benchmarks.context import Context, Result
from benchmarks.harness import log
from benchmarks.sides import RESULTS_DIR, Side, baseline_side, check_side, current_side

SCENARIOS: dict[str, Callable[[Context], Result]] = {
    "cost": served.cost,
    "replies": served.replies,
    "e2e": served.e2e,
    "timers": parts.timers,
    "drain": parts.drain,
    "ingress": parts.ingress,
    "profile": parts.profile,
    "ai": ai.ai,
    "broadcast": broadcast.broadcast,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--only", default="", help=f"comma list of {','.join(SCENARIOS)}")
    parser.add_argument("--baseline", metavar="REF", help="also measure the services of REF")
    parser.add_argument("--repeat", type=int, help="runs per side (default: 3 for cost with "
                        "--baseline, else 1)")  # fmt: skip
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections")
    parser.add_argument("--prefetch", type=int, help="HIKER_PREFETCH of conversation, sender")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[SERVICE.]HIKER_NAME=VALUE",
        help="a setting for every Hiker service (or one: ingress.HIKER_...) of both sides",
    )
    return parser


def _scenario(name: str, ctx: Context) -> Result:
    log(f"=== {name} on {ctx.side.name} ===")
    started = time.monotonic()
    ctx.out.mkdir(parents=True, exist_ok=True)
    try:
        return SCENARIOS[name](ctx)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one scenario failing does not lose the others' results
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for bodies in ctx.out.glob("*.tsv"):  # large, and made anew for every run
            bodies.unlink()
        log(f"=== {name} on {ctx.side.name} done in {time.monotonic() - started:.0f}s ===")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for setting in args.set:
        name, sep, value = setting.partition("=")
        if not sep or not name.rpartition(".")[2].startswith("HIKER_"):
            parser.error(f"--set takes [SERVICE.]HIKER_NAME=VALUE, not {setting!r}")
        harness.SETTINGS[name] = value
    chosen = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    if unknown := [s for s in chosen if s not in SCENARIOS]:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    harness.install_signal_handlers()
    started = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"run-{started}{'-quick' if args.quick else ''}"
    harness.log_to(out / "bench.log")
    results: dict[str, Any] = {"started": started, "quick": args.quick, "sides": {}}
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    clock = time.monotonic()
    runs: dict[str, dict[str, list[Result]]] = {}
    with ExitStack() as stack:
        sides: list[Side] = [current_side()]
        if args.baseline:
            sides.insert(0, stack.enter_context(baseline_side(args.baseline)))
        for side in sides:
            check_side(side)
            results["sides"][side.name] = {"label": side.label, "scenarios": {}, "runs": {}}
        try:
            for name in chosen:
                repeat = args.repeat or (3 if args.baseline and name == "cost" else 1)
                for i in range(1, repeat + 1):
                    for side in sides:
                        where = out / f"{name}-{side.name}-{i}"
                        ctx = Context(args.quick, where, side, args.connections, args.prefetch)
                        runs.setdefault(side.name, {}).setdefault(name, []).append(
                            _scenario(name, ctx)
                        )
        except KeyboardInterrupt:
            log("interrupted: reporting what finished")
            results["interrupted"] = True
        finally:
            harness.cleanup()
    for side_name, by_name in runs.items():
        side_results = results["sides"][side_name]
        for name, found in by_name.items():
            side_results["scenarios"][name] = report.median_result(found)
            side_results["runs"][name] = len(found)
            if len(found) > 1:
                side_results.setdefault("every_run", {})[name] = found
    results["machine"]["load_at_end"] = os.getloadavg()[0]
    results["seconds"] = time.monotonic() - clock
    (RESULTS_DIR / f"{out.name}.json").write_text(json.dumps(results, indent=2))
    markdown = report.render(results)
    (RESULTS_DIR / f"{out.name}.md").write_text(markdown)
    print(markdown)
    print(f"saved {RESULTS_DIR / out.name}.json (and .md); logs and profiles in {out}")
    failed = any("error" in r for by_name in runs.values() for f in by_name.values() for r in f)
    return 1 if failed or results.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
