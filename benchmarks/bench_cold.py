"""Cold start of every function (the real-latency round's targets). Not a test: it reports.

    make bench-cold                     # or: .venv/bin/python benchmarks/bench_cold.py [--runs 7]

1. Import time: `import app` of each function in a fresh interpreter (the layer on PYTHONPATH, as in
   Lambda), median of `--runs` processes, and whether `requests`, boto3 and pymongo were imported; and its
   same-run baseline: the third-party modules that import ended up with, imported alone in fresh processes
   (the ratio is what the project's own modules add).
   Targets here: authorizer <= 70 ms, every other function <= 130 ms.
2. First request: against the local stack (nx-27017, moto, the AC stand-in), a fresh process per run
   imports the function and calls its handler once with its sample event (events/<function>.json; the
   authorizer with a real token, save_auth with the stand-in's key): the time of that first call (clients,
   Secrets/KMS, the Mongo connection, AC), median of `--first-runs` processes. Functions fed by queues
   and EventBridge are measured for import only.

3. With `--layer`: the layer as `sam build` makes it (layers/common/Makefile, for this machine's platform), on a
   read-only-like path (PYTHONDONTWRITEBYTECODE, as /opt in Lambda), imported by the bare python3.13 (no
   venv): with the layer's precompiled bytecode, and without it, as SAM's python3.13 build method ships a
   layer (it unpacks wheels and copies sources; Lambda then compiles every module at every cold start).

Numbers are for this machine; imports run as in Lambda, without the dev venv's `cryptography`
(NOT_IN_LAMBDA). Lambda's CPU share depends on the memory size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
HTTP = ["authorizer", "save_auth", "auth_status", "export_contacts", "export_deals", "export_accounts",
        "export_job_start", "export_job_status", "export_job_list", "export_job_cancel", "delete_auth"]
TARGET_MS = {"authorizer": 70}
DEFAULT_TARGET_MS = 130
BASE_ENV = {"PATH": "/usr/bin:/bin", "POWERTOOLS_SERVICE_NAME": "bench", "POWERTOOLS_METRICS_NAMESPACE": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}

# What the dev venv has that Lambda does not: `cryptography` (moto and the tests need it) is neither in the
# layer (layers/common/requirements.txt) nor in Lambda's python3.13 runtime. PyJWT imports it when present
# (~80 ms of the authorizer's import here) and works without it for HS256, as in Lambda. The probe hides it.
NOT_IN_LAMBDA = ("cryptography", "cffi")

# Every probe runs in a fresh interpreter that cannot import what Lambda does not have (NOT_IN_LAMBDA).
LAMBDA_LIKE = f"""
import importlib, importlib.abc, json, sys, time

class _NotInLambda(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_IN_LAMBDA!r}:
            raise ModuleNotFoundError(f"{{name}} is not in the Lambda runtime or the layer")
        return None

sys.meta_path.insert(0, _NotInLambda())
"""

PROBE = LAMBDA_LIKE + """
t = time.perf_counter()
import app
ms = (time.perf_counter() - t) * 1000
ours = {"app", "acexport", "__main__"}
libraries = [m for m in sys.modules if m.split(".")[0] not in sys.stdlib_module_names | ours]
print(json.dumps({"import_ms": ms, "requests": "requests" in sys.modules, "boto3": "boto3" in sys.modules,
                  "pymongo": "pymongo" in sys.modules, "libraries": libraries}))
"""

# The same-run baseline of an import: the third-party modules the function ended up with (in the order they
# were first imported, the stdlib they pull in included), imported alone in a fresh process. The function's
# import over this is what the project's own modules cost.
LIBRARIES_PROBE = LAMBDA_LIKE + """
t = time.perf_counter()
for name in LIBRARIES:
    try:
        importlib.import_module(name)
    except Exception:      # a module some package registers under another name (an alias, a lazy stub)
        pass
