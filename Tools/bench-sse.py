#!/usr/bin/env python3
"""SSE fan-out figure for Tools/bench: N clients on GET /v1/signals/stream, then M ingests of one
signal each; for every event, the time from sending the POST until each client has read it.

    bench-sse.py BASE_URL VIEWER_TOKEN INGEST_TOKEN [--clients 1000] [--events 20]

Prints one line: clients, events, delivery latency p50/p99/max (ms), and how many were missed.
Standard library only (asyncio over raw sockets), so it needs no virtualenv.
"""
import argparse
import asyncio
import json
import time
import urllib.parse
import uuid


async def open_stream(host, port, token, ready, arrivals, index, run):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (f"GET /v1/signals/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
         "Accept: text/event-stream\r\n\r\n").encode())
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise SystemExit(f"stream answered {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    chunked_connected = False
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.startswith(b": connected") and not chunked_connected:
            chunked_connected = True
            ready.release()
        elif line.startswith(b"data: ") and run in line:  # only this run's probes
            source_id = json.loads(line[6:])["sourceId"]
            arrivals.setdefault(source_id, {})[index] = time.perf_counter()


async def post_signal(host, port, token, source_id):
    body = json.dumps({"items": [{
        "source": "bench-sse", "sourceId": source_id, "title": "Fan-out probe", "summary": "Live stream benchmark.",
        "category": "security", "severity": "high", "confidence": 0.9, "modelVersion": "bench",
        "tags": [], "publishedAt": "2026-11-26T08:00:00Z"}]}).encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (f"POST /v1/signals HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    await writer.drain()
    status = await reader.readline()
    writer.close()
    if b" 200 " not in status:
        raise SystemExit(f"ingest answered {status!r}")


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("viewer")
    p.add_argument("ingest")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--events", type=int, default=20)
    a = p.parse_args()
    url = urllib.parse.urlparse(a.base)
    host, port = url.hostname, url.port
    ready = asyncio.Semaphore(0)
    arrivals = {}
    run = uuid.uuid4().hex[:8]
    tasks = [asyncio.create_task(open_stream(host, port, a.viewer, ready, arrivals, i, run.encode())) for i in range(a.clients)]
    for _ in range(a.clients):
        await asyncio.wait_for(ready.acquire(), 30)
    sent = {}
    for n in range(a.events):
        source_id = f"{run}-{n}"
        sent[source_id] = time.perf_counter()
        await post_signal(host, port, a.ingest, source_id)
        await asyncio.sleep(0.25)
    await asyncio.sleep(2)
    latencies = []
    missed = 0
    for source_id, t0 in sent.items():
        got = arrivals.get(source_id, {})
        missed += a.clients - len(got)
        latencies += [(t - t0) * 1000 for t in got.values()]
    for t in tasks:
        t.cancel()
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    print(f"{a.clients} clients, {a.events} events: delivery p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, "
          f"max {latencies[-1] if latencies else float('nan'):.1f} ms, missed {missed}")


asyncio.run(main())
