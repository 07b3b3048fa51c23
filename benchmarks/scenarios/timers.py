"""Idle timers: many pending in their wait queue (memory per timer), then coming due at a fixed
rate (firing lateness, due → Graph accepted), with every tenth user superseded by a newer message
through ingress beforehand (their timers must fire and cost no Graph call)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks import bodies, preload, prometheus
from benchmarks.isolation import Isolation, node_memory_total
from benchmarks.measure import Context, cpu_report, cpu_snapshot, ms, pct, run_loadgen
from benchmarks.pipeline import APP_SECRET, Pipeline
from benchmarks.processes import log

FOLLOWUP_TEXT = "are you there"


def run(ctx: Context) -> dict[str, Any]:
    """100,000 pending timers coming due at 1,000/s; then a smaller set at half that rate, to
    show the lateness where the machine is not saturated."""
    result = due_at_rate(ctx, 10_000 if ctx.quick else 100_000, 1000.0, "logs-timers")
    slower = due_at_rate(ctx, 5_000 if ctx.quick else 30_000, 500.0, "logs-timers-500")
    keep = ["timers", "due_rate_per_s", "fired_per_s_while_due", "lateness_p50_ms"]
    keep += ["lateness_p99_ms", "due_to_graph_p50_ms", "due_to_graph_p99_ms", "followups_sent"]
    keep += ["followups_expected", "followups_to_superseded_users", "other_graph_calls"]
    result["slower"] = {k: slower[k] for k in keep}
    return result


def due_at_rate(ctx: Context, count: int, due_rate: float, logs: str) -> dict[str, Any]:
    from hiker.core import topology
    from hiker.core.contracts import IdleTimerStarted

    superseded_every = 10
    idle = 600.0  # the configured idle timeout: superseding messages' own timers never fire here
    pnid = bodies.PHONE_NUMBER_ID
    run_id = f"{time.time_ns() % 10**9:09d}"
    users = [f"1{run_id[:4]}{i:010d}" for i in range(count)]
    wamids = [f"wamid.TIMER{run_id}{i:010d}" for i in range(count)]
    result: dict[str, Any] = {"timers": count, "due_rate_per_s": due_rate}
    pipeline = Pipeline(Isolation(), ctx.out / logs, idle_timeout=idle, prefetch=ctx.prefetch)
    with pipeline.iso as iso, pipeline:
        wait_spec = topology.timer_wait_queue(topology.delay_ms(idle))
        time.sleep(1)
        queues_before = iso.queues()
        node_before = node_memory_total()
        now = time.time()
        # What a fired timer is checked against: these wamids are the users' latest messages.
        asyncio.run(
            preload.record_messages(
                iso.redis_prefix, pnid, users, wamids, received_at=now - 1, idle_timeout=idle
            )
        )
        lead = count / 2500 + 25
        first_due = time.time() + lead
        dues = [first_due + i / due_rate for i in range(count)]
        timers = [
            IdleTimerStarted(
                phone_number_id=pnid,
                user=users[i],
                wamid=wamids[i],
                scheduled_at=now,
                due_at=dues[i],
                message_timestamp=int(now),
            )
            for i in range(count)
        ]
        log(
            f"timers: publishing {count} timers into {wait_spec.name} "
            f"(first due in {lead:.0f}s, then {due_rate:.0f}/s)"
        )
        started = time.time()
        min_margin = asyncio.run(preload.publish_timers(iso.amqp_url, wait_spec, timers))
        result["publish_seconds"] = round(time.time() - started, 1)
        result["min_margin_before_due_s"] = round(min_margin, 2)
        queues_after = iso.queues()
        node_after = node_memory_total()
        q_before = queues_before.get(wait_spec.name, {"memory": 0, "messages": 0})
        q_after = queues_after[wait_spec.name]
        result["wait_queue_messages"] = q_after["messages"]
        result["queue_memory_bytes_per_timer"] = round(
            (q_after["memory"] - q_before["memory"]) / count, 1
        )
        if node_before and node_after:
            result["node_memory_bytes_per_timer"] = round((node_after - node_before) / count, 1)
        # Supersede every 10th user by a newer message through ingress, before its timer is due.
        superseded_users = users[::superseded_every]
        sup_file = bodies.write_user_bodies(
            ctx.out / "bodies-supersede.tsv",
            superseded_users,
            text="thanks",
            secret=APP_SECRET,
            phone_number_id=pnid,
        )
        sup_rate = 1000.0
        sup = run_loadgen(
            ctx,
            pipeline.webhook_url,
            sup_file,
            rate=sup_rate,
            duration=len(superseded_users) / sup_rate,
            name="timers-supersede",
        )
        result["superseding_webhooks_ok"] = sup["summary"]["ok"]
        result["superseded_finished_before_first_due_s"] = round(first_due - time.time(), 1)
        # Let them all come due, then drain.
        conv_metrics = pipeline.metrics_url("conversation")
        deadline = dues[-1] + (30 if ctx.quick else 90)
        fired = 0.0
        samples: list[dict[str, Any]] = []
        while time.time() < first_due - 1:
            time.sleep(0.2)
        cpu_before = cpu_snapshot(pipeline)
        cpu_started = time.time()
        while time.time() < deadline:
            fired = (
                prometheus.metric_value(prometheus.scrape(conv_metrics), "hiker_timers_fired_total")
                or 0
            )
            if fired >= count:
                break
            if time.time() > first_due - 2:
                # Where timers wait while they fire: still in the wait queue (broker expiry or
                # dead-lettering behind) or in the fired queue (conversation behind)?
                depth = iso.depths(
                    wait_spec.name,
                    topology.CONVERSATION_TIMERS_QUEUE,
                    topology.SENDER_OUTBOX_QUEUE,
                )
                samples.append(
                    {
                        "t_after_first_due": round(time.time() - first_due, 1),
                        "should_have_fired": max(
                            0, min(count, int((time.time() - first_due) * due_rate))
                        ),
                        "fired_metric": int(fired),
                        "wait_queue": depth[wait_spec.name],
                        "fired_queue": depth[topology.CONVERSATION_TIMERS_QUEUE],
                        "outbox": depth[topology.SENDER_OUTBOX_QUEUE],
                    }
                )
            time.sleep(1)
        result["samples"] = samples
        result["fired_per_s_while_due"] = round(fired / max(1e-9, time.time() - first_due), 1)
        result["cpu_while_due"] = cpu_report(
            cpu_before, cpu_snapshot(pipeline), time.time() - cpu_started, int(fired)
        )
        expected_followups = count - len(superseded_users)
        deadline = time.time() + 60
        while pipeline.sent_count() < expected_followups and time.time() < deadline:
            time.sleep(1)
        time.sleep(2)
        text = prometheus.scrape(conv_metrics)
        buckets, _, _ = prometheus.histogram(text, "hiker_timer_lateness_seconds")
        accepted = pipeline.sent()
    due_of = {users[i]: dues[i] for i in range(count)}
    followups = [m for m in accepted if m["text"] == FOLLOWUP_TEXT]
    to_graph = [m["accepted_at"] - due_of[m["to"]] for m in followups if m["to"] in due_of]
    superseded_set = set(superseded_users)
    result.update(
        {
            "fired": int(fired),
            "superseded_metric": int(
                prometheus.metric_value(text, "hiker_timers_superseded_total") or 0
            ),
            "superseded_expected": len(superseded_users),
            "followups_sent": len(followups),
            "followups_expected": expected_followups,
            "followups_to_superseded_users": sum(1 for m in followups if m["to"] in superseded_set),
            "other_graph_calls": len(accepted) - len(followups),
            "lateness_buckets": buckets,
            "lateness_p50_ms": ms(prometheus.histogram_quantile(buckets, 0.5)),
            "lateness_p99_ms": ms(prometheus.histogram_quantile(buckets, 0.99)),
            "due_to_graph_p50_ms": ms(pct(to_graph, 0.5)),
            "due_to_graph_p99_ms": ms(pct(to_graph, 0.99)),
            "due_to_graph_max_ms": ms(max(to_graph, default=0.0)),
            "log_problems": pipeline.log_problems,
        }
    )
    return result
