"""The reconcile (deleted records found by comparing id sets) against the AC stand-in at its real rate limit
(5 req/s) and a real answer time. Not a test: it reports.

    .venv/bin/python benchmarks/bench_reconcile.py                          # 100,000 contacts at 400 ms
    .venv/bin/python benchmarks/bench_reconcile.py --contacts 20000 --answer-ms 400 --deleted 100

As benchmarks/bench_jobs.py: the local stack (Mongo, moto, the stand-in with N contacts and its default
deals and accounts, 5 req/s, answers of `--answer-ms` +/- `--jitter`, the API) runs in this process, and
the worker in a child process fed from the export queue (`bench_jobs.py --worker`: one warm Lambda
container), so its memory is measured alone. Two reconciles are timed from POST /changes/reconcile to
`succeeded` (GET /export/jobs/{id}): the first records the baseline; then `--deleted` contacts are removed
at the stand-in and the second reports them (checked in GET /changes).

Reported per run: wall time against the floor (N/100 requests at 5 req/s = N/500 s for the contacts, plus
one request a page of deals and accounts), AC requests, 429s, the worker child's peak RSS (VmHWM, imports
included), and the size of the stored id set; and, as the stand-in's ids are dense (1..N, which compresses
to next to nothing), the codec's size for 100,000 ids with random gaps. Written to
benchmarks/last_reconcile.json too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]

from benchmarks.bench_jobs import run_job  # noqa: E402 - a job through the API and the worker child

BASE = "/v1/integrations/activecampaign"


def sparse_sizes(count: int = 100_000) -> dict:
    """The codec on ids with gaps (a real account: deleted records, other objects between ids)."""
    from acexport.reconcile import codec

    rng = random.Random(7)
    out = {}
    for mean_gap in (1, 3, 20):
        ids, current = [], 0
        for _ in range(count):
            current += 1 + int(rng.expovariate(1 / mean_gap)) if mean_gap > 1 else 1
            ids.append(current)
        out[f"mean_gap_{mean_gap}"] = {"varint_bytes": len(codec.encode(ids)),
                                       "stored_bytes": len(codec.pack({"contacts": ids}, {"connection": "x"}))}
    return out


def run(size: int, answer_ms: float, jitter: float, deleted: int) -> dict:
    import requests

    from devstack.stack import LocalStack, mint_token

    with LocalStack(event_sources=False) as stack:
        sandbox = stack.sandbox
        sandbox.generate(contacts=size)
        sandbox.answer_time(answer_ms / 1000, 0.0, jitter)
        headers = {"Authorization": f"Bearer {mint_token('bench-user', 'bench-account')}"}
        api = stack.api_url + BASE
        reply = requests.post(f"{api}/auth", headers=headers, timeout=30,
                              json={"api_key": "sandbox-key", "base_url": sandbox.base_url})
        assert reply.status_code == 200, reply.text
        child = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "bench_jobs.py"), "--worker"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "BENCH_TRACEMALLOC": "0"})
        time.sleep(3)    # the child imports and starts polling

        def reconcile() -> dict:
            time.sleep(1.2)   # AC's window empties
            sandbox.requests.clear()
            job, wall, memory = run_job(child, api, headers, "/changes/reconcile", poll=0.1)
            paths = Counter(r.path for r in sandbox.requests)
            floor = size / 500 + (paths["/deals"] + paths["/accounts"]) / 5
            return {"wall_s": round(wall, 2), "floor_s": round(floor, 2), "ratio": round(wall / floor, 3),
                    "requests": sum(paths.values()), "requests_by_path": dict(paths),
                    "throttled_429": sum(1 for r in sandbox.requests if r.status == 429),
                    "summary": job["reconcile"], "worker_memory": memory}

        first = reconcile()
        gone = random.Random(3).sample([c["id"] for c in sandbox.contacts], deleted)
        sandbox.contacts[:] = [c for c in sandbox.contacts if c["id"] not in set(gone)]
        second = reconcile()
        changes = requests.get(f"{api}/changes?limit=250", headers=headers, timeout=30).json()["data"]
        reported = sorted(c["record_id"] for c in changes if c["type"] == "contact.deleted")
        child.stdin.close()
        child.wait(timeout=60)
    return {"contacts": size, "answer_ms": answer_ms, "jitter": jitter, "baseline": first, "second": second,
            "deleted": deleted, "reported_exactly": reported == sorted(gone) if deleted <= 250 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--answer-ms", type=float, default=400)
    parser.add_argument("--jitter", type=float, default=0.25, help="+/- fraction of the answer time (0.25)")
    parser.add_argument("--deleted", type=int, default=100, help="contacts deleted before the second run")
    args = parser.parse_args()
    result = {"settings": {name: os.environ.get(name, "(default)") for name in
                           ("AC_RATE_BUDGET", "AC_RATE_WINDOW_MARGIN_MS", "EXPORT_PAGES_IN_FLIGHT")},
              "run": run(args.contacts, args.answer_ms, args.jitter, args.deleted),
              "codec_100k_sparse": sparse_sizes()}
    (ROOT / "benchmarks" / "last_reconcile.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
