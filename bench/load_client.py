"""A minimal asyncio HTTP/1.1 load generator for `bench/server_load.py`.

httpx drives well under 2,000 requests/s from one core on these machines; this client does the least a
client can: each of `concurrency` keep-alive connections writes a pre-built request (bytes built before
the clock starts) and reads one response (status line, headers, a Content-Length body), one request in
flight per connection. It understands exactly what uvicorn answers (Content-Length bodies, keep-alive);
chunked or connection-closing answers are counted as errors and the connection is reopened.

Two modes: closed loop (every connection sends its next request as soon as the last is answered: the
most the server sustains) and paced (`rate`: request i is due at start + i/rate; the latency of a request
that went out late because every connection was busy is counted from when it was due, so a server that
falls behind cannot hide its queueing: no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    n: int                        # requests attempted
    status: list[int]             # per request: HTTP status, 0 when the connection failed
    sent_wall: list[float]        # per request: time.time() when it was due (paced) or written (closed loop)
    latency_s: list[float]        # per request: answer received - sent (perf_counter), NaN when failed
    bodies: list[bytes] | None    # per request: the response body, when asked to keep them
    started: float = 0.0          # perf_counter at the first send
    finished: float = 0.0         # perf_counter at the last answer
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)  # first few failures, for the report

    @property
    def ok(self) -> int:
        return sum(1 for s in self.status if 200 <= s < 300)

    @property
    def wall_s(self) -> float:
        return self.finished - self.started


def build_request(method: str, path: str, host: str, port: int, headers: dict[str, str],
                  body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class _Conn:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 24)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def roundtrip(self, req: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(req)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"connection" and value.strip().lower() == b"close":
                close = True
            elif lname == b"transfer-encoding":
                raise ValueError(f"unsupported transfer-encoding {value.strip()!r}")
        if length < 0:
            raise ValueError("response without Content-Length")
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body


async def _run(host: str, port: int, requests: list[bytes], concurrency: int, rate: float | None,
               duration_s: float | None, keep_bodies: bool) -> LoadResult:
    n = len(requests)
    nan = float("nan")
    res = LoadResult(n=n, status=[0] * n, sent_wall=[0.0] * n, latency_s=[nan] * n,
                     bodies=[b""] * n if keep_bodies else None)
    conns = [_Conn(host, port) for _ in range(min(concurrency, n))]
    await asyncio.gather(*(c.open() for c in conns))  # connect before the clock starts
    next_i = 0
    stop_at = None
    pc, wall = time.perf_counter, time.time
    t0 = pc()
    wall0 = wall()
    res.started = t0
    last = t0

    async def worker(c: _Conn) -> None:
        nonlocal next_i, last
        while True:
            i = next_i
            if i >= n:
                return
            if stop_at is not None and pc() >= stop_at:
                return
            next_i = i + 1
            if rate is not None:
                due = t0 + i / rate
                delay = due - pc()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent = due  # latency from when it was due, not from when a connection was free
                res.sent_wall[i] = wall0 + (due - t0)
            else:
                sent = pc()
                res.sent_wall[i] = wall0 + (sent - t0)
            try:
                status, body = await c.roundtrip(requests[i])
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                c.close()
                res.reconnects += 1
                if len(res.errors) < 5:
                    res.errors.append(f"request {i}: {type(e).__name__}: {e}")
                continue
            now = pc()
            res.status[i] = status
            res.latency_s[i] = now - sent
            if res.bodies is not None:
                res.bodies[i] = body
            last = max(last, now)
            if not 200 <= status < 300 and len(res.errors) < 5:
                res.errors.append(f"request {i}: HTTP {status}: {body[:200]!r}")

    if duration_s is not None:
        stop_at = t0 + duration_s
    await asyncio.gather(*(worker(c) for c in conns))
    res.finished = last
    res.n = next_i  # requests actually attempted (a duration cap may stop early)
    for c in conns:
        c.close()
    return res


def run_load(host: str, port: int, requests: list[bytes], concurrency: int = 64, rate: float | None = None,
             duration_s: float | None = None, keep_bodies: bool = True) -> LoadResult:
    """Send `requests` over `concurrency` keep-alive connections; uvloop when installed."""
    coro = _run(host, port, requests, concurrency, rate, duration_s, keep_bodies)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)
    return uvloop.run(coro)
