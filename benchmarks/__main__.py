"""``python -m benchmarks [--quick] [--only ingress,pywa,e2e,timers,sender,conversation,profile]``.

Everything runs against the local RabbitMQ and Redis, each scenario in its own vhost and Redis
prefix (deleted afterwards, also on failure or Ctrl-C), on free ports, loopback only. Results
are printed as tables and saved under bench-results/ as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from typing import Any

from benchmarks import env, report, scenarios, wrk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1-2 min)")
    parser.add_argument("--only", default="", help=f"comma list of {','.join(scenarios.SCENARIOS)}")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--prefetch", type=int, default=None, help="HIKER_PREFETCH for conversation and sender"
    )
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or list(scenarios.SCENARIOS)
    unknown = [s for s in chosen if s not in scenarios.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if not wrk.available() and any(s in chosen for s in ("ingress", "pywa", "profile")):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    env.install_signal_handlers()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = env.RESULTS_DIR / f"run-{stamp}{'-quick' if args.quick else ''}"
    out.mkdir(parents=True, exist_ok=True)
    ctx = scenarios.Context(
        quick=args.quick,
        out=out,
        tools_python=env.tools_python(),
        connections=args.connections,
        prefetch=args.prefetch,
    )
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
    failed = False
    started = time.monotonic()
    for name in chosen:
        env.log(f"=== {name} ===")
        t0 = time.monotonic()
        try:
            results["scenarios"][name] = scenarios.SCENARIOS[name](ctx)
        except KeyboardInterrupt:
            results["scenarios"][name] = {"error": "interrupted"}
            failed = True
            break
        except Exception as exc:  # one scenario failing does not lose the others' results
            traceback.print_exc()
            results["scenarios"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed = True
        env.log(f"=== {name} done in {time.monotonic() - t0:.0f}s ===")
        # Bodies files are large and regenerated per run.
        for body_file in out.glob("bodies-*.tsv"):
            body_file.unlink()
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    results["seconds"] = round(time.monotonic() - started, 1)
    json_path = env.RESULTS_DIR / f"{out.name}.json"
    json_path.write_text(json.dumps(results, indent=2))
    markdown = report.render(results)
    (env.RESULTS_DIR / f"{out.name}.md").write_text(markdown)
    print(markdown)
    print(f"\nsaved {json_path} (and .md); logs and profiles in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
