"""Render a results dict as Markdown tables: one section per scenario, and with ``--baseline``
the before/after medians first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 10:
            return f"{v:,.1f}"
        return f"{v:.2f}" if abs(v) >= 0.1 or v == 0 else f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    parts = [
        f"# Hiker benchmarks ({'quick' if results['quick'] else 'full'} run {results['started']})",
        f"{m['cpus']} CPUs, load average at start {m['load_avg_at_start'][0]:.2f}, "
        f"at end {m['load_avg_at_end'][0]:.2f}; Python {m['python']}; {results['seconds']} s.",
    ]
    if results.get("interrupted"):
        parts.append("**Interrupted**: only what finished before the interruption is shown.")
    current = results.get("current", {})
    before = results.get("baseline")
    if before:
        parts.append(
            f"**Before**: services of {before['label']}. **After**: the current tree, "
            f"{current.get('label')}. Interleaved runs, medians."
        )
        parts += _comparison(results)
    elif current:
        parts.append(f"Services of {current.get('label')} ({current.get('hiker_file')}).")
    repeated = [
        f"{n} ({r['repeats']})" for n, r in results["scenarios"].items() if r.get("repeats")
    ]
    if repeated:
        parts.append(f"Medians of several runs: {', '.join(repeated)}.")
    parts += _sections(results["scenarios"], before["scenarios"] if before else None)
    if before:
        parts.append(f"# Before: {before['label']}")
        parts += _sections(before["scenarios"], None)
    scenario_sets = [("", results["scenarios"])]
    if before:
        scenario_sets.append(("before: ", before["scenarios"]))
    problems = [
        f"- {prefix}{name}: {count} x {what}"
        for prefix, found in scenario_sets
        for name, r in found.items()
        for what, count in sorted(_log_problems(r).items())
    ]
    if problems:
        parts.append("## Warnings and errors the services logged\n" + "\n".join(problems))
    errors = [
        f"- {prefix}{name}: {r['error']}"
        for prefix, found in scenario_sets
        for name, r in found.items()
        if "error" in r
    ]
    if errors:
        parts.append("## Errors\n" + "\n".join(errors))
    return "\n\n".join(parts) + "\n"


def _log_problems(result: dict[str, Any]) -> dict[str, int]:
    """Log problems of a scenario, wherever in its result its pipelines reported them."""
    found: dict[str, int] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "log_problems" and isinstance(inner, dict):
                    for what, count in inner.items():
                        found[what] = found.get(what, 0) + count
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(result)
    return found


def _sections(s: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    parts: list[str] = []
    parts += _cost(s.get("cost", {}), (before or {}).get("cost"))
    parts += _replies(s.get("replies", {}))
    for section in (_ingress, _pywa, _e2e, _timers, _sender, _conversation, _profile):
        parts += section(s)
    return parts


def _ingress(s: dict[str, Any]) -> list[str]:
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
            _table(
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
                _table(
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
            parts.append(_table(["process", "cores", "CPU µs per message"], rows))
        fixed_cpu = ing.get("fixed_rate", {}).get("cpu")
        if fixed_cpu:
            rows = [[name, c["cores"], c["cpu_us_per_message"]] for name, c in fixed_cpu.items()]
            parts.append("CPU while the whole pipeline took 1,000 webhooks/s (fixed rate):")
            parts.append(_table(["process", "cores", "CPU µs per message"], rows))
    return parts


def _pywa(s: dict[str, Any]) -> list[str]:
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
            _table(
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
                _table(
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


def _e2e(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    e = s.get("e2e", {})
    if "p50_ms" in e:
        parts.append(
            f"## End to end at {e['rate']}/s for {e['seconds']} s "
            f"({e['phone_number_ids']} phone number ids, pacing "
            f"{e['pacing_per_number']}/s each)"
        )
        parts.append(
            _table(
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


def _timers(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    t = s.get("timers", {})
    if "fired" in t:
        parts.append(f"## Idle timers: {t['timers']:,} pending, due at {t['due_rate_per_s']:.0f}/s")
        parts.append(
            _table(
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
            parts.append(_table(["process", "cores", "CPU µs per timer"], rows))
    return parts


def _sender(s: dict[str, Any]) -> list[str]:
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
            _table(
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


def _conversation(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    conv = s.get("conversation", {})
    if "messages_per_s" in conv:
        parts.append("## Conversation (MessageReceived `hello` events pre-loaded, no sender)")
        parts.append(
            _table(
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


def _profile(s: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    p = s.get("profile", {})
    for name, prof in p.get("services", {}).items():
        parts.append(
            f"## {name} profile (py-spy, {prof['samples']} samples, whole pipeline at "
            f"{p['rate']:,.0f} webhooks/s)"
        )
        parts.append(_table(["area", "% of samples"], [list(x) for x in prof["areas_pct"]]))
        rows = [list(x) for x in prof["self_pct"][:12]]
        parts.append(_table(["function (self time)", "%"], rows))
    return parts


_COST_ROWS = (
    ("ingress", "ingress"),
    ("conversation", "conversation"),
    ("sender", "sender"),
    ("rabbitmq", "RabbitMQ (node)"),
    ("redis", "Redis"),
    (None, "**pipeline**"),
    ("graph-mock", "Graph mock (bench)"),
    ("loadgen", "load generator (bench)"),
)


def _cost_cpu(rate: dict[str, Any], process: str | None) -> dict[str, Any]:
    found: dict[str, Any] = rate["pipeline"] if process is None else rate["cpu"].get(process, {})
    return found


def _cost(c: dict[str, Any], before: dict[str, Any] | None = None) -> list[str]:
    if "rates" not in c:
        return []
    rates = c["rates"]
    parts = [
        f"## CPU per served message ({c['duration_s']:.0f} s at each offered rate, each user "
        "says hello once, replies unpaced)",
        "CPU-ms (utime + stime from /proc) of each process from the start of the load to the "
        "last reply, divided by the replies that reached the Graph mock; pipeline = ingress + "
        "conversation + sender + RabbitMQ + Redis."
        + (f" Median of {c['repeats']} runs." if c.get("repeats") else ""),
    ]
    headers = ["CPU ms per reply"]
    for r in rates:
        headers += [f"{r['rate']:,.0f}/s", "user", "system", "cores"]
    rows = []
    for process, label in _COST_ROWS:
        row: list[Any] = [label]
        for r in rates:
            cpu = _cost_cpu(r, process)
            row += [
                cpu.get("ms_per_reply"),
                cpu.get("user_ms_per_reply"),
                cpu.get("system_ms_per_reply"),
                cpu.get("cores"),
            ]
        rows.append(row)
    parts.append(_table(headers, rows))
    if before and "rates" in before:
        old = {r["rate"]: r for r in before["rates"]}
        headers = ["CPU ms per reply"]
        for r in rates:
            headers += [f"{r['rate']:,.0f}/s before", "after", "change"]
        rows = []
        for process, label in _COST_ROWS:
            row = [label]
            for r in rates:
                was = (
                    _cost_cpu(old[r["rate"]], process).get("ms_per_reply")
                    if r["rate"] in old
                    else None
                )
                now = _cost_cpu(r, process).get("ms_per_reply")
                row += [was, now, _change(was, now)]
            rows.append(row)
        parts.append("Before and after (medians):")
        parts.append(_table(headers, rows))
    rows = [
        [
            round(r["rate"]),
            f"{r['webhooks_ok']:,} / {r['webhooks']:,}",
            r["replies"],
            r["lost"],
            r["seconds_to_last_reply"],
            r["replies_per_s"],
            r["e2e_p50_ms"],
            r["e2e_p99_ms"],
            r["e2e_max_ms"],
            r["webhook_p99_ms"],
            r["generator_lag_p99_ms"],
            " + ".join(f"{v:.2f}" for v in r.get("background_cores", {}).values()) or None,
            r.get("background_ms_per_reply"),
        ]
        for r in rates
    ]
    parts.append(
        _table(
            [
                "offered/s",
                "webhooks 200 / sent",
                "replies",
                "lost",
                "s to last reply",
                "replies/s",
                "e2e p50 ms",
                "e2e p99 ms",
                "e2e max ms",
                "webhook p99 ms",
                "generator lag p99 ms",
                "RabbitMQ + Redis cores idle",
                "of which others' (ms/reply)",
            ],
            rows,
        )
    )
    parts.append(
        "e2e: the webhook's scheduled send time → the Graph mock accepted its reply. Idle: the "
        "shared servers' CPU while this run sent them nothing (before the load and after the "
        "last reply), others' work that their rows above include; the last column is that "
        "idle CPU over the window, per reply (an estimate)."
    )
    return parts


_SYSTEMS = (
    ("hiker", "Hiker (whole pipeline)"),
    ("pywa", "pywa 4.5 (FastAPI + uvicorn)"),
    ("seed", "seed design (Flask threaded server, inline reply)"),
)


def _replies(r: dict[str, Any]) -> list[str]:
    if "systems" not in r:
        return []
    rows = []
    for key, label in _SYSTEMS:
        x = r["systems"].get(key)
        if not x or "replies" not in x:
            continue
        cpu = x.get("cpu_ms_per_reply", {})
        rows.append(
            [
                label,
                x["replies_per_s"],
                x["replies"],
                x["lost"],
                x["webhook_failures"],
                x["seconds"],
                x["webhook_p50_ms"],
                x["webhook_p99_ms"],
                x["e2e_p50_ms"],
                x["e2e_p99_ms"],
                x["system_ms_per_reply"],
                cpu.get("graph-mock"),
                cpu.get("loadgen"),
            ]
        )
    parts = [
        f"## Replies served per second ({r['count']:,} hellos, one user each, closed loop at "
        f"concurrency {r['concurrency']})",
        "From the first request to the last reply the Graph mock accepted. CPU ms per reply: "
        "Hiker's whole pipeline (ingress, conversation, sender, RabbitMQ, Redis), or the app's "
        "one process.",
        _table(
            [
                "system",
                "replies/s",
                "replies",
                "lost (200, no reply)",
                "webhooks failed",
                "seconds",
                "webhook p50 ms",
                "webhook p99 ms",
                "e2e p50 ms",
                "e2e p99 ms",
                "CPU ms per reply",
                "Graph mock ms/reply",
                "generator ms/reply",
            ],
            rows,
        ),
    ]
    ratios = [
        f"Hiker ÷ {name}: **{r[f'hiker_over_{name}']:.2f}x**"
        for name in ("pywa", "seed")
        if r.get(f"hiker_over_{name}")
    ]
    if ratios:
        parts.append("; ".join(ratios) + " (replies per second).")
    return parts


# --- before / after -------------------------------------------------------------------------

Getter = Callable[[dict[str, Any]], Any]


def _at(*path: Any) -> Getter:
    def get(result: dict[str, Any]) -> Any:
        value: Any = result
        for step in path:
            if isinstance(step, int):
                value = value[step] if isinstance(value, list) and len(value) > step else None
            elif isinstance(value, dict):
                value = value.get(step)
            else:
                return None
        return value

    return get


def _cost_headlines(result: dict[str, Any]) -> list[tuple[str, Getter]]:
    rows: list[tuple[str, Getter]] = []
    for i, r in enumerate(result.get("rates", [])):
        rate = f"{r['rate']:,.0f}/s"
        rows.append(
            (f"pipeline CPU ms per reply at {rate}", _at("rates", i, "pipeline", "ms_per_reply"))
        )
        rows.append((f"e2e p99 ms at {rate}", _at("rates", i, "e2e_p99_ms")))
        rows.append((f"replies lost at {rate}", _at("rates", i, "lost")))
    return rows


_HEADLINES: dict[str, Callable[[dict[str, Any]], list[tuple[str, Getter]]]] = {
    "cost": _cost_headlines,
    "replies": lambda _: [
        ("Hiker replies/s", _at("systems", "hiker", "replies_per_s")),
        ("Hiker CPU ms per reply", _at("systems", "hiker", "system_ms_per_reply")),
        ("Hiker replies lost", _at("systems", "hiker", "lost")),
    ],
    "ingress": lambda _: [
        ("whole pipeline, 1-message POST/s", _at("throughput", 0, "posts_per_s")),
        ("ingress + broker, 1-message POST/s", _at("alone", 0, "posts_per_s")),
        ("whole pipeline at 1,000/s: webhook p99 ms", _at("fixed_rate", "p99_ms")),
    ],
    "e2e": lambda _: [
        ("e2e p50 ms", _at("p50_ms")),
        ("e2e p99 ms", _at("p99_ms")),
        ("replies lost", _at("lost")),
    ],
    "timers": lambda _: [
        ("fired/s while due", _at("fired_per_s_while_due")),
        ("lateness p99 ms", _at("lateness_p99_ms")),
        ("at half the rate: lateness p99 ms", _at("slower", "lateness_p99_ms")),
    ],
    "sender": lambda _: [
        ("unpaced sends/s", _at("unpaced", "sends_per_s")),
        ("unpaced CPU µs per send", _at("unpaced", "cpu_us_per_message")),
        ("paced 80/s deviation %", _at("paced_80", "deviation_pct")),
    ],
    "conversation": lambda _: [
        ("messages/s", _at("messages_per_s")),
        ("CPU µs per message", _at("cpu_us_per_message")),
    ],
}


def _comparison(results: dict[str, Any]) -> list[str]:
    before = results["baseline"]["scenarios"]
    after = results["scenarios"]
    runs_before = results.get("baseline_runs", {})
    runs_after = results.get("current_runs", {})
    rows = []
    for name, headlines in _HEADLINES.items():
        if name not in before or name not in after:
            continue
        for label, get in headlines(after[name]):
            was, now = get(before[name]), get(after[name])
            rows.append(
                [
                    name,
                    label,
                    _with_range(was, [get(r) for r in runs_before.get(name, [])]),
                    _with_range(now, [get(r) for r in runs_after.get(name, [])]),
                    _change(was, now),
                ]
            )
    if not rows:
        return []
    return [
        "## Before / after (medians; the range of the runs in brackets)",
        _table(["scenario", "figure", "before", "after", "change"], rows),
    ]


def _with_range(median: Any, runs: list[Any]) -> str:
    numbers = [r for r in runs if isinstance(r, int | float)]
    if len(numbers) < 2:
        return _cell(median)
    return f"{_cell(median)} ({_cell(min(numbers))} to {_cell(max(numbers))})"


def _change(was: Any, now: Any) -> str | None:
    if not isinstance(was, int | float) or not isinstance(now, int | float) or not was:
        return None
    return f"{(now - was) / abs(was) * 100:+.0f} %"
