"""Speed of the page exports against the local stack (the page-export work's and the real-latency round's targets).
Not a test: it reports.

    make bench                     # or: .venv/bin/python benchmarks/bench_export.py [--requests 300]

Reports
1. the export handlers' own time per warm request with AC's time excluded: each handler is called as
   the Lambda runtime calls it (no HTTP, no local gateway in front), AC's time is measured around every
   HTTP call the layer makes and subtracted; Mongo (nx-27017 on loopback: the credential read and the
   shared rate-budget slot) and everything else stays in (target: median < 2 ms, the real-latency round); also split
   into the Mongo round trips (pymongo's own measure of each command, reported apart because nx-27017 is a
   Python server, slower than mongod) and the rest, the project's own code;
2. the same requests against a baseline measured in the same run, request by request: the same AC call
   (URL, parameters, headers) with a plain `requests` session, plus the same Mongo round trips (the
   commands the handler sent, recorded by pymongo's command monitoring, sent again as they were). The
   ratio handler / baseline (medians, AC's time included in both) is the project's own overhead
   (target: <= 1.15);
3. the cold import time of each function in a fresh interpreter, and whether boto3/pymongo were imported;
4. AC calls per export page, cold (reference data not cached) and warm, for limit 20, 100 and 250.

The rate budget has its real shape (AC_RATE_LIMIT_PER_SECOND=5: 5 slot documents per AC account, the
query the service makes) with the window set to 0 for the run, so the handler never waits for AC's rate:
a wait is AC's time, not the handler's. (The earlier AC_RATE_LIMIT_PER_SECOND=1000 made every slot query
scan 1,000 documents, ~0.9 ms that production does not pay.)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]

from baseline import MongoCommands, replay  # noqa: E402
from pymongo import monitoring  # noqa: E402

from devstack.stack import LocalStack, mint_token  # noqa: E402

FUNCTIONS = ["authorizer", "save_auth", "delete_auth", "auth_status", "export_contacts", "export_deals",
             "export_accounts"]
EXPORTS = {"contacts": "ExportContactsFunction", "deals": "ExportDealsFunction", "accounts": "ExportAccountsFunction"}


def event(resource: str, query: str) -> dict:
    base = json.loads((ROOT / "events" / f"export_{resource}.json").read_text())
    base["rawQueryString"] = query
    base["queryStringParameters"] = None
    return base


def timed_ac_session():
    """Wrap the layer's requests session so time spent waiting for AC is measured."""
    from acexport.ac import client as ac_client

    session = ac_client.session()
    original = session.request
    spent = [0.0]

    def request(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    session.request = request
    return spent


def load_handler(resource: str):
    """A fresh copy of the export function's module, as one warm container holds it."""
    path = ROOT / "functions" / f"export_{resource}" / "app.py"
    spec = importlib.util.spec_from_file_location(f"bench_export_{resource}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def real_budget_shape() -> None:
    """The service's budget (5 slots per AC host, the same Mongo query) that never has to wait."""
    from acexport.ac import client as ac_client
    from acexport.ac.budget import MongoBudget
    from acexport.settings import get_settings

    ac_client._limiter = MongoBudget(5, collection=get_settings().rate_budget_collection, window=0.0, margin=0.0)


def handler_time(requests: int) -> dict[str, dict]:
    """Each export handler called directly (as the Lambda runtime calls it), warm, AC's time subtracted;
    and, request by request, the baseline: the same AC call with plain requests + the same Mongo commands."""
    import requests as plain
    from acexport import db

    from tests.conftest import LambdaContext

    commands = MongoCommands()
    monitoring.register(commands)
    from acexport import caches

    caches.reset()                    # a container whose Mongo client carries the listener
    real_budget_shape()
    spent = timed_ac_session()
    from acexport.ac import client as ac_client

    layer_session = ac_client.session()
    calls: list[tuple] = []
    timed_request = layer_session.request

    def recording_request(method, url, **kwargs):
        calls.append((method, url, kwargs))
        return timed_request(method, url, **kwargs)

    layer_session.request = recording_request
    baseline_session = plain.Session()
    results = {}
    for resource in EXPORTS:
        handler = load_handler(resource)
        payload = event(resource, "page=1&limit=20")
        handler(payload, LambdaContext())                       # warm: clients, reference data
        own, totals, baselines, mongo = [], [], [], []
        for _ in range(requests):
            spent[0] = 0.0
            calls.clear()
            commands.recording, commands.micros = [], 0
            started = time.perf_counter()
            reply = handler(payload, LambdaContext())
            total = time.perf_counter() - started
            recorded, commands.recording = commands.recording, None
            mongo.append(commands.micros / 1000)
            assert reply["statusCode"] == 200, reply
            assert calls, "no AC call was recorded: the layer no longer calls session().request"
            own.append((total - spent[0]) * 1000)
            totals.append(total * 1000)
            started = time.perf_counter()                         # the baseline of this very request
            replay(db.client(), recorded)
            for method, url, kwargs in calls:
                answer = baseline_session.request(method, url, params=kwargs.get("params"),
                                                  headers=kwargs.get("headers"), timeout=30, allow_redirects=False)
                answer.json()
            baselines.append((time.perf_counter() - started) * 1000)
        without_mongo = sorted(o - m for o, m in zip(own, mongo, strict=True))
        own.sort()
        median_total, median_baseline = statistics.median(totals), statistics.median(baselines)
        results[resource] = {"median_ms": round(statistics.median(own), 2),
                             "p95_ms": round(own[int(len(own) * 0.95) - 1], 2), "requests": requests,
                             "mongo_median_ms": round(statistics.median(mongo), 2),
                             "median_without_mongo_ms": round(statistics.median(without_mongo), 2),
                             "handler_total_median_ms": round(median_total, 2),
                             "baseline_median_ms": round(median_baseline, 2),
                             "ratio_to_baseline": round(median_total / median_baseline, 3),
                             "mongo_commands_per_request": len(recorded), "ac_calls_per_request": len(calls)}
    layer_session.request = timed_request
    return results


def cold_imports() -> dict[str, dict]:
    probe = (
        "import sys, time; t = time.perf_counter(); import app; "
        "print(round((time.perf_counter() - t) * 1000, 1), 'boto3' in sys.modules, 'pymongo' in sys.modules)"
    )
    results = {}
    for name in FUNCTIONS:
        runs = []
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", probe], cwd=ROOT / "functions" / name, capture_output=True, text=True,
                env={"PYTHONPATH": str(ROOT / "layers" / "common"), "PATH": "/usr/bin:/bin",
                     "POWERTOOLS_SERVICE_NAME": "bench", "POWERTOOLS_METRICS_NAMESPACE": "bench"},
                check=True).stdout.split()
            runs.append(out)
        results[name] = {"import_ms_median": statistics.median(float(r[0]) for r in runs),
                         "boto3_imported": runs[0][1] == "True", "pymongo_imported": runs[0][2] == "True"}
    return results


def ac_calls_per_page(stack) -> dict[str, dict]:
    from acexport.ac import reference

    results = {}
    for resource, function in EXPORTS.items():
        for limit in (20, 100, 250):
            reference.clear()
            stack.sandbox.requests.clear()
            stack.api.invoke(function, event(resource, f"page=1&limit={limit}"))
            cold = stack.sandbox.count()
            stack.sandbox.requests.clear()
            stack.api.invoke(function, event(resource, f"page=2&limit={limit}"))
            results[f"{resource} limit={limit}"] = {"cold_cache": cold, "warm_cache": stack.sandbox.count()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="warm requests per export function")
    args = parser.parse_args()
    # The shared budget stays on in its real shape (5 slots; its Mongo round trip per AC call is part of the
    # handler's own time), with a zero window (real_budget_shape) so the handler never waits for AC's rate.
    os.environ["AC_RATE_LIMIT_PER_SECOND"] = "5"
    with LocalStack() as stack, contextlib.redirect_stdout(io.StringIO()):  # handlers' EMF/log lines
        stack.sandbox.rate_limit = None            # measure the handler, not AC's throttle
        stack.sandbox.generate(contacts=600, deals=600, accounts=300)
        import requests

        token = mint_token("dev-user", "dev-account")  # the caller of events/*.json
        saved = requests.post(f"{stack.api_url}/v1/integrations/activecampaign/auth", timeout=30,
                              headers={"Authorization": f"Bearer {token}"},
                              json={"api_key": "sandbox-key", "base_url": stack.sandbox.base_url})
        assert saved.status_code == 200, saved.text
        report = {"python": sys.version.split()[0],
                  "handler_own_time_warm": handler_time(args.requests),
                  "ac_calls_per_page": ac_calls_per_page(stack)}
    report["cold_import"] = cold_imports()
    print(json.dumps(report, indent=2))
    (ROOT / "benchmarks" / "last_export_report.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
