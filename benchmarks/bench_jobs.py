"""Full exports (jobs) against the AC stand-in at its real rate limit (5 req/s) and a real answer time.
Not a test: it reports.

    .venv/bin/python benchmarks/bench_jobs.py                              # 10,000 contacts at 10/400/800 ms
    .venv/bin/python benchmarks/bench_jobs.py --contacts 100000 --answer-ms 800
    .venv/bin/python benchmarks/bench_jobs.py --resource deals --records 10000 --answer-ms 10 800
    .venv/bin/python benchmarks/bench_jobs.py --memory                     # + a run for the worker's memory

For each size and answer time: the local stack (Mongo, moto, the stand-in with N records of the resource
(`--resource`: contacts, deals or accounts; `--records`, or `--contacts` as before), 5 req/s and
answers that take `--answer-ms` +/- `--jitter`, the API) runs in this process; the export worker runs in
a child process fed from the queue, as one Lambda container would be, so its memory is measured alone.
The worker is warmed by a one-page job first (imports, clients, AC's reference data in its reference
cache: a deployed worker's steady state). The measured job is started with POST .../export/<resource>/jobs
and timed until GET .../export/jobs/{id} says `succeeded`; then the file is downloaded from its pre-signed
URL and checked (every id exactly once).

Reported per run: wall time (POST to succeeded) against the floor (N/100 requests of 100 records at
5 req/s = N/500 s; deals and accounts, read by offset with one record of overlap per page, need N/99) as a
ratio, the job's own time (started_at to finished_at), AC requests made (by
path), 429s seen, and the worker child's peak RSS (VmHWM, imports included). Timing runs have
tracemalloc off (it triples the worker's CPU); with `--memory` one more run per size (at the first answer
time) measures the tracemalloc peak of Python allocations during the job. Written to
benchmarks/last_jobs.json too.

The rate budget is the service's default (AC_RATE_BUDGET=shared, AC_RATE_WINDOW_MARGIN_MS unless set in
the environment): `--margin-ms` overrides the margin.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]

BASE = "/v1/integrations/activecampaign"
WORKER = "ExportWorkerFunction"
MARK = "BENCH-WORKER "    # the child's report lines; its stdout also carries the functions' EMF metric lines


# ---------------------------------------------------------------- the worker "container" (child process)

def worker() -> None:
    """A warm worker container: read job ids from stdin; for each, poll the export queue like Lambda's
    event source mapping until the job ends, then print the peak memory of that job as JSON."""
    from devstack.apigw import LocalApiGateway
    from devstack.event_sources import EventSources

    gateway = LocalApiGateway(ROOT / "template.yaml", env={})
    sources = EventSources(ROOT / "template.yaml", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                           region=os.environ.get("AWS_REGION", "us-east-1"), invoke=gateway.invoke)
    sources.create().start(functions={WORKER})
    _create_bus(sources)
    from acexport.jobs import store as jobs

    traced = os.environ.get("BENCH_TRACEMALLOC") == "1"
    if traced:
        tracemalloc.start()
    try:
        for line in sys.stdin:
            if traced:
                tracemalloc.reset_peak()
            while (jobs.get(line.strip()) or {}).get("status") not in jobs.TERMINAL:
                time.sleep(0.02)
            peak = tracemalloc.get_traced_memory()[1] if traced else None
            print(MARK + json.dumps({"tracemalloc_peak_mb": round(peak / 2**20, 2) if traced else None,
                                     "max_rss_mb": _peak_rss_mb(), "budget_margin_ms": _margins()}), flush=True)
    finally:
        sources.stop(timeout=30)


def _create_bus(sources) -> None:
    """The service's own EventBridge bus (the second security round), where the worker publishes a finished job: the
    local stack creates it with its EventBridge pollers, which this benchmark does not run. Without it the
    finishing step fails and its message, retried, holds the next job of the AC account's FIFO group."""
    bus = os.environ.get("EVENT_BUS_NAME") or sources.template["Parameters"]["EventBusName"]["Default"]
    events = sources.client("events")
    with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
        events.create_event_bus(Name=bus)


