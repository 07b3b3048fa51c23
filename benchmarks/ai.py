"""``ai``: does a slow model hold up the rules? The rules reply's p99 (webhook sent → Graph
mock accepted ``hello to you too``) at a steady rate, first with the AI responder on and idle,
then while about 50 users at a time wait on a model that takes 3 s to answer each turn (new
users keep coming, 50 every 3 s, so that 50 are always waiting).

The model is a stand-in in this process (a threaded HTTP server sleeping 3 s per call), asked by
conversation's AI consumer through ``tests.integration.ai_conversation`` (conversation with a
minimal HTTP model client): what is measured is conversation's consumers, not a model client.
Runs on the current tree only (the AI responder is new).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support import free_port

from benchmarks.context import Context, Result
from benchmarks.harness import REPLY_TEXT, Pipeline, log, wait_for
from benchmarks.load import loadgen, ms, pct, reply_latencies, write_bodies

MODEL_SECONDS = 3.0
WAITING_USERS = 50
RULES_RATE = 100.0  # hellos per second, open loop
AI_TEXT = "tell me about your opening hours"


class _SlowModel(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        time.sleep(MODEL_SECONDS)
        last = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        answer = json.dumps({"text": f"model: {last}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: Any) -> None:
        return None


@contextlib.contextmanager
def _slow_model() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _SlowModel)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/complete"
    finally:
        server.shutdown()
        server.server_close()


def _rules_p99(ctx: Context, pipeline: Pipeline, label: str, duration: float) -> dict[str, Any]:
    """Hellos from new users at ``RULES_RATE`` for ``duration``; their replies' latencies."""
    bodies = write_bodies(ctx.out / f"ai-rules-{label}.tsv", int(RULES_RATE * duration))
    report = loadgen(pipeline.webhook_url, bodies, rate=RULES_RATE, duration=duration, records=True)
    sent_at = {r["key"]: r["sent_at"] for r in report["records"] if r["status"] == 200}

    def replied() -> float:
        return len(reply_latencies(pipeline.sent(), sent_at, REPLY_TEXT)[0])

    wait_for(replied, len(sent_at), stall=15, limit=120)
    latencies, _, _ = reply_latencies(pipeline.sent(), sent_at, REPLY_TEXT)
    return {
        "hellos": len(sent_at),
        "replies": len(latencies),
        "p50_ms": ms(pct(latencies, 0.5)),
        "p99_ms": ms(pct(latencies, 0.99)),
    }


def ai(ctx: Context) -> Result:
    if ctx.side.name != "current":
        return {"figures": {}, "skipped": "the AI responder is new: current tree only"}
    duration = ctx.seconds(6, 30)
    with _slow_model() as model_url:
        env = ctx.env(
            HIKER_AI_BASE_URL="http://model.bench/v1",
            HIKER_AI_MODEL="bench",
            HIKER_AI_DEBOUNCE_MS="250",
            HIKER_AI_TIMEOUT_SECONDS="20",
            HIKER_TEST_MODEL_URL=model_url,
        )
        commands = {"conversation": ("tests.integration.ai_conversation",)}
        with Pipeline(ctx.side, ctx.out / "logs-ai", env=env, commands=commands) as pipeline:
            idle = _rules_p99(ctx, pipeline, "idle", duration)
            log(f"ai: rules p99 {idle['p99_ms']} ms with the model idle")
            # 50 new users every 3 s, each waiting 3 s on the model: 50 waiting at any time.
            ai_rate = WAITING_USERS / MODEL_SECONDS
            ai_bodies = write_bodies(
                ctx.out / "ai-waiting.tsv", int(ai_rate * (duration + 6)), text=AI_TEXT
            )
            waiting = threading.Thread(
                target=loadgen,
                args=(pipeline.webhook_url, ai_bodies),
                kwargs={"rate": ai_rate, "duration": duration + 6},
            )
            waiting.start()
            time.sleep(MODEL_SECONDS + 1)  # until the first 50 are waiting on the model
            busy = _rules_p99(ctx, pipeline, "busy", duration)
            waiting.join()
            log(f"ai: rules p99 {busy['p99_ms']} ms with {WAITING_USERS} users on the model")
            answered = sum(1 for m in pipeline.sent() if str(m["text"]).startswith("model: "))
    figures = {
        "rules reply p99 ms, model idle": idle["p99_ms"],
        f"rules reply p99 ms, {WAITING_USERS} users on a 3 s model": busy["p99_ms"],
        "rules reply p50 ms, model idle / busy": (idle["p50_ms"], busy["p50_ms"]),
        "rules replies lost, idle / busy": (
            idle["hellos"] - idle["replies"],
            busy["hellos"] - busy["replies"],
        ),
        "AI turns answered while measured": answered,
    }
    return {"figures": figures, "idle": idle, "busy": busy, "seconds": duration}
