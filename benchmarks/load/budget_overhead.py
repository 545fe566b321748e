"""What the shared rate budget costs per AC call: Mongo time of MongoBudget.acquire() with a free slot,
the end-to-end latency of an export page with AC_RATE_BUDGET=shared against local, and what many AC
accounts busy at once cost the budget's store.

    .venv/bin/python benchmarks/load/budget_overhead.py [--calls 1000] [--pages 200]
                                                        [--accounts 1,10,50] [--containers 2] [--seconds 10]
    .venv/bin/python benchmarks/load/budget_overhead.py --busy-only      # only the accounts-at-once part

Loopback only: nx-27017 and moto (KMS) as the local stack starts them, the AC sandbox without a rate
limit, one page = limit=100 (one AC call). Both limiters run at AC's 5/s with a clock that moves 0.25 s per
reading, so a slot is always free and only the cost of taking it is measured, not waits for one.

Accounts at once (docs/scale.md): for each N in --accounts, N AC accounts each with --containers
"containers" (MongoBudget instances, one thread each: e.g. a job step and page exports of the same AC
account in different Lambda containers) taking slots as fast as the budget grants them, on the real clock,
for --seconds. Reported: grants per second (AC calls the budget let through) against the ceiling of
N x 5 / (1 + margin), the time an acquire() took (waits for a slot included), Mongo commands per grant by
kind (pymongo command monitoring: every command of this process in the window) and their server time, and
the commands per second the store served. The last line is the store's ceiling on this machine: free
slots (FastClock) taken by 4 threads at once, as fast as nx-27017 answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]

import requests  # noqa: E402
from pymongo import monitoring  # noqa: E402

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


class Commands(monitoring.CommandListener):
    """Every Mongo command this process sends (registered before any client exists): counts and server time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.micros: Counter[str] = Counter()

    def started(self, event):
        pass

    def succeeded(self, event):
        with self.lock:
            self.counts[event.command_name] += 1
            self.micros[event.command_name] += event.duration_micros

    def failed(self, event):
        with self.lock:
            self.counts[f"failed {event.command_name}"] += 1

    def snapshot(self) -> tuple[Counter, Counter]:
        with self.lock:
            return Counter(self.counts), Counter(self.micros)


COMMANDS = Commands()
monitoring.register(COMMANDS)


def busy_accounts(accounts: int, containers: int, seconds: float) -> dict:
    """`accounts` AC hosts, `containers` MongoBudget instances (one thread each) per host, for `seconds`."""
    from acexport.ac.budget import MongoBudget
    from acexport.ac.ratelimit import BudgetExhausted

    hosts = [f"busy{accounts}-{i}.api-us1.com" for i in range(accounts)]
    budgets = [[MongoBudget(5) for _ in range(containers)] for _ in hosts]
    for host, mine in zip(hosts, budgets, strict=True):
        mine[0].acquire(host, time.monotonic() + 10)          # slot documents created before the clock starts
    time.sleep(1.2)                                            # and every slot free again
    waits: list[float] = []
    exhausted = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(host: str, budget) -> None:
        mine: list[float] = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                budget.acquire(host, time.monotonic() + 5)
            except BudgetExhausted:
                with lock:
                    exhausted[0] += 1
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            waits.extend(mine)

    threads = [threading.Thread(target=run, args=(host, budget), daemon=True)
               for host, mine in zip(hosts, budgets, strict=True) for budget in mine]
    counts0, micros0 = COMMANDS.snapshot()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    counts1, micros1 = COMMANDS.snapshot()
    counts, micros = counts1 - counts0, micros1 - micros0
    return {"accounts": accounts, "containers": containers, "elapsed": elapsed, "grants": len(waits),
            "waits": waits, "exhausted": exhausted[0], "counts": counts, "micros": micros,
            "per_account": 5 / (1 + MongoBudget(5).least_margin)}


def store_ceiling(threads: int = 4, seconds: float = 5.0) -> tuple[float, float]:
    """Free slots taken as fast as the store answers (FastClock), `threads` at once: grants/s, ms each."""
    from acexport.ac.budget import MongoBudget

    budget = MongoBudget(5, clock=FastClock())
    hosts = [f"ceiling-{i}.api-us1.com" for i in range(threads)]
    for host in hosts:
        budget.acquire(host, time.monotonic() + 10)
    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(host: str) -> None:
        n = 0
        while time.monotonic() < stop:
            budget.acquire(host, time.monotonic() + 10)
            n += 1
        with lock:
            done[0] += n

    pool = [threading.Thread(target=run, args=(host,), daemon=True) for host in hosts]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    return done[0] / elapsed, 1000 * elapsed * threads / max(1, done[0])


def report_busy(result: dict) -> None:
    grants, elapsed, counts, micros = result["grants"], result["elapsed"], result["counts"], result["micros"]
    ops = sum(counts.values())
    fam = counts.get("findAndModify", 0)
    print(f"  {result['accounts']:3d} account(s) x {result['containers']} containers, {elapsed:.1f} s: "
          f"{grants / elapsed:.1f} grants/s, {grants / elapsed / result['accounts']:.2f} per account "
          f"(steady ceiling {result['per_account']:.2f}, plus a first burst of 5), {result['exhausted']} refused")
    print(f"      acquire() incl. waits: {_ms(result['waits'])}" if result["waits"] else "      no grant")
    kinds = ", ".join(f"{name} {n / max(1, grants):.2f}" for name, n in counts.most_common())
    print(f"      Mongo commands per grant {ops / max(1, grants):.2f} ({kinds}); {ops / elapsed:.0f} commands/s, "
          f"findAndModify {fam / elapsed:.0f}/s, server time {micros.get('findAndModify', 0) / max(1, fam) / 1000:.2f}"
          f" ms each")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="acquire() calls per limiter")
    parser.add_argument("--pages", type=int, default=200, help="export pages per budget kind")
    parser.add_argument("--accounts", default="1,10,50", help="AC accounts busy at once, one run each")
    parser.add_argument("--containers", type=int, default=2, help="budget instances (containers) per account")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each accounts-at-once run")
    parser.add_argument("--busy-only", action="store_true", help="only the accounts-at-once runs and the ceiling")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.accounts.split(",") if n.strip()]
    with LocalStack() as stack:
        if args.busy_only:
            busy(levels, args.containers, args.seconds)
            return 0
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
        busy(levels, args.containers, args.seconds)
    return 0


def busy(levels: list[int], containers: int, seconds: float) -> None:
    print(f"AC accounts busy at once (real clock, AC's 5/s each, {containers} containers per account):")
    for accounts in levels:
        report_busy(busy_accounts(accounts, containers, seconds))
    rate, each = store_ceiling()
    print(f"  store ceiling (free slots, 4 threads, loopback nx-27017): {rate:.0f} grants/s, {each:.2f} ms each")


if __name__ == "__main__":
    sys.exit(main())