def _margins() -> dict:
    """The shared budget's margin per AC host in this worker at the job's end (adaptive: see ac/budget.py)."""
    from acexport.ac import client

    limiter = client.limiter()
    margins = getattr(limiter, "_margins", {})
    return {host: {"margin": round(1000 * m.seconds, 1), "extra": round(1000 * m.extra, 1),
                   "lag_spread": round(1000 * (max(m._lags) - min(m._lags)), 1) if m._lags else None,
                   "lags": len(m._lags)}
            for host, m in margins.items()}


def _peak_rss_mb() -> float:
    """The child's own peak RSS. Not ru_maxrss: Linux keeps it across exec, so a child would report its
    parent's RSS at fork time (this process holds the stand-in's data and moto's files)."""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return round(int(line.split()[1]) / 1024, 1)
    except (OSError, StopIteration):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------- one size

def _warm_up(sandbox, resource: str) -> dict:
    """A job body that reads one page (or two) of `resource` and fills the worker's reference cache."""
    if resource == "contacts":
        return {"filters": {"email": sandbox.contacts[0]["email"]}}
    if resource == "deals":     # a full deal (not a stub): its owner and custom fields are looked up too
        return {"filters": {"title": next(d for d in sandbox.deals if "group" in d)["title"]}}
    return {"filters": {"search": sandbox.accounts[0]["name"]}}


