"""A small HTTP/1.1 load generator for the benchmarks: bursts of concurrent requests.

`burst(host, port, requests, processes)` sends every request of `requests` (raw HTTP/1.1
bytes, built and signed before the clock starts) at once, one keep-alive connection per
request, from `processes` client processes (so the client's own CPU is spread out and is
not the server's), and returns each request's latency in milliseconds (from its send to
the end of its answer's headers and body) and its status code.

Every connection is opened, and answered once (`GET /health`), before the burst: the
latency is the request's, not the TCP handshake's. The processes start the burst together
at a time given to them, on the monotonic clock shared by the machine.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from typing import Any


def raw_post(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of one `POST path` with `headers` and `body` (keep-alive)."""
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _client(
    host: str, port: int, requests: list[bytes], start_at: float, ready: Any
) -> list[tuple[float, int]]:
    health = f"GET /health HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode()
    conns = []
    for _ in requests:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(health)
        await writer.drain()
        await _answer(reader)
        conns.append((reader, writer))
    ready.release()

    async def one(conn: tuple[Any, Any], raw: bytes) -> tuple[float, int]:
        reader, writer = conn
        t0 = time.perf_counter()
        writer.write(raw)
        await writer.drain()
        status = await _answer(reader)
        return (time.perf_counter() - t0) * 1000, status

    start = start_at.value  # set by the parent once every process is connected
    while start == 0.0:
        await asyncio.sleep(0.001)
        start = start_at.value
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    done = await asyncio.gather(*(one(c, r) for c, r in zip(conns, requests, strict=True)))
    for _, writer in conns:
        writer.close()
    return list(done)


def _worker(host: str, port: int, requests: list[bytes], start_at: Any, ready: Any, out: Any):
    try:
        out.put(asyncio.run(_client(host, port, requests, start_at, ready)))
    except Exception as exc:  # reported to the parent, which raises it
        out.put(exc)


def burst(
    host: str, port: int, requests: list[bytes], processes: int = 4
) -> tuple[list[float], list[int]]:
    """Send all `requests` at once; (latencies in ms, status codes)."""
    ctx = mp.get_context("spawn")
    start_at = ctx.Value("d", 0.0)
    ready = ctx.Semaphore(0)
    out = ctx.Queue()
    shares = [requests[i::processes] for i in range(processes)]
    procs = [
        ctx.Process(target=_worker, args=(host, port, share, start_at, ready, out))
        for share in shares
        if share
    ]
    for p in procs:
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=120):
            raise RuntimeError("load generator: a client process did not connect in 120 s")
    start_at.value = time.monotonic() + 0.2
    results: list[tuple[float, int]] = []
    for _ in procs:
        got = out.get(timeout=300)
        if isinstance(got, Exception):
            raise RuntimeError(f"load generator: a client process failed: {got!r}") from got
        results += got
    for p in procs:
        p.join()
    return [r[0] for r in results], [r[1] for r in results]
