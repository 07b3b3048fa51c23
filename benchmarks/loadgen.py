"""A small HTTP load generator: open loop (fixed rate, wrk2-style) or closed loop (N in flight).

Open loop (``--rate``, ``--duration``): request i is *scheduled* at ``t0 + i / rate``; its latency
is measured from that scheduled time, not from when it could actually be written, so a stalled
server (or a stalled generator) shows up as latency instead of silently lowering the offered load
(no coordinated omission). Requests go out on their schedule whatever is outstanding: a new
keep-alive connection is opened when none is idle.

Closed loop (``--concurrency``, ``--count``): that many connections each send the next body as
soon as the previous answer came back, until ``count`` were sent; ``sent_at`` is when each was
written. A server that closes the connection after answering (HTTP/1.0, ``Connection: close``)
gets a new one for the next request.

Standalone on purpose (stdlib + optional uvloop): it runs as its own process, normally with the
benchmark venv's Python so that uvloop is there, and reports its own CPU time and schedule lag to
show it was not the bottleneck.

    python loadgen.py --url http://127.0.0.1:PORT/webhook --bodies FILE --rate 1000 --duration 30
    python loadgen.py --url ... --bodies FILE --concurrency 32 --count 4000
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


async def request(conn: Conn, raw: bytes) -> tuple[int, bool]:
    """The answer's status, and whether the server keeps the connection open after it."""
    conn.writer.write(raw)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    keep_alive = head.startswith(b"HTTP/1.1")
    length: int | None = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif lname == b"connection":
            keep_alive = value.strip().lower() == b"keep-alive"
    if chunked:
        while True:
            size = int((await conn.reader.readuntil(b"\r\n")).strip(), 16)
            await conn.reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await conn.reader.readexactly(length)
    elif length is None and not keep_alive:
        await conn.reader.read()  # the body ends with the connection
    return status, keep_alive


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


class Results:
    """What each request did; summarised the same way in both modes."""

    def __init__(self, requests: list[tuple[str, bytes]]) -> None:
        n = len(requests)
        self.requests = requests
        self.sent_at = [0.0] * n  # wall clock: scheduled (open loop) or written (closed loop)
        self.latency: list[float | None] = [None] * n
        self.status = [0] * n
        self.lag = [0.0] * n
        self.errors: dict[str, int] = {}
        self.opened = 0
        self.elapsed = 0.0
        self.cpu = (0.0, 0.0)  # user, system seconds of this process while it sent

    def failed(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def summary(self, args: argparse.Namespace) -> dict[str, object]:
        n, elapsed = len(self.requests), self.elapsed
        ok = sorted(
            v
            for v, s in zip(self.latency, self.status, strict=True)
            if v is not None and 200 <= s < 300
        )
        lags = sorted(self.lag)

        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            return values[min(len(values) - 1, int(q * len(values)))]

        codes: dict[str, int] = {}
        for s in self.status:
            codes[str(s)] = codes.get(str(s), 0) + 1
        user, system = self.cpu
        ends = [self.sent_at[i] + v for i, v in enumerate(self.latency) if v is not None and v >= 0]
        return {
            "mode": "closed" if args.concurrency else "open",
            "rate": args.rate,
            "duration": args.duration,
            "concurrency": args.concurrency,
            "requests": n,
            "ok": len(ok),
            "status": codes,
            "errors": self.errors,
            "elapsed_s": elapsed,
            "first_sent_at": min(self.sent_at, default=0.0),
            "last_answered_at": max(ends, default=0.0),
            "achieved_rps": len(ok) / elapsed if elapsed else 0.0,
            "p50_ms": (pct(ok, 0.50) or 0) * 1000,
            "p90_ms": (pct(ok, 0.90) or 0) * 1000,
            "p99_ms": (pct(ok, 0.99) or 0) * 1000,
            "p999_ms": (pct(ok, 0.999) or 0) * 1000,
            "max_ms": (ok[-1] if ok else 0) * 1000,
            "generator_cpu_s": user + system,
            "generator_user_s": user,
            "generator_system_s": system,
            "generator_cpu_share": (user + system) / elapsed if elapsed else 0.0,
            "generator_lag_p99_ms": (pct(lags, 0.99) or 0) * 1000,
            "connections_opened": self.opened,
            "uvloop": args.uvloop_used,
        }

    def records(self) -> list[dict[str, object]]:
        return [
            {
                "key": self.requests[i][0],
                "sent_at": self.sent_at[i],
                "latency": v if v is not None else -1.0,
                "status": self.status[i],
            }
            for i, v in enumerate(self.latency)
        ]


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _cpu_since(before: tuple[float, float]) -> tuple[float, float]:
    user, system = _cpu()
    return user - before[0], system - before[1]


async def _connect(host: str, port: int, results: Results) -> Conn:
    reader, writer = await asyncio.open_connection(host, port)
    results.opened += 1
    return Conn(reader, writer)


async def run_open(args: argparse.Namespace) -> Results:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    total = int(args.rate * args.duration)
    requests = build_requests(args.url, args.bodies, total)
    if len(requests) < total:
        raise SystemExit(f"only {len(requests)} bodies for {total} requests")
    results = Results(requests)
    # Warm a pool so the first second does not measure connection setup.
    idle = [await _connect(host, port, results) for _ in range(args.connections)]
    sem = asyncio.Semaphore(args.max_connections)
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, t_sched: float) -> None:
        async with sem:
            conn = idle.pop() if idle else None
            try:
                if conn is None:
                    conn = await _connect(host, port, results)
                results.lag[i] = time.perf_counter() - t_sched
                status, keep_alive = await asyncio.wait_for(
                    request(conn, requests[i][1]), args.timeout
                )
                results.status[i] = status
                # asyncio may wake a timer up to its clock resolution early: never below 0.
                results.latency[i] = max(0.0, time.perf_counter() - t_sched)
                if keep_alive:
                    idle.append(conn)
                else:
                    conn.writer.close()
            except Exception as exc:  # counted, never fatal
                results.failed(exc)
                if conn is not None:
                    conn.writer.close()

    cpu0 = _cpu()
    wall0, perf0 = time.time(), time.perf_counter()
    t0 = perf0 + 0.05
    interval = 1.0 / args.rate
    for i in range(total):
        t_sched = t0 + i * interval
        delay = t_sched - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        results.sent_at[i] = wall0 + (t_sched - perf0)
        task = asyncio.create_task(one(i, t_sched))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=args.timeout + 5)
    results.elapsed = time.perf_counter() - t0
    results.cpu = _cpu_since(cpu0)
    for conn in idle:
        conn.writer.close()
    return results


