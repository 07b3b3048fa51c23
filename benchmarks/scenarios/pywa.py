"""pywa (FastAPI + uvicorn) doing Hiker's job on the same wrk load and bodies as the ingress
scenario, and at a fixed 1,000 webhooks/s; replies counted at the same Graph mock."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks import bodies, processes
from benchmarks.isolation import Isolation
from benchmarks.measure import SHAPES, Context, bodies_for, fixed_rate, settle_count, throughput
from benchmarks.pipeline import ACCESS_TOKEN, APP_SECRET, Pipeline
from benchmarks.processes import Service, log

APP = Path(__file__).resolve().parent.parent / "pywa_app" / "app.py"


def start_pywa(ctx: Context, graph_url: str, log_dir: Path) -> tuple[Service, str]:
    """A fresh pywa process (so that no in-memory backlog carries over); its webhook URL."""
    port = processes.free_port()
    app = processes.start(
        "pywa",
        [str(ctx.tools_python), str(APP)],
        {
            "PYWA_PORT": str(port),
            "PYWA_GRAPH_URL": graph_url,
            "PYWA_APP_SECRET": APP_SECRET,
            "PYWA_TOKEN": ACCESS_TOKEN,
            "PYWA_PHONE_ID": bodies.PHONE_NUMBER_ID,
        },
        log_dir=log_dir,
        ready_url=f"http://127.0.0.1:{port}/webhook?hub.mode=subscribe"
        f"&hub.verify_token=bench-verify&hub.challenge=1",
    )
    return app, f"http://127.0.0.1:{port}/webhook"


def log_offset(app_log: Path) -> int:
    return app_log.stat().st_size if app_log.exists() else 0


def failed_replies(app: Service, offset: int) -> int:
    """Replies pywa gave up on since ``offset`` of its log: it logs a handler's exception (e.g.
    httpx.PoolTimeout) and drops the reply."""
    with app.log_path.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("httpx.") and ("Error" in line or "Timeout" in line)
    )


def run(ctx: Context) -> dict[str, Any]:
    duration = ctx.seconds(4, 15)
    fixed_duration = ctx.seconds(5, 30)
    result: dict[str, Any] = {"throughput": []}
    log_dir = ctx.out / "logs-pywa"
    app_log = log_dir / "pywa.log"
    with (
        Isolation() as iso,
        Pipeline(
            iso, log_dir, with_ingress=False, with_conversation=False, with_sender=False
        ) as pipeline,
    ):
        for per_post in SHAPES:
            body_file = bodies_for(ctx, per_post, duration)
            offset = log_offset(app_log)
            app, url = start_pywa(ctx, pipeline.graph_url, log_dir)
            try:
                sent_before = pipeline.sent_count()
                row = throughput(
                    ctx,
                    url,
                    body_file,
                    per_post,
                    duration,
                    lambda app=app: {
                        "pywa": app.cpu(),
                        "graph-mock": pipeline.services["graph-mock"].cpu(),
                    },
                )
                # pywa answers 200 first and runs its handler afterwards (a FastAPI background
                # task), so replies are counted once they stop coming. It also reads only
                # entry[0].changes[0].messages[0]: at most one reply per POST.
                row["replies_sent"], row["replies_done_after_s"] = settle_count(
                    pipeline, sent_before, ctx.seconds(30, 120)
                )
            finally:
                app.stop()
            row["replies_failed"] = failed_replies(app, offset)
            row["replies_per_s"] = round(
                row["replies_sent"] / (row["seconds"] + row["replies_done_after_s"]), 1
            )
            row["replies_per_post"] = round(
                row["replies_sent"] / max(1, row["posts_per_s"] * row["seconds"]), 2
            )
            result["throughput"].append(row)
            log(
                f"  pywa {per_post}/POST: {row['posts_per_s']} POST/s, p99 {row['p99_ms']} ms, "
                f"replies {row['replies_per_s']}/s, replies/POST {row['replies_per_post']}"
            )
        offset = log_offset(app_log)
        app, url = start_pywa(ctx, pipeline.graph_url, log_dir)
        try:
            sent_before = pipeline.sent_count()
            fixed = fixed_rate(ctx, url, 1000, fixed_duration, "pywa-fixed")
        finally:
            # Whatever pywa accepted (200) but had not handled yet dies with the process.
            app.stop()
        time.sleep(1)
        fixed["replies_failed"] = failed_replies(app, offset)
        fixed["replies_sent"] = pipeline.sent_count() - sent_before
        fixed["accepted_but_lost_on_stop"] = fixed["ok"] - fixed["replies_sent"]
        result["fixed_rate"] = fixed
        log(
            f"  pywa fixed 1000/s: {fixed['achieved_rps']}/s, p99 {fixed['p99_ms']} ms, "
            f"lost on stop {fixed['accepted_but_lost_on_stop']}"
        )
    return result
