#!/usr/bin/env python3
"""Treasury upload figure for Tools/bench: streams generated position files of growing size to
POST /v1/treasury/uploads (chunked, as a browser or curl would send a big file) while sampling
the server's RSS, so "memory stays flat whatever the file size" is a measured claim.

    bench-upload.py BASE_URL ADMIN_TOKEN SERVER_PID [--rows 100000 500000]

Prints one line per file: rows, MB, seconds, rows/s, and the server's RSS before and at its peak
during the upload. Standard library only.
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse
import uuid

HEADER = b"entity,bank,account_ref,currency,balance,value_date\n"
CURRENCIES = ["AED", "USD", "EUR", "GBP", "SAR"]


def rows(count, salt):
    """The file in 64 KiB pieces, never whole in memory here either."""
    piece = bytearray(HEADER)
    for i in range(count):
        cents = (i * 7919 + salt) % 100_000_000
        piece += (f"Entity {i % 40},\"Bank {i % 9}, Main\",ACC-{salt}-{i},{CURRENCIES[i % 5]},"
                  f"{cents // 100}.{cents % 100:02d},2025-03-06\n").encode()
        if len(piece) >= 65536:
            yield bytes(piece)
            piece.clear()
    if piece:
        yield bytes(piece)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def upload(base, token, pid, count):
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    salt = uuid.uuid4().int % 1_000_000
    sent = [0]

    def counted():
        for piece in rows(count, salt):
            sent[0] += len(piece)
            yield piece

    before = rss_kib(pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    conn.request("POST", f"/v1/treasury/uploads?fileName=bench-{count}.csv", body=counted(),
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}, encode_chunked=True)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.monotonic() - t0
    done.set()
    sampler.join()
    if response.status != 201:
        raise SystemExit(f"upload of {count} rows answered {response.status}: {body[:300]!r}")
    stored = json.loads(body)["rowCount"]
    return (f"{stored:>7} rows {sent[0] / 1e6:6.1f} MB  {elapsed:5.1f} s  {stored / elapsed:8.0f} rows/s   "
            f"RSS {before // 1024} MiB before, {peak[0] // 1024} MiB at peak (+{(peak[0] - before) // 1024} MiB)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("token")
    parser.add_argument("pid", type=int)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 500_000])
    args = parser.parse_args()
    for count in args.rows:
        print("treasury upload " + upload(args.base, args.token, args.pid, count), flush=True)


if __name__ == "__main__":
    main()
