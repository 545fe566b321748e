"""What the shared rate budget costs per AC call: Mongo time of MongoBudget.acquire() with a free slot,
and the end-to-end latency of an export page with AC_RATE_BUDGET=shared against local.

    .venv/bin/python benchmarks/load/budget_overhead.py [--calls 1000] [--pages 200]

Loopback only: nx-27017 and moto (KMS) as the local stack starts them, the AC sandbox without a rate
limit, one page = limit=100 (one AC call). Both limiters run at AC's 5/s with a clock that moves 0.25 s per
reading, so a slot is always free and only the cost of taking it is measured, not waits for one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]

import requests  # noqa: E402

from devstack.stack import LocalStack, mint_token  # noqa: E402

BASE = "/v1/integrations/activecampaign"


def _ms(values: list[float]) -> str:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000  # noqa: E731
    return (f"mean {statistics.fmean(values) * 1000:.3f} ms, p50 {pick(0.5):.3f}, p95 {pick(0.95):.3f}, "
            f"p99 {pick(0.99):.3f}")


class FastClock:
    """Wall-clock time plus 0.25 s more at every reading: a free slot every time, real Mongo round trips."""

    def __init__(self, base=time.time):
        self.base, self.skew = base, 0.0

    def __call__(self) -> float:
        self.skew += 0.25
        return self.base() + self.skew


WALL, MONOTONIC = FastClock(), FastClock(time.monotonic)  # one of each: slot times in Mongo stay consistent


def limiters():
    from acexport.ac.budget import MongoBudget
    from acexport.ac.ratelimit import SlidingWindowLimiter

    return {"shared": MongoBudget(5, clock=WALL), "local": SlidingWindowLimiter(5, clock=MONOTONIC)}


def acquire_cost(calls: int) -> tuple[list[float], list[float]]:
    found = limiters()
    shared, local = found["shared"], found["local"]
    shared.acquire("bench.api-us1.com", time.monotonic() + 10)  # slot documents and index created once
    out = []
    for limiter in (shared, local):
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            limiter.acquire("bench.api-us1.com", time.monotonic() + 10)
            times.append(time.perf_counter() - started)
        out.append(times)
    return out[0], out[1]


def page_latency(stack: LocalStack, pages: int, budget: str) -> tuple[list[float], int]:
    from acexport.ac import client as ac_client

    ac_client._limiter = limiters()[budget]   # the handlers run in this process: one warm container
    http = requests.Session()
    headers = {"Authorization": f"Bearer {mint_token('bench-user', 'bench-account')}"}
    url = f"{stack.api_url}{BASE}/export/contacts?page=1&limit=100"
    assert http.get(url, headers=headers, timeout=30).status_code == 200   # warm: cold start, reference data
    stack.sandbox.requests.clear()
    times = []
    for _ in range(pages):
        started = time.perf_counter()
        reply = http.get(url, headers=headers, timeout=30)
        times.append(time.perf_counter() - started)
        assert reply.status_code == 200, reply.text
    return times, stack.sandbox.count("/contacts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="acquire() calls per limiter")
    parser.add_argument("--pages", type=int, default=200, help="export pages per budget kind")
    args = parser.parse_args(argv)
    with LocalStack() as stack:
        stack.sandbox.rate_limit = None
        stack.sandbox.generate(contacts=300)
        shared, local = acquire_cost(args.calls)
        print(f"acquire() with a free slot, {args.calls} calls each (loopback nx-27017):")
        print(f"  shared (Mongo)  {_ms(shared)}")
        print(f"  local (memory)  {_ms(local)}")
        http = requests.post(f"{stack.api_url}{BASE}/auth", timeout=30, json={
            "api_key": "sandbox-key", "base_url": stack.sandbox.base_url},
            headers={"Authorization": f"Bearer {mint_token('bench-user', 'bench-account')}"})
        assert http.status_code == 200, http.text
        results = {}
        for budget in ("local", "shared", "local", "shared"):  # interleaved, to even out warm-up
            times, ac_calls = page_latency(stack, args.pages // 2, budget)
            results.setdefault(budget, ([], 0))
            results[budget] = (results[budget][0] + times, results[budget][1] + ac_calls)
        print(f"export page (contacts, limit=100), {args.pages} pages each, through the local API:")
        for budget, (times, ac_calls) in results.items():
            print(f"  {budget:6s}  {_ms(times)}   AC calls per page {ac_calls / len(times):.2f}")
        diff = statistics.median(results["shared"][0]) - statistics.median(results["local"][0])
        print(f"  median difference shared - local: {diff * 1000:.3f} ms per page (one AC call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