print(json.dumps({"import_ms": (time.perf_counter() - t) * 1000}))
"""


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**BASE_ENV, **(extra or {}), "PYTHONPATH": str(ROOT / "layers" / "common")}


def _probe(code: str, function: str, python: list[str] | None, env: dict[str, str] | None) -> dict:
    """Run `code` in a fresh interpreter in the function's folder; its last line of output, read as JSON."""
    out = subprocess.run([*(python or [sys.executable]), "-c", code], cwd=ROOT / "functions" / function,
                         env=env or _child_env(), capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def import_times(runs: int, *, python: list[str] | None = None, env: dict[str, str] | None = None) -> dict[str, dict]:
    results = {}
    for name in FUNCTIONS:
        samples = [_probe(PROBE, name, python, env) for _ in range(runs)]
        median = statistics.median(s["import_ms"] for s in samples)
        baseline = f"LIBRARIES = {samples[0]['libraries']!r}\n" + LIBRARIES_PROBE
        libraries = statistics.median(_probe(baseline, name, python, env)["import_ms"] for _ in range(runs))
        target = TARGET_MS.get(name, DEFAULT_TARGET_MS)
        results[name] = {"import_ms_median": round(median, 1), "target_ms": target, "met": median <= target,
                         "libraries_ms_median": round(libraries, 1), "ratio_to_libraries": round(median / libraries, 3),
                         **{k: samples[0][k] for k in ("requests", "boto3", "pymongo")}}
    return results


def built_layer(directory: Path, *, bytecode: bool) -> Path:
    """The layer as `sam build` makes it (layers/common/Makefile), for this machine's platform; or, without
    bytecode, as SAM's python3.13 build method would (the same files, no .pyc)."""
    machine = "x86_64" if platform.machine() in ("x86_64", "AMD64") else "aarch64"
    subprocess.run(["make", "-s", "-C", str(ROOT / "layers" / "common"), "build-CommonLayer",
                    f"ARTIFACTS_DIR={directory}", f"PYTHON={sys.executable}", f"PLATFORM=manylinux2014_{machine}",
                    f"BYTECODE={'yes' if bytecode else 'no'}"], check=True, capture_output=True)
    return directory / "python"


def layer_import_times(runs: int) -> dict[str, dict]:
    """Import times from the built layer, with and without its bytecode (see the module docstring, 3)."""
    bare = [getattr(sys, "_base_executable", sys.executable), "-s"]      # python3.13 itself, not the venv
    report = {}
    with tempfile.TemporaryDirectory(prefix="layer-") as tmp:
        for label, bytecode in (("bytecode", True), ("no_bytecode", False)):
            path = built_layer(Path(tmp) / label, bytecode=bytecode)
            env = {**BASE_ENV, "PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"}
            report[label] = import_times(runs, python=bare, env=env)
    return {name: {"bytecode_ms": report["bytecode"][name]["import_ms_median"],
                   "libraries_ms": report["bytecode"][name]["libraries_ms_median"],
                   "no_bytecode_ms": report["no_bytecode"][name]["import_ms_median"],
                   "target_ms": report["bytecode"][name]["target_ms"]} for name in FUNCTIONS}


# ---------------------------------------------------------------- first request (child process)

def first_request(name: str) -> None:
    """In a fresh process: import the function, call its handler once with its sample event."""
    started = time.perf_counter()
    sys.path[:0] = [str(ROOT / "functions" / name)]
    import app

    imported = time.perf_counter()
    event = json.loads((ROOT / "events" / f"{name}.json").read_text())
    token = os.environ["BENCH_TOKEN"]
    if name == "authorizer":
        event["identitySource"] = [f"Bearer {token}"]
        event.setdefault("headers", {})["authorization"] = f"Bearer {token}"
    if name == "save_auth":
        event["body"] = json.dumps({"api_key": "sandbox-key", "base_url": os.environ["BENCH_AC_URL"]})
        event["isBase64Encoded"] = False

    class Context:
        function_name, function_version, memory_limit_in_mb = name, "$LATEST", 512
        invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        aws_request_id, log_group_name, log_stream_name = "bench", "bench", "bench"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 29_000

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        t = time.perf_counter()
        reply = app.lambda_handler(event, Context())
        first = time.perf_counter() - t
    status = reply.get("statusCode") if isinstance(reply, dict) and "statusCode" in reply else \
        ("allow" if isinstance(reply, dict) and reply.get("isAuthorized") else str(reply)[:60])
    print(json.dumps({"import_ms": (imported - started) * 1000, "first_ms": first * 1000, "status": status}))


def first_requests(runs: int) -> dict[str, dict]:
    import requests
    from pymongo import MongoClient

    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
    from devstack.stack import LocalStack, mint_token

    results = {}
    with LocalStack(event_sources=False) as stack:
        token = mint_token("user-1", "account-1", workspace_id="workspace-1")
        env = _child_env({**stack.env, "BENCH_TOKEN": token, "BENCH_AC_URL": stack.sandbox.base_url})
        mongo = MongoClient(stack.mongo_uri)[stack.env["MONGODB_DATABASE"]]
        api = stack.api_url + "/v1/integrations/activecampaign"

        def connect() -> None:
            if not mongo[stack.env["CREDENTIALS_COLLECTION"]].count_documents({}):
                reply = requests.post(f"{api}/auth", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                      json={"api_key": "sandbox-key", "base_url": stack.sandbox.base_url})
                assert reply.status_code == 200, reply.text

        for name in HTTP:
            samples = []
            for _ in range(runs):
                if name == "save_auth":
                    mongo[stack.env["CREDENTIALS_COLLECTION"]].delete_many({})
                else:
                    connect()
                time.sleep(1.1)            # the stand-in's rate window empties between runs
                out = subprocess.run([sys.executable, __file__, "--child", name], cwd=ROOT, env=env,
                                     capture_output=True, text=True, check=True).stdout
                samples.append(json.loads(out.strip().splitlines()[-1]))
            results[name] = {"first_request_ms_median": round(statistics.median(s["first_ms"] for s in samples), 1),
                             "status": samples[-1]["status"]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per function for import time")
    parser.add_argument("--first-runs", type=int, default=3, help="fresh processes per function, first request")
    parser.add_argument("--layer", action="store_true",
                        help="import from the built layer, with and without its bytecode (needs PyPI)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        first_request(args.child)
        return
    if args.layer:
        layer = layer_import_times(args.runs)
        (ROOT / "benchmarks" / "last_cold_layer.json").write_text(json.dumps(layer, indent=2) + "\n")
        print(f"{'function':<26} {'layer with bytecode ms':>22} {'its libraries alone ms':>22} "
              f"{'as SAM python3.13 ms':>20} {'target':>6}")
        for name, r in layer.items():
            print(f"{name:<26} {r['bytecode_ms']:>22} {r['libraries_ms']:>22} {r['no_bytecode_ms']:>20} "
                  f"{r['target_ms']:>6}")
        return
    report = {"python": sys.version.split()[0], "imports": import_times(args.runs),
              "first_request": first_requests(args.first_runs) if args.first_runs else {}}
    (ROOT / "benchmarks" / "last_cold.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'function':<26} {'import ms':>9} {'target':>6} {'libraries ms':>12} {'ratio':>6} {'requests':>8} "
          f"{'boto3':>5} {'pymongo':>7} {'first request ms':>16} status")
    for name, r in report["imports"].items():
        first = report["first_request"].get(name, {})
        print(f"{name:<26} {r['import_ms_median']:>9} {r['target_ms']:>6} {r['libraries_ms_median']:>12} "
              f"{r['ratio_to_libraries']:>6} {r['requests']!s:>8} {r['boto3']!s:>5} {r['pymongo']!s:>7} "
              f"{first.get('first_request_ms_median', '-'):>16} {first.get('status', '')}")


if __name__ == "__main__":
    main()
