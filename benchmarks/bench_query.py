"""AC calls and handler time of custom-field queries (filters[<custom field>], orders[<custom field>]) on the
page exports, cold and warm, against the local stack. Not a test: it reports.

    .venv/bin/python benchmarks/bench_query.py [--contacts 4000] [--runs 15] [--ac-latency 0]

For each query: AC calls of the first request with the reference data not cached ("cold": the account's field
definitions, tags, lists, custom field values read again) and of a repeated one ("warm"), and the handler's
time, median of `--runs` requests, in total and with AC's time subtracted (the handler called as the Lambda
runtime calls it, as benchmarks/bench_export.py does). The stand-in answers at once unless `--ac-latency`
(seconds per AC answer) is given; its 5 req/s limit is off and the rate budget never waits, so the times are
the service's own plus the stand-in's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT), str(ROOT / "layers" / "common")]

from bench_export import event, load_handler, real_budget_shape  # noqa: E402

from devstack.stack import LocalStack, mint_token  # noqa: E402

QUERIES = [
    ("contacts", "filters[Birthday]={birthday}", "a selective filter (one day): one lookup, one read by id"),
    ("contacts", "filters[Lead Source]=Referral", "text field: AC's /fieldValues, then /contacts?ids[]"),
    ("contacts", "filters[Lead Source]=Referral&filters[Company Size]=1000%2B",
     "two fields: two lookups (the dropdown asked in both forms), ids intersected"),
    ("contacts", "filters[Interests]=Offers", "multi-select: every contact read, checked here"),
    ("contacts", "orders[Birthday]=DESC", "date order: every contact read, ordered here"),
    ("contacts", "filters[Lead Source]=Referral&orders[Birthday]=DESC", "AC-narrowed, then ordered here"),
    ("deals", "filters[Competitor]=Globex&orders[Seats]=DESC", "deals: read, filtered and ordered here"),
    ("deals", "filters[Competitor]=Globex", "deals, AC ignoring include=dealCustomFieldData"),
    ("accounts", "orders[Employees]=DESC", "accounts: number order here"),
]


def ac_intervals() -> list[tuple[float, float]]:
    """Wrap the layer's requests session to record when each AC call was in flight (calls made together
    overlap: AC's time is the union of the intervals, not their sum)."""
    import threading

    from acexport.ac import client as ac_client

    session, lock, spans = ac_client.session(), threading.Lock(), []
    original = session.request

    def request(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                spans.append((started, time.perf_counter()))

    session.request = request
    return spans


def covered(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def measure(stack, handler, resource: str, query: str, runs: int, spans) -> dict:
    from acexport.ac import reference

    from tests.conftest import LambdaContext

    payload = event(resource, query + "&limit=20")

    def once() -> tuple[float, float, int]:
        stack.sandbox.requests.clear()
        spans.clear()
        started = time.perf_counter()
        reply = handler(payload, LambdaContext())
        total = time.perf_counter() - started
        assert reply["statusCode"] == 200, reply
        return total * 1000, (total - covered(spans)) * 1000, stack.sandbox.count()

    cold = []
    for _ in range(max(3, runs // 3)):
        reference.clear()
        cold.append(once())
    once()
    warm = [once() for _ in range(runs)]

    def summary(rows):
        return {"ac_calls": rows[-1][2], "total_ms": round(statistics.median(r[0] for r in rows), 1),
                "own_ms": round(statistics.median(r[1] for r in rows), 1)}
    return {"cold": summary(cold), "warm": summary(warm)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=4000)
    parser.add_argument("--deals", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--ac-latency", type=float, default=0.0, help="seconds the stand-in takes per answer")
    args = parser.parse_args()
    os.environ["AC_RATE_LIMIT_PER_SECOND"] = "5"
    results = {}
    with LocalStack() as stack, contextlib.redirect_stdout(io.StringIO()):
        sandbox = stack.sandbox
        sandbox.rate_limit = None
        sandbox.generate(contacts=args.contacts, deals=args.deals, accounts=args.accounts)
        sandbox.answer_time(fixed=args.ac_latency)
        import requests

        token = mint_token("dev-user", "dev-account")   # the caller of events/*.json
        saved = requests.post(f"{stack.api_url}/v1/integrations/activecampaign/auth", timeout=30,
                              headers={"Authorization": f"Bearer {token}"},
                              json={"api_key": "sandbox-key", "base_url": sandbox.base_url})
        assert saved.status_code == 200, saved.text
        from acexport import caches

        caches.reset()
        real_budget_shape()
        spans = ac_intervals()
        handlers = {name: load_handler(name) for name in ("contacts", "deals", "accounts")}
        birthday = next(v["value"] for v in sandbox.field_values if v["field"] == "3")
        for resource, query, what in QUERIES:
            query = query.format(birthday=birthday)
            ignored = "ignoring include" in what
            if ignored:
                sandbox.ignore_include("/deals", "dealCustomFieldData")
            results[f"{resource}?{query}"] = {"what": what, **measure(stack, handlers[resource], resource, query,
                                                                       args.runs, spans)}
            if ignored:
                sandbox.reset()
                sandbox.rate_limit = None
                sandbox.generate(contacts=args.contacts, deals=args.deals, accounts=args.accounts)
                sandbox.answer_time(fixed=args.ac_latency)
        matches = sum(1 for v in sandbox.field_values if v["field"] == "4" and v["value"] == "Referral")
    report = {"python": sys.version.split()[0], "contacts": args.contacts, "deals": args.deals,
              "accounts": args.accounts, "ac_latency_s": args.ac_latency, "runs": args.runs,
              "lead_source_referral_contacts": matches, "queries": results}
    print(json.dumps(report, indent=2))
    (ROOT / "benchmarks" / "last_query_report.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
