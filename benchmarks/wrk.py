"""Closed-loop maximum throughput with wrk (Debian's ``wrk``), cycling through signed bodies.

Each wrk thread takes every n-th body of the file so no two requests share a wamid; the Lua
``done`` hook prints a JSON summary that is parsed here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.processes import load_tool_prefix

LUA = r"""
local bodies_path = "%(bodies)s"
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  thread:set("nthreads", %(threads)d)
  counter = counter + 1
  table.insert(threads, thread)
end

local sigs, bodies, n, i = {}, {}, 0, 0

function init(args)
  local tid, nth = tonumber(tid), tonumber(nthreads)
  local k = 0
  for line in io.lines(bodies_path) do
    if k %% nth == tid then
      local key, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      n = n + 1
      sigs[n] = sig
      bodies[n] = body
    end
    k = k + 1
  end
end

function request()
  i = i + 1
  if i > n then i = 1; wrapped = 1 end
  return wrk.format("POST", "%(path)s", {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = sigs[i],
  }, bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect_errors": %%d, ' ..
    '"read_errors": %%d, "write_errors": %%d, "status_errors": %%d, "timeouts": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    bodies: Path,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    workdir: Path,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    script = workdir / f"wrk-{bodies.stem}.lua"
    script.write_text(LUA % {"bodies": str(bodies), "threads": threads, "path": path})
    done = subprocess.run(
        [
            *load_tool_prefix(),
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{int(duration)}s",
            "--timeout",
            f"{int(timeout_s)}s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    seconds = result["duration_us"] / 1e6
    errors = (
        result["connect_errors"]
        + result["read_errors"]
        + result["write_errors"]
        + result["timeouts"]
    )
    good = result["requests"] - result["status_errors"] - errors
    result["ok_rps"] = good / seconds if seconds else 0.0
    result["rps"] = result["requests"] / seconds if seconds else 0.0
    result["errors"] = errors
    return result