async def run_closed(args: argparse.Namespace) -> Results:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = build_requests(args.url, args.bodies, args.count)
    if len(requests) < args.count:
        raise SystemExit(f"only {len(requests)} bodies for {args.count} requests")
    results = Results(requests)
    conns = [await _connect(host, port, results) for _ in range(args.concurrency)]
    cursor = iter(range(args.count))
    wall0, perf0 = time.time(), time.perf_counter()

    async def worker(conn: Conn | None) -> None:
        for i in cursor:
            try:
                if conn is None:
                    conn = await _connect(host, port, results)
                started = time.perf_counter()
                results.sent_at[i] = wall0 + (started - perf0)
                status, keep_alive = await asyncio.wait_for(
                    request(conn, requests[i][1]), args.timeout
                )
                results.status[i] = status
                results.latency[i] = time.perf_counter() - started
                if not keep_alive:
                    conn.writer.close()
                    conn = None
            except Exception as exc:  # counted, never fatal; the next request gets a new one
                results.failed(exc)
                if conn is not None:
                    conn.writer.close()
                conn = None
        if conn is not None:
            conn.writer.close()

    cpu0 = _cpu()
    await asyncio.gather(*(worker(c) for c in conns))
    results.elapsed = time.perf_counter() - perf0
    results.cpu = _cpu_since(cpu0)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True)
    parser.add_argument("--rate", type=float, help="open loop: requests per second")
    parser.add_argument("--duration", type=float, help="open loop: seconds")
    parser.add_argument("--concurrency", type=int, default=0, help="closed loop: in flight")
    parser.add_argument("--count", type=int, default=0, help="closed loop: requests")
    parser.add_argument("--connections", type=int, default=32, help="open loop: warm pool")
    parser.add_argument("--max-connections", type=int, default=1024)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--records", action="store_true", help="keep per-request records")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not args.concurrency and not (args.rate and args.duration):
        parser.error("give --rate and --duration (open loop) or --concurrency and --count")
    args.uvloop_used = False
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        args.uvloop_used = True
    except ImportError:
        pass
    results = asyncio.run(run_closed(args) if args.concurrency else run_open(args))
    report = {
        "summary": results.summary(args),
        "records": results.records() if args.records else None,
    }
    with open(args.out, "w") as handle:
        json.dump(report, handle)
    print(json.dumps(report["summary"]))


if __name__ == "__main__":
    main()
