"""A small open-loop (fixed-rate) HTTP load generator, wrk2-style, without coordinated omission.

Request i is *scheduled* at ``t0 + i / rate``; its latency is measured from that scheduled time,
not from when it could actually be written, so a stalled server (or a stalled generator) shows up
as latency instead of silently lowering the offered load. Requests go out on their schedule
whatever is outstanding: a new keep-alive connection is opened when none is idle.

Standalone on purpose (stdlib + optional uvloop): it runs as its own process, normally with the
benchmark venv's Python so that uvloop is there, and reports its own CPU time and schedule lag to
show it was not the bottleneck.

    python loadgen.py --url http://127.0.0.1:PORT/webhook --bodies FILE --rate 1000 --duration 30
Writes a JSON report (summary + per-request records) to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from urllib.parse import urlsplit


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


async def request(conn: Conn, raw: bytes) -> int:
    conn.writer.write(raw)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await conn.reader.readuntil(b"\r\n")).strip(), 16)
            await conn.reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await conn.reader.readexactly(length)
    return status


def build_requests(url: str, path_file: str, limit: int) -> list[tuple[str, bytes]]:
    parts = urlsplit(url)
    host = parts.netloc
    target = parts.path or "/"
    out: list[tuple[str, bytes]] = []
    with open(path_file, "rb") as handle:
        for line in handle:
            if len(out) >= limit:
                break
            key, signature, body = line.rstrip(b"\n").split(b"\t", 2)
            head = (
                f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"X-Hub-Signature-256: {signature.decode()}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            out.append((key.decode(), head + body))
    return out


async def run(args: argparse.Namespace) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    total = int(args.rate * args.duration)
    requests = build_requests(args.url, args.bodies, total)
    if len(requests) < total:
        raise SystemExit(f"only {len(requests)} bodies for {total} requests")
    idle: list[Conn] = []
    opened = 0
    # Warm a pool so the first second does not measure connection setup.
    for _ in range(args.connections):
        reader, writer = await asyncio.open_connection(host, port)
        idle.append(Conn(reader, writer))
        opened += 1
    scheduled = [0.0] * total
    latency: list[float | None] = [None] * total
    status = [0] * total
    lag = [0.0] * total
    errors: dict[str, int] = {}
    sem = asyncio.Semaphore(args.max_connections)
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, t_sched: float) -> None:
        nonlocal opened
        async with sem:
            conn = idle.pop() if idle else None
            try:
                if conn is None:
                    reader, writer = await asyncio.open_connection(host, port)
                    conn = Conn(reader, writer)
                    opened += 1
                lag[i] = time.perf_counter() - t_sched
                status[i] = await asyncio.wait_for(request(conn, requests[i][1]), args.timeout)
                # asyncio may wake a timer up to its clock resolution early: never below 0.
                latency[i] = max(0.0, time.perf_counter() - t_sched)
                idle.append(conn)
            except Exception as exc:  # counted, never fatal
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
                if conn is not None:
                    conn.writer.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0, perf0 = time.time(), time.perf_counter()
    t0 = perf0 + 0.05
    interval = 1.0 / args.rate
    for i in range(total):
        t_sched = t0 + i * interval
        delay = t_sched - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        scheduled[i] = wall0 + (t_sched - perf0)
        task = asyncio.create_task(one(i, t_sched))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=args.timeout + 5)
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for conn in idle:
        conn.writer.close()
    ok = [v for v, s in zip(latency, status, strict=True) if v is not None and 200 <= s < 300]
    ok.sort()
    lags = sorted(lag)

    def pct(values: list[float], q: float) -> float | None:
        if not values:
            return None
        return values[min(len(values) - 1, int(q * len(values)))]

    codes: dict[str, int] = {}
    for s in status:
        codes[str(s)] = codes.get(str(s), 0) + 1
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    summary = {
        "rate": args.rate,
        "duration": args.duration,
        "requests": total,
        "ok": len(ok),
        "status": codes,
        "errors": errors,
        "elapsed_s": elapsed,
        "achieved_rps": len(ok) / elapsed if elapsed else 0.0,
        "p50_ms": (pct(ok, 0.50) or 0) * 1000,
        "p90_ms": (pct(ok, 0.90) or 0) * 1000,
        "p99_ms": (pct(ok, 0.99) or 0) * 1000,
        "p999_ms": (pct(ok, 0.999) or 0) * 1000,
        "max_ms": (ok[-1] if ok else 0) * 1000,
        "generator_cpu_s": cpu,
        "generator_cpu_share": cpu / elapsed if elapsed else 0.0,
        "generator_lag_p99_ms": (pct(lags, 0.99) or 0) * 1000,
        "connections_opened": opened,
        "uvloop": args.uvloop_used,
    }
    records = None
    if args.records:
        records = [
            {
                "key": requests[i][0],
                "sent_at": scheduled[i],
                "latency": latency[i] if latency[i] is not None else -1.0,
                "status": status[i],
            }
            for i in range(total)
        ]
    return {"summary": summary, "records": records}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--connections", type=int, default=32, help="warm pool")
    parser.add_argument("--max-connections", type=int, default=1024)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--records", action="store_true", help="keep per-request records")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    args.uvloop_used = False
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        args.uvloop_used = True
    except ImportError:
        pass
    report = asyncio.run(run(args))
    with open(args.out, "w") as handle:
        json.dump(report, handle)
    print(json.dumps(report["summary"]))


if __name__ == "__main__":
    main()
