"""avs serve under load: 200 concurrent free-text queries on loopback against the SIMULATED demo (10,000 shots),
started as a user starts it (`avs serve`, in its own process). Prints latency percentiles (client side, request
to full response), the server's own search time, and the errors (there must be none).

    python bench/serve.py [--queries 200] [--concurrency 200] [--k 1000]

Bounded: at most --queries requests, each with a 120 s timeout, to 127.0.0.1 only; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe  # noqa: E402

WORDS = "a person dog car water kayak street night singing dancing man woman child boat snow tree".split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--k", type=int, default=1000)
    args = ap.parse_args()
    print(describe())
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "avs", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        t = time.perf_counter()
        line = server.stdout.readline()
        if "serving" not in line:
            raise SystemExit(f"the server did not start: {line}{server.stdout.read()}")
        print(f"server up in {time.perf_counter() - t:.1f} s (SIMULATED demo; built on first use)")
        base = f"http://127.0.0.1:{port}/api/search"
        rng = np.random.default_rng(0)
        queries = [" ".join(rng.choice(WORDS, size=4)) for _ in range(args.queries)]

        def ask(q: str) -> tuple[float, float | None, str | None]:
            url = f"{base}?{urllib.parse.urlencode({'q': q, 'k': args.k})}"
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=120) as r:
                    body = json.load(r)
                ok = len(body["results"]) == args.k
                return time.perf_counter() - t0, body["elapsed_ms"], None if ok else "short result"
            except Exception as e:  # noqa: BLE001 - counted and printed, the benchmark's point
                return time.perf_counter() - t0, None, f"{type(e).__name__}: {e}"

        ask("warm up")
        t = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(ask, queries))
        wall = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait(timeout=30)
    latency = np.array([r[0] for r in results]) * 1000
    search = np.array([r[1] for r in results if r[1] is not None])
    errors = [r[2] for r in results if r[2]]
    p50, p95 = np.percentile(latency, [50, 95])
    print(f"{args.queries} queries, {args.concurrency} at once, k={args.k}: {wall:.2f} s, {args.queries / wall:.1f}/s")
    print(f"latency ms (client, queueing included): p50 {p50:.0f}  p95 {p95:.0f}  max {latency.max():.0f}")
    if len(search):
        s50, s95 = np.percentile(search, [50, 95])
        print(f"search ms (server, the search itself, as the page shows it): p50 {s50:.1f}  p95 {s95:.1f}")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
