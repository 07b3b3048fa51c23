"""The component tables: ingress, pywa beside it, end to end, timers, sender, conversation and
the profiles. Each takes every scenario's result and returns Markdown parts (none when its
scenario did not run)."""

from __future__ import annotations

from typing import Any

from benchmarks.report.markdown import table


def ingress(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    ing = s.get("ingress", {})
    if "throughput" in ing:
        parts.append("## Ingress (wrk, closed loop, signed bodies, unique wamids)")
        rows = []
        sets = (
            ("whole pipeline", "throughput"),
            ("whole pipeline, consumers at nice 10", "niced_throughput"),
            ("ingress + broker only", "alone"),
        )
        for label, key in sets:
            found = ing.get(key, [])
            for r in found if isinstance(found, list) else [found]:
                cpu = r.get("cpu", {}).get("ingress", {})
                rows.append(
                    [
                        label,
                        r["messages_per_post"],
                        r["posts_per_s"],
                        r["messages_per_s"],
                        r["p50_ms"],
                        r["p99_ms"],
                        r["non_2xx"] + r["socket_errors"],
                        cpu.get("cores"),
                        cpu.get("cpu_us_per_message"),
                    ]
                )
        parts.append(
            table(
                [
                    "setup",
                    "msgs/POST",
                    "POST/s",
                    "msgs/s",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                    "ingress cores",
                    "ingress CPU µs/msg",
                ],
                rows,
            )
        )
        rows = []
        for label, key in (
            ("whole pipeline", "fixed_rate"),
            ("whole pipeline, consumers at nice 10", "niced_fixed_rate"),
            ("ingress + broker only", "alone_fixed_rate"),
        ):
            f = ing.get(key)
            if f:
                rows.append(
                    [
                        label,
                        f["rate"],
                        f["achieved_rps"],
                        f["p50_ms"],
                        f["p99_ms"],
                        f["p999_ms"],
                        f["max_ms"],
                        f["requests"] - f["ok"],
                        f.get("replies_sent"),
                        f["generator_cpu_share"],
                        f["generator_lag_p99_ms"],
                    ]
                )
        if rows:
            parts.append("Fixed rate (open loop, latency from the scheduled send time):")
            parts.append(
                table(
                    [
                        "setup",
                        "offered/s",
                        "achieved/s",
                        "p50 ms",
                        "p99 ms",
                        "p99.9 ms",
                        "max ms",
                        "failed",
                        "replies sent",
                        "generator cores",
                        "generator lag p99 ms",
                    ],
                    rows,
                )
            )
        whole = ing.get("throughput", [])
        if whole and "cpu" in whole[0]:
            rows = [
                [name, c["cores"], c["cpu_us_per_message"]] for name, c in whole[0]["cpu"].items()
            ]
            parts.append("CPU while the whole pipeline took single-message POSTs at full speed:")
            parts.append(table(["process", "cores", "CPU µs per message"], rows))
        fixed_cpu = ing.get("fixed_rate", {}).get("cpu")
        if fixed_cpu:
            rows = [[name, c["cores"], c["cpu_us_per_message"]] for name, c in fixed_cpu.items()]
            parts.append("CPU while the whole pipeline took 1,000 webhooks/s (fixed rate):")
            parts.append(table(["process", "cores", "CPU µs per message"], rows))
    return parts


def pywa(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    ing = s.get("ingress", {})
    pw = s.get("pywa", {})
    if "throughput" in pw:
        parts.append("## Hiker vs pywa (same machine, same run, same wrk and bodies)")
        hiker = {r["messages_per_post"]: r for r in ing.get("throughput", [])}
        rows = []
        for r in pw["throughput"]:
            h = hiker.get(r["messages_per_post"], {})
            # pywa reads only the first message of a POST (entry[0].changes[0].messages[0]):
            # the messages it takes in per second are its POSTs per second.
            ratio = (h["messages_per_s"] / r["posts_per_s"]) if h and r["posts_per_s"] else None
            rows.append(
                [
                    r["messages_per_post"],
                    h.get("posts_per_s"),
                    h.get("messages_per_s"),
                    h.get("p99_ms"),
                    h.get("replies_per_s"),
                    r["posts_per_s"],
                    r["p99_ms"],
                    r.get("replies_per_s"),
                    r.get("replies_per_post"),
                    r.get("replies_failed"),
                    round(ratio, 2) if ratio else None,
                ]
            )
        parts.append(
            table(
                [
                    "msgs/POST",
                    "Hiker POST/s",
                    "Hiker msgs/s",
                    "Hiker p99 ms",
                    "Hiker replies/s (during)",
                    "pywa POST/s",
                    "pywa p99 ms",
                    "pywa replies/s (to drain)",
                    "pywa replies/POST",
                    "pywa replies failed",
                    "Hiker ÷ pywa (messages taken in/s)",
                ],
                rows,
            )
        )
        f, h = pw.get("fixed_rate"), ing.get("fixed_rate")
        if f:
            rows = [
                [
                    "pywa",
                    f["rate"],
                    f["achieved_rps"],
                    f["p50_ms"],
                    f["p99_ms"],
                    f["requests"] - f["ok"],
                    f.get("replies_sent"),
                    f.get("accepted_but_lost_on_stop"),
                ]
            ]
            if h:
                rows.insert(
                    0,
                    [
                        "Hiker (whole pipeline)",
                        h["rate"],
                        h["achieved_rps"],
                        h["p50_ms"],
                        h["p99_ms"],
                        h["requests"] - h["ok"],
                        h.get("replies_sent"),
                        h["ok"] - h["replies_sent"] if "replies_sent" in h else None,
                    ],
                )
            parts.append(
                table(
                    [
                        "at 1,000/s offered",
                        "rate",
                        "achieved/s",
                        "p50 ms",
                        "p99 ms",
                        "failed/timed out",
                        "replies",
                        "answered 200 but never replied",
                    ],
                    rows,
                )
            )
    return parts


def e2e(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    e = s.get("e2e", {})
    if "p50_ms" in e:
        parts.append(
            f"## End to end at {e['rate']}/s for {e['seconds']} s "
            f"({e['phone_number_ids']} phone number ids, pacing "
            f"{e['pacing_per_number']}/s each)"
        )
        parts.append(
            table(
                [
                    "webhooks",
                    "replies",
                    "lost",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "webhook p99 ms",
                    "sender histogram p50/p99 ms",
                ],
                [
                    [
                        e["webhooks_ok"],
                        e["replies_accepted"],
                        e["lost"],
                        e["p50_ms"],
                        e["p99_ms"],
                        e["max_ms"],
                        e["webhook_p99_ms"],
                        f"{e['sender_histogram_p50_ms']} / {e['sender_histogram_p99_ms']}",
                    ]
                ],
            )
        )
    return parts


def timers(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    t = s.get("timers", {})
    if "fired" in t:
        parts.append(f"## Idle timers: {t['timers']:,} pending, due at {t['due_rate_per_s']:.0f}/s")
        parts.append(
            table(
                ["metric", "value"],
                [
                    [
                        "wait queue memory per pending timer (bytes)",
                        t["queue_memory_bytes_per_timer"],
                    ],
                    [
                        "broker node memory per pending timer (bytes)",
                        t.get("node_memory_bytes_per_timer"),
                    ],
                    ["publish time for all timers (s)", t["publish_seconds"]],
                    ["fired", t["fired"]],
                    ["fired per second while due (all)", t.get("fired_per_s_while_due")],
                    [
                        "superseded (metric / expected)",
                        f"{t['superseded_metric']} / {t['superseded_expected']}",
                    ],
                    [
                        "follow-ups sent (Graph mock / expected)",
                        f"{t['followups_sent']} / {t['followups_expected']}",
                    ],
                    ["follow-ups to superseded users", t["followups_to_superseded_users"]],
                    ["other Graph calls", t["other_graph_calls"]],
                    [
                        "firing lateness p50 / p99 ms (hiker_timer_lateness_seconds)",
                        f"{t['lateness_p50_ms']} / {t['lateness_p99_ms']}",
                    ],
                    [
                        "due → Graph accepted p50 / p99 / max ms",
                        f"{t['due_to_graph_p50_ms']} / {t['due_to_graph_p99_ms']} / "
                        f"{t['due_to_graph_max_ms']}",
                    ],
                ],
            )
        )
        slower = t.get("slower")
        if slower:
            x = slower
            sentences = [
                f"The same with {x['timers']:,} timers due at {x['due_rate_per_s']:.0f}/s:",
                f"fired {x['fired_per_s_while_due']}/s,",
                f"lateness p50 / p99 {x['lateness_p50_ms']} / {x['lateness_p99_ms']} ms,",
                f"due → Graph accepted p50 / p99 {x['due_to_graph_p50_ms']} /",
                f"{x['due_to_graph_p99_ms']} ms,",
                f"follow-ups {x['followups_sent']} / {x['followups_expected']},",
                f"to superseded users {x['followups_to_superseded_users']},",
                f"other Graph calls {x['other_graph_calls']}.",
            ]
            parts.append(" ".join(sentences))
        if t.get("cpu_while_due"):
            rows = [[n, c["cores"], c["cpu_us_per_message"]] for n, c in t["cpu_while_due"].items()]
            parts.append("CPU while the timers came due:")
            parts.append(table(["process", "cores", "CPU µs per timer"], rows))
    return parts


def sender(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    snd = s.get("sender", {})
    if "unpaced" in snd:
        parts.append("## Sender (SendMessage commands pre-loaded in the outbox, Graph mock)")
        rows = [
            [
                k,
                r["configured_rate"],
                r["commands"],
                r["sent"],
                r["sends_per_s"],
                r["per_second_min"],
                r["per_second_max"],
                r.get("deviation_pct"),
                r["sender_cores"],
                r.get("cpu_us_per_message"),
            ]
            for k, r in snd.items()
            if isinstance(r, dict)
        ]
        parts.append(
            table(
                [
                    "pacing",
                    "configured/s",
                    "commands",
                    "sent",
                    "sends/s",
                    "min/s",
                    "max/s",
                    "deviation %",
                    "sender cores",
                    "CPU µs per send",
                ],
                rows,
            )
        )
    return parts


def conversation(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    conv = s.get("conversation", {})
    if "messages_per_s" in conv:
        parts.append("## Conversation (MessageReceived `hello` events pre-loaded, no sender)")
        parts.append(
            table(
                ["messages", "left", "messages/s", "conversation cores", "CPU µs per message"],
                [
                    [
                        conv["messages"],
                        conv["left"],
                        conv["messages_per_s"],
                        conv["conversation_cores"],
                        conv["cpu_us_per_message"],
                    ]
                ],
            )
        )
    return parts


def profile(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    p = s.get("profile", {})
    for name, prof in p.get("services", {}).items():
        parts.append(
            f"## {name} profile (py-spy, {prof['samples']} samples, whole pipeline at "
            f"{p['rate']:,.0f} webhooks/s)"
        )
        parts.append(table(["area", "% of samples"], [list(x) for x in prof["areas_pct"]]))
        rows = [list(x) for x in prof["self_pct"][:12]]
        parts.append(table(["function (self time)", "%"], rows))
    return parts