def run(resource: str, size: int, fmt: str, answer_ms: float, jitter: float, traced: bool) -> dict:
    import requests

    from devstack.stack import LocalStack, mint_token

    with LocalStack(event_sources=False) as stack:
        sandbox = stack.sandbox
        sandbox.generate(**{resource: size})
        sandbox.answer_time(answer_ms / 1000, 0.0, jitter)
        headers = {"Authorization": f"Bearer {mint_token('bench-user', 'bench-account')}"}
        api = stack.api_url + BASE
        reply = requests.post(f"{api}/auth", headers=headers, timeout=30,
                              json={"api_key": "sandbox-key", "base_url": sandbox.base_url})
        assert reply.status_code == 200, reply.text
        env = {**os.environ, "BENCH_TRACEMALLOC": "1" if traced else "0"}
        child = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, env=env)

        def export(body: dict) -> tuple[dict, float, dict]:
            return run_job(child, api, headers, f"/export/{resource}/jobs", body)

        # A first, one-page job warms the worker "container" (imports, clients, the rate budget's slots,
        # AC's field definitions in the reference cache), as the steady state of a deployed worker.
        export({"format": fmt, **_warm_up(sandbox, resource)})
        time.sleep(1.2)   # AC's window empties
        sandbox.requests.clear()
        job, wall, memory = export({"format": fmt})
        started = time.monotonic() - wall
        child.stdin.close()
        child.wait(timeout=60)
        paths = Counter(r.path for r in sandbox.requests)
        arrivals = sorted(r.at for r in sandbox.requests)
        setup, tail = arrivals[0] - started, started + wall - arrivals[-1]
        fifth = sorted(b - a for a, b in zip(arrivals, arrivals[5:], strict=False)) or [0.0]   # as AC saw them
        throttled = sum(1 for r in sandbox.requests if r.status == 429)
        body = gzip.decompress(requests.get(job["file"]["url"], timeout=60).content).decode()
        lines = body.splitlines()
        ids = [json.loads(line)["id"] for line in lines] if fmt == "ndjson" else lines[1:]
        exact = fmt != "ndjson" or (len(ids) == size and len(set(ids)) == size)
    floor = size / 500
    job_seconds = _seconds(job["finished_at"]) - _seconds(job["started_at"])
    return {"resource": resource, "size": size, "format": fmt, "answer_ms": answer_ms, "jitter": jitter,
            "memory_run": traced,
            "wall_s": round(wall, 2), "floor_s": round(floor, 2), "ratio": round(wall / floor, 3),
            "over_floor_pct": round(100 * (wall / floor - 1), 1), "job_s": job_seconds,
            "requests": sum(paths.values()), "requests_by_path": dict(paths), "throttled_429": throttled,
            "five_apart_s": {"min": round(fifth[0], 3), "median": round(fifth[len(fifth) // 2], 3)},
            "post_to_first_request_s": round(setup, 3), "last_request_to_done_s": round(tail, 3),
            "file_bytes": job["file"]["size"], "records": job["file"]["records"], "exact": exact,
            "worker_memory": memory}


def run_job(child: subprocess.Popen, api: str, headers: dict, path: str, body: dict | None = None, *,
            poll: float = 0.05) -> tuple[dict, float, dict]:
    """POST `path` (a job start: an export, a reconcile), hand the job to the worker child, wait until it ends:
    the job as `GET /export/jobs/{id}` shows it, the wall time from the POST, and the child's memory report."""
    import requests

    started = time.monotonic()
    reply = requests.post(f"{api}{path}", headers=headers, json=body, timeout=30)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["data"]["id"]
    child.stdin.write(job_id + "\n")
    child.stdin.flush()
    while True:
        job = requests.get(f"{api}/export/jobs/{job_id}", headers=headers, timeout=30).json()["data"]
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(poll)
    wall = time.monotonic() - started
    memory = _report(child)
    assert job["status"] == "succeeded", job
    return job, wall, memory


def _report(child: subprocess.Popen) -> dict:
    """The worker child's report of the job that just ended (other lines, e.g. EMF metrics, skipped)."""
    while True:
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("the worker child ended without a report")
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resource", choices=["contacts", "deals", "accounts"], default="contacts")
    parser.add_argument("--records", "--contacts", dest="sizes", type=int, nargs="+", default=[10_000],
                        help="sizes: records of the resource (default 10000)")
    parser.add_argument("--answer-ms", type=float, nargs="+", default=[10, 400, 800],
                        help="the stand-in's answer time, ms (default 10 400 800)")
    parser.add_argument("--jitter", type=float, default=0.25, help="+/- fraction of the answer time (0.25)")
    parser.add_argument("--memory", action="store_true", help="one more run per size with tracemalloc on")
    parser.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    parser.add_argument("--margin-ms", type=float, help="AC_RATE_WINDOW_MARGIN_MS for this run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    if args.margin_ms is not None:
        os.environ["AC_RATE_WINDOW_MARGIN_MS"] = str(args.margin_ms)
    settings = {name: os.environ.get(name, "(default)") for name in
                ("AC_RATE_BUDGET", "AC_RATE_WINDOW_MARGIN_MS", "AC_RATE_LIMIT_PER_SECOND", "EXPORT_PAGES_IN_FLIGHT")}
    runs = [(size, ms, False) for size in args.sizes for ms in args.answer_ms]
    if args.memory:
        runs += [(size, args.answer_ms[0], True) for size in args.sizes]
    results = []
    for size, ms, memory in runs:
        result = run(args.resource, size, args.format, ms, args.jitter, memory)
        results.append(result)
        print(json.dumps(result), flush=True)
    report = {"settings": settings, "results": results}
    (ROOT / "benchmarks" / "last_jobs.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{args.resource:>9} {'answer':>7} {'wall s':>7} {'floor s':>7} {'ratio':>6} {'requests':>8} {'429s':>5} "
          f"{'peak MB':>8} {'RSS MB':>7}")
    for r in results:
        peak = r["worker_memory"]["tracemalloc_peak_mb"]
        print(f"{r['size']:>9} {r['answer_ms']:>5.0f}ms {r['wall_s']:>7} {r['floor_s']:>7} {r['ratio']:>6} "
              f"{r['requests']:>8} {r['throttled_429']:>5} {peak if peak is not None else '-':>8} "
              f"{r['worker_memory']['max_rss_mb']:>7}")


if __name__ == "__main__":
    main()
