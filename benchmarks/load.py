"""What a scenario sends and how it reads what came back: signed webhook bodies, the load tools
(``loadgen.py`` for open loops and counted closed loops, wrk for closed-loop maximum throughput),
and percentiles, of latencies and of Prometheus histograms.

Bodies are one POST per line, ``user<TAB>signature<TAB>body``; every message has its own wamid
and, with one message per POST, its own user, so that the Graph mock's ``to`` names the webhook
a reply answers (end-to-end latency without extra plumbing).
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.support import samples

from benchmarks.harness import APP_SECRET, log
from benchmarks.sides import RESULTS_DIR
from hiker.core.signature import sign
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body

PHONE_NUMBER_ID = "100000000000001"
TOOLS_VENV = RESULTS_DIR / "venv"
TOOLS_REQUIREMENTS = Path(__file__).parent / "requirements-tools.txt"
LOADGEN = Path(__file__).parent / "loadgen.py"


def write_bodies(
    path: Path,
    posts: int,
    *,
    per_post: int = 1,
    text: str = "hello",
    phone_number_ids: tuple[str, ...] = (PHONE_NUMBER_ID,),
) -> Path:
    """``posts`` signed bodies of ``per_post`` text messages, each message from its own user."""
    run, prefix = secrets.randbelow(1000), "wamid.BENCH" + secrets.token_hex(6).upper()
    now, secret, lines = int(time.time()), APP_SECRET.encode(), []
    for post in range(posts):
        numbers = range(post * per_post, (post + 1) * per_post)
        messages = [
            text_message(f"1{run:03d}{n:011d}", text, wamid=f"{prefix}{n:012d}", timestamp=now)
            for n in numbers
        ]
        change = messages_change(
            messages, phone_number_id=phone_number_ids[post % len(phone_number_ids)]
        )
        for contact in change["value"].get("contacts", []):
            # Meta's business-scoped user id (BSUID), sent alongside wa_id; pywa requires it.
            contact["user_id"] = "US." + contact["wa_id"]
        body = encode(webhook_body(change))
        lines.append(f"{messages[0]['from']}\t{sign(secret, body)}\t{body.decode()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def tools_python() -> Path:
    """The benchmark's own venv (pywa, Flask, py-spy, uvloop), created on first use and
    reinstalled whenever the requirements file changes; never the project's dependencies."""
    python = TOOLS_VENV / "bin" / "python"
    stamp = TOOLS_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == TOOLS_REQUIREMENTS.read_text():
        return python
    log(f"installing the benchmark tools into {TOOLS_VENV} (once)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(TOOLS_REQUIREMENTS)], check=True, timeout=900)
    stamp.write_text(TOOLS_REQUIREMENTS.read_text())
    return python


def _load_tool_prefix() -> list[str]:
    """Load tools run a nice level ahead (-5) when allowed: on 2 shared cores a starved
    generator would add its own lag to every latency (it plays Meta, which does not share our
    CPUs). Services keep the default priority."""
    return ["nice", "-n", "-5"] if os.geteuid() == 0 else []


def loadgen(
    url: str,
    bodies: Path,
    *,
    rate: float = 0,
    duration: float = 0,
    concurrency: int = 0,
    count: int = 0,
    records: bool = False,
) -> dict[str, Any]:
    """loadgen.py as its own process: open loop at ``rate`` for ``duration``, or closed loop of
    ``count`` requests at ``concurrency``. Its report: ``summary`` (and ``records``)."""
    report_path = bodies.with_suffix(".report.json")
    argv = [*_load_tool_prefix(), str(tools_python()), str(LOADGEN), "--url", url]
    argv += ["--bodies", str(bodies), "--out", str(report_path)]
    if concurrency:
        argv += ["--concurrency", str(concurrency), "--count", str(count)]
    else:
        argv += ["--rate", str(rate), "--duration", str(duration)]
    argv += ["--records"] if records else []
    subprocess.run(argv, check=True, timeout=duration + 600, stdout=subprocess.DEVNULL)
    report: dict[str, Any] = json.loads(report_path.read_text())
    report_path.unlink()
    return report


_WRK_LUA = r"""
local bodies, sigs, n, i = {}, {}, 0, 0
function init(args)
  for line in io.lines("%(bodies)s") do
    local key, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    n = n + 1; sigs[n] = sig; bodies[n] = body
  end
end
function request()
  i = i %% n + 1
  return wrk.format("POST", "%(path)s",
    {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = sigs[i]}, bodies[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "seconds": %%f, "errors": %%d, ' ..
    '"non_2xx": %%d, "p50_ms": %%f, "p99_ms": %%f}\n', summary.requests,
    summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk(url: str, bodies: Path, *, seconds: float, connections: int) -> dict[str, Any]:
    """wrk, closed loop, one thread, cycling through ``bodies``; requests answered 2xx per
    second, latency percentiles, and wrk's own CPU."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is needed: apt-get install wrk")
    script = bodies.with_suffix(".lua")
    path = "/" + url.split("/", 3)[3]
    script.write_text(_WRK_LUA % {"bodies": bodies, "path": path})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = [*_load_tool_prefix(), "wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s"]
    done = subprocess.run(
        [*argv, "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    ok = result["requests"] - result["errors"] - result["non_2xx"]
    result["ok_per_s"] = round(ok / result["seconds"], 1)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result["wrk_cores"] = round(used / result["seconds"], 3)
    return result


def pct(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def histogram_quantile(after: str, before: str, name: str, q: float) -> float | None:
    """Quantile ``q`` of histogram ``name`` over what was observed between two scrapes, as
    Prometheus' histogram_quantile computes it (linear inside the bucket that holds it)."""
    was = {labels["le"]: value for labels, value in samples(before, f"{name}_bucket")}
    buckets = sorted(
        (float(labels["le"]), value - was.get(labels["le"], 0.0))
        for labels, value in samples(after, f"{name}_bucket")
    )
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    low, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return low
            return le if count == below else low + (le - low) * (rank - below) / (count - below)
        low, below = le, count
    return None


def reply_latencies(
    sent: list[dict[str, Any]], sent_at: dict[str, float], text: str
) -> tuple[list[float], float, int]:
    """Webhook sent → Graph mock accepted its reply, for every reply to a key of ``sent_at``
    (one user per webhook); when the last of them was accepted; users replied more than once."""
    latencies, last, seen, twice = [], 0.0, set(), 0
    for message in sent:
        start = sent_at.get(message["to"])
        if start is not None and message["text"] == text:
            latencies.append(message["accepted_at"] - start)
            last = max(last, message["accepted_at"])
            twice += message["to"] in seen
            seen.add(message["to"])
    return latencies, last, twice
