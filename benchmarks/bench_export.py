"""Speed of the page exports against the local stack (issue 2's targets). Not a test: it reports.

    make bench                     # or: .venv/bin/python benchmarks/bench_export.py [--requests 300]

Reports
1. the export handlers' own time per warm request with AC's time excluded: each handler is called as
   the Lambda runtime calls it (no HTTP, no local gateway in front), AC's time is measured around every
   HTTP call the layer makes and subtracted; Mongo (nx-27017 on loopback: the credential read and the
   shared rate-budget slot) and everything else stays in (target: median < 5 ms);
2. the cold import time of each function in a fresh interpreter, and whether boto3/pymongo were imported;
3. AC calls per export page, cold (reference data not cached) and warm, for limit 20, 100 and 250.
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
    original = session.get
    spent = [0.0]

    def get(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    session.get = get
    return spent


def load_handler(resource: str):
    """A fresh copy of the export function's module, as one warm container holds it."""
    path = ROOT / "functions" / f"export_{resource}" / "app.py"
    spec = importlib.util.spec_from_file_location(f"bench_export_{resource}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def handler_time(requests: int) -> dict[str, dict]:
    """Each export handler called directly (as the Lambda runtime calls it), warm, AC's time subtracted."""
    from tests.conftest import LambdaContext

    spent = timed_ac_session()
    results = {}
    for resource in EXPORTS:
        handler = load_handler(resource)
        payload = event(resource, "page=1&limit=20")
        handler(payload, LambdaContext())                       # warm: clients, reference data
        own = []
        for _ in range(requests):
            spent[0] = 0.0
            started = time.perf_counter()
            reply = handler(payload, LambdaContext())
            total = time.perf_counter() - started
            assert reply["statusCode"] == 200, reply
            own.append((total - spent[0]) * 1000)
        own.sort()
        results[resource] = {"median_ms": round(statistics.median(own), 2),
                             "p95_ms": round(own[int(len(own) * 0.95) - 1], 2), "requests": requests}
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
    # Waiting for AC's 5 req/s is AC's time too: lift the rate so only the handler is measured. The shared
    # budget itself stays on (its Mongo round trip per AC call is part of the handler's own time).
    os.environ["AC_RATE_LIMIT_PER_SECOND"] = "1000"
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
