"""End to end: webhooks at 500/s over ten phone numbers paced at 80/s each; webhook scheduled
send time → Graph mock accepted the reply, per webhook (its user is its own ``to``)."""

from __future__ import annotations

import time
from typing import Any

from benchmarks import bodies, prometheus
from benchmarks.isolation import Isolation
from benchmarks.measure import Context, ms, pct, reply_latencies, run_loadgen
from benchmarks.pipeline import APP_SECRET, REPLY_TEXT, Pipeline

_HISTOGRAM = "hiker_end_to_end_latency_seconds"


def run(ctx: Context) -> dict[str, Any]:
    rate = 500
    duration = ctx.seconds(8, 30)
    numbers = [f"1000000000{i:05d}" for i in range(10)]
    pipeline = Pipeline(Isolation(), ctx.out / "logs-e2e", send_rate=80, prefetch=ctx.prefetch)
    with pipeline.iso, pipeline:
        body_file = bodies.write_bodies(
            ctx.out / "bodies-e2e.tsv",
            posts=int(rate * duration),
            secret=APP_SECRET,
            phone_number_ids=numbers,
        )
        before = prometheus.histogram(
            prometheus.scrape(pipeline.metrics_url("sender")), _HISTOGRAM
        )[0]
        report = run_loadgen(
            ctx,
            pipeline.webhook_url,
            body_file,
            rate=rate,
            duration=duration,
            records=True,
            name="e2e-loadgen",
        )
        sent_at = {r["key"]: r["sent_at"] for r in report["records"] if r["status"] == 200}
        deadline = time.monotonic() + 60
        while pipeline.sent_count() < len(sent_at) and time.monotonic() < deadline:
            time.sleep(0.5)
        latencies, _ = reply_latencies(pipeline.graph_url, sent_at, REPLY_TEXT)
        after = prometheus.histogram(prometheus.scrape(pipeline.metrics_url("sender")), _HISTOGRAM)[
            0
        ]
        delta = prometheus.histogram_delta(after, before)
    summary = report["summary"]
    return {
        "rate": rate,
        "seconds": duration,
        "phone_number_ids": len(numbers),
        "pacing_per_number": 80,
        "webhooks_ok": summary["ok"],
        "replies_accepted": len(latencies),
        "lost": summary["ok"] - len(latencies),
        "p50_ms": ms(pct(latencies, 0.5) or 0),
        "p99_ms": ms(pct(latencies, 0.99) or 0),
        "max_ms": ms(max(latencies, default=0)),
        "webhook_p50_ms": round(summary["p50_ms"], 2),
        "webhook_p99_ms": round(summary["p99_ms"], 2),
        "sender_histogram_p50_ms": ms(prometheus.histogram_quantile(delta, 0.5)),
        "sender_histogram_p99_ms": ms(prometheus.histogram_quantile(delta, 0.99)),
        "generator_cpu_share": round(summary["generator_cpu_share"], 3),
        "generator_lag_p99_ms": round(summary["generator_lag_p99_ms"], 2),
        "log_problems": pipeline.log_problems,
    }
