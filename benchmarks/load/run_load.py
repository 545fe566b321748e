"""Load run: two local server processes sharing one Mongo (two warm "containers"), many users, several
AC accounts with AC's real limit, and the invariants checked at the end.

    .venv/bin/python benchmarks/load/run_load.py [--duration 60] [--users 50] [--tenants 20]
                                                 [--ac-accounts 10] [--json report.json] [--keep-logs]

Starts, all on 127.0.0.1 with ports the OS picks: nx-27017 (Mongo), moto's server (KMS), one process with
one AC sandbox per AC account (5 requests per sliding second each, 429 beyond), and two
`python -m devstack serve --no-sandbox` processes pointed at that Mongo, moto and KMS key. Tenants
(uid + account_id) are dealt over the AC accounts, each with its own api key; every tenant is connected
before the run. Then locust (headless, `--users` users, `--duration` seconds) runs benchmarks/load/
locustfile.py against both servers. Everything is stopped at the end, whatever happens, and the runner
checks that none of the processes it started is left.

Checks (exit status 1 if any fails): no 5xx and no status outside the contract (a documented "retry later",
429 or 503 with Retry-After, is counted and printed apart: locustfile.py); no record, total or
base URL of another tenant's AC account (locustfile.py); at every AC account: never more than 5 requests
in any sliding second (from the sandbox's own arrival times), no 429, no key of another account; every
stored connection points at its own tenant's AC account. Prints latency percentiles per route.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]

import requests  # noqa: E402

from devstack.ac_sandbox import ACSandbox, most_in_any_window  # noqa: E402
from devstack.stack import DEV_JWT_SECRET, LOCAL_CREDENTIALS_COLLECTION, _free_port, _nx_executable  # noqa: E402
from devstack.stack import mint_token as _mint  # noqa: E402

BASE = "/v1/integrations/activecampaign"
BIN = Path(sys.executable).parent
AC_RATE = 5
DATABASE = "platform"
# the service's own settings are never inherited from the caller's environment (e.g. a test's)
SERVICE_SETTINGS = ("AWS_", "MONGODB_", "KMS_", "JWT_", "AC_", "ACTIVECAMPAIGN_", "REQUEST_BUDGET", "REFERENCE_CACHE",
                    "LOCAL_SCAN", "CREDENTIALS_", "ACCOUNTS_", "RATE_BUDGET", "POWERTOOLS_")


def mint_token(uid: str, account_id: str) -> str:
    return _mint(uid, account_id, secret=DEV_JWT_SECRET, ttl=3 * 3600)


class Processes:
    """Every process the run starts, each in its own session (process group); all stopped in reverse."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT, start_new_session=True)
        proc._log = out  # type: ignore[attr-defined]
        self.started.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        proc._log.close()  # type: ignore[attr-defined]

    def stop_all(self) -> list[str]:
        for _, proc in reversed(self.started):
            self.stop(proc)
        return self.leftovers()

    def leftovers(self) -> list[str]:
        """Processes of ours still alive: the PIDs we started, and anything left in their groups."""
        alive = []
        for name, proc in self.started:
            found = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
            if proc.poll() is None or found:
                alive.append(f"{name} (pid {proc.pid}, group members {found})")
        return alive


def wait_for(what: str, check, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s")


def account_config(n_ac: int, n_tenants: int) -> tuple[list[dict], list[dict]]:
    """AC accounts (sandbox data differing per account) and tenants dealt over them, one key each."""
    accounts = [{"seed": 100 + k, "contacts": 120 + 7 * k, "deals": 60 + 3 * k, "accounts": 25 + k, "keys": [],
                 "rate_limit": AC_RATE} for k in range(n_ac)]
    tenants = []
    for j in range(n_tenants):
        ac = j % n_ac
        key = f"load-key-{j:02d}-{os.urandom(4).hex()}"
        accounts[ac]["keys"].append(key)
        tenants.append({"uid": f"load-user-{j:02d}", "account_id": f"load-account-{j:02d}", "ac": ac,
                        "api_key": key})
    return accounts, tenants


def expected_data(account: dict) -> dict:
    """What each AC account holds, regenerated from the same seed and sizes as its sandbox."""
    sb = ACSandbox(seed=account["seed"], contacts=account["contacts"], deals=account["deals"],
                   accounts=account["accounts"])
    return {
        "contacts": {"total": len(sb.contacts), "records": {c["id"]: c["email"] for c in sb.contacts}},
        "deals": {"total": len(sb.deals), "records": {d["id"]: d.get("title") for d in sb.deals}},
        "accounts": {"total": len(sb.accounts), "records": {a["id"]: a["name"] for a in sb.accounts}},
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else float("nan")


def run(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="load-"))
    procs = Processes(workdir)
    report: dict = {"config": {"duration_s": args.duration, "users": args.users, "tenants": args.tenants,
                               "ac_accounts": args.ac_accounts, "servers": 2}, "workdir": str(workdir)}
    failures: list[str] = []
    try:
        # Mongo, shared by both servers
        mongo_port = _free_port()
        mongo_uri = f"mongodb://127.0.0.1:{mongo_port}/"
        nx = procs.start("nx-27017", [str(_nx_executable()), "--db", "memory", "-p", str(mongo_port),
                                      "--host", "127.0.0.1", "--log-file", str(workdir / "nx.log.txt"),
                                      "--pid-file", str(workdir / "nx.pid")])
        from pymongo import MongoClient

        mongo = MongoClient(mongo_uri, serverSelectionTimeoutMS=2000)
        wait_for("nx-27017", lambda: mongo.admin.command("ping"), proc=nx)

        # KMS (moto), shared by both servers
        moto_port = _free_port()
        moto_url = f"http://127.0.0.1:{moto_port}"
        moto = procs.start("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)])
        wait_for("moto", lambda: requests.get(moto_url, timeout=1).status_code < 600, proc=moto)
        import boto3

        kms = boto3.client("kms", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        kms_key_id = kms.create_key(Description="load run")["KeyMetadata"]["KeyId"]

        # AC accounts
        accounts, tenants = account_config(args.ac_accounts, args.tenants)
        (workdir / "accounts.json").write_text(json.dumps(accounts))
        ready, sandbox_log = workdir / "sandboxes-ready.json", workdir / "sandboxes-requests.json"
        sandboxes = procs.start("sandboxes", [sys.executable, str(HERE / "sandboxes.py"),
                                              str(workdir / "accounts.json"), str(ready), str(sandbox_log),
                                              "--max-seconds", str(args.duration + 300)])
        wait_for("AC sandboxes", ready.exists, proc=sandboxes)
        base_urls = json.loads(ready.read_text())

        # two "containers"
        env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_SETTINGS)}
        env.update({"AC_RATE_BUDGET": "shared", "AC_RATE_LIMIT_PER_SECOND": str(AC_RATE), "MONGODB_DATABASE": DATABASE,
                    "CREDENTIALS_COLLECTION": LOCAL_CREDENTIALS_COLLECTION, "POWERTOOLS_LOG_LEVEL": "WARNING"})
        servers = []
        for i in range(2):
            port = _free_port()
            proc = procs.start(f"server-{i + 1}", [sys.executable, "-m", "devstack", "serve", "--port", str(port),
                                                   "--no-sandbox", "--mongo-uri", mongo_uri, "--aws-endpoint",
                                                   moto_url, "--kms-key-id", kms_key_id], env=env)
            servers.append((f"http://127.0.0.1:{port}", proc))
        for url, proc in servers:
            wait_for(f"server {url}", lambda url=url: requests.get(url + BASE + "/auth", timeout=2).status_code == 401,
                     proc=proc, timeout=60)

        # tenants, connected before the run (through both servers)
        for j, tenant in enumerate(tenants):
            tenant["base_url"] = base_urls[tenant["ac"]]
            tenant["token"] = mint_token(tenant["uid"], tenant["account_id"])
            reply = requests.post(servers[j % 2][0] + BASE + "/auth", timeout=60,
                                  headers={"Authorization": f"Bearer {tenant['token']}"},
                                  json={"api_key": tenant["api_key"], "base_url": tenant["base_url"]})
            if reply.status_code != 200:
                raise RuntimeError(f"connecting {tenant['uid']}: {reply.status_code} {reply.text}")
        config = {"servers": [url for url, _ in servers], "tenants": tenants,
                  "expected": [expected_data(account) for account in accounts]}
        (workdir / "locust-config.json").write_text(json.dumps(config))

        # the load
        results_path = workdir / "locust-results.json"
        locust_env = {**env, "LOAD_CONFIG": str(workdir / "locust-config.json"), "LOAD_RESULTS": str(results_path)}
        started = time.monotonic()
        locust = procs.start("locust", [str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless",
                                        "--users", str(args.users), "--spawn-rate", str(args.users),
                                        "--run-time", f"{args.duration}s", "--stop-timeout", "30",
                                        "--only-summary", "--loglevel", "WARNING"], env=locust_env)
        try:
            locust.wait(timeout=args.duration + 90)
        except subprocess.TimeoutExpired:
            failures.append("locust did not stop in time")
        elapsed = time.monotonic() - started
        procs.stop(locust)
        if not results_path.exists():
            raise RuntimeError(f"locust wrote no results (see {workdir / 'locust.log'})")
        results = json.loads(results_path.read_text())

        # stored connections: each tenant's own AC account
        stored = {(d["account_id"], d["owner"]): d.get("base_url")
                  for d in mongo[DATABASE][LOCAL_CREDENTIALS_COLLECTION].find({}, {"account_id": 1, "owner": 1,
                                                                                    "base_url": 1})}
        for tenant in tenants:
            url = stored.get((tenant["account_id"], tenant["uid"]))
            if url is not None and url != tenant["base_url"]:
                failures.append(f"{tenant['uid']}'s stored connection points at another AC account: {url}")
        foreign = set(stored) - {(t["account_id"], t["uid"]) for t in tenants}
        if foreign:
            failures.append(f"connections stored for no tenant: {sorted(foreign)}")
        budget_docs = mongo[DATABASE]["integrations_activecampaign_rate_budget"].count_documents({})
        mongo.close()

        # servers down, then the sandboxes write what AC received
        for _, proc in servers:
            procs.stop(proc)
        procs.stop(sandboxes)
        log = json.loads(sandbox_log.read_text())
    finally:
        leftovers = procs.stop_all()
    if leftovers:
        failures.append(f"processes left running: {leftovers}")

    # ---- checks and numbers
    statuses = results["statuses"]
    total_requests = sum(sum(counts.values()) for counts in statuses.values())
    waits = {key[len("told to wait: "):]: n for key, n in results["checked"].items() if key.startswith("told to wait")}
    server_errors = {}
    for route, counts in statuses.items():      # 5xx and no answers, but the documented "retry later" 503s
        errors = {s: left for s, n in counts.items() if (s == "0" or int(s) >= 500)
                  and (left := n - waits.get(f"{route} {s}", 0))}
        if errors:
            server_errors[route] = errors
    if server_errors:
        failures.append(f"5xx or no answer: {server_errors}")
    if results["violations"]:
        failures.append(f"{results['checked'].get('violations', 0)} contract/tenancy violations, e.g. "
                        f"{results['violations'][:5]}")
    keys_of = [set(account["keys"]) for account in accounts]
    ac = []
    for k, requests_k in enumerate(log):
        times = [r[0] for r in requests_k]
        worst = most_in_any_window(times)
        throttled = sum(1 for r in requests_k if r[2] == 429)
        refused = sum(1 for r in requests_k if r[2] == 403)
        strangers = {r[3] for r in requests_k} - keys_of[k]
        ac.append({"account": k, "requests": len(requests_k), "max_in_any_1s": worst, "429": throttled,
                   "403": refused})
        if worst > AC_RATE:
            failures.append(f"AC account {k}: {worst} requests within one second (limit {AC_RATE})")
        if throttled:
            failures.append(f"AC account {k}: {throttled} answers 429")
        if strangers:
            failures.append(f"AC account {k}: received keys of other accounts")
    routes = {}
    for route, values in sorted(results["latencies_ms"].items()):
        routes[route] = {"requests": len(values), "p50_ms": round(percentile(values, 50), 1),
                         "p95_ms": round(percentile(values, 95), 1), "p99_ms": round(percentile(values, 99), 1),
                         "max_ms": round(max(values), 1), "statuses": statuses.get(route, {})}
    all_latencies = [v for values in results["latencies_ms"].values() for v in values]
    report.update({
        "ok": not failures, "failures": failures, "elapsed_s": round(elapsed, 1),
        "requests": total_requests, "requests_per_s": round(total_requests / max(elapsed, 1e-9), 1),
        "all_routes": {"p50_ms": round(percentile(all_latencies, 50), 1),
                       "p95_ms": round(percentile(all_latencies, 95), 1),
                       "p99_ms": round(percentile(all_latencies, 99), 1)},
        "routes": routes, "checked": results["checked"], "ac_accounts": ac,
        "ac_requests": sum(a["requests"] for a in ac),
        "ac_max_in_any_1s": max((a["max_in_any_1s"] for a in ac), default=0),
        "rate_budget_documents": budget_docs, "leftover_processes": leftovers, "told_to_wait": waits,
    })
    return report


def print_report(report: dict) -> None:
    c = report["config"]
    print(f"\nLoad: {c['users']} users, {c['tenants']} tenants, {c['ac_accounts']} AC accounts (5 req/s each), "
          f"2 server processes, one Mongo; {report['elapsed_s']} s")
    print(f"  {report['requests']} requests, {report['requests_per_s']} req/s; all routes p50 "
          f"{report['all_routes']['p50_ms']} ms, p95 {report['all_routes']['p95_ms']} ms, "
          f"p99 {report['all_routes']['p99_ms']} ms")
    print(f"  {'route':22s} {'requests':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}  statuses")
    for route, r in report["routes"].items():
        print(f"  {route:22s} {r['requests']:8d} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['p99_ms']:8.1f} "
              f"{r['max_ms']:8.1f}  {r['statuses']}")
    checked = report["checked"]
    print(f"  checked: {checked.get('export_pages', 0)} export pages ({checked.get('records', 0)} records) and "
          f"{checked.get('statuses', 0)} status answers against the tenant's own AC account")
    print(f"  AC: {report['ac_requests']} requests over {len(report['ac_accounts'])} accounts; most in any sliding "
          f"second at one account: {report['ac_max_in_any_1s']} (limit {AC_RATE}); 429s: "
          f"{sum(a['429'] for a in report['ac_accounts'])}; per account: "
          f"{[(a['requests'], a['max_in_any_1s']) for a in report['ac_accounts']]}")
    print(f"  told to wait (documented 429/503 with Retry-After, not errors): {report['told_to_wait'] or 'none'}")
    print(f"  rate budget documents in Mongo: {report['rate_budget_documents']}; processes left: "
          f"{report['leftover_processes'] or 'none'}")
    print("  RESULT: " + ("PASS" if report["ok"] else "FAIL\n    " + "\n    ".join(report["failures"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=50, help="concurrent users (default 50)")
    parser.add_argument("--tenants", type=int, default=20, help="tenants (default 20)")
    parser.add_argument("--ac-accounts", type=int, default=10, help="AC accounts, one sandbox each (default 10)")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs after a passing run")
    args = parser.parse_args(argv)
    if not (1 <= args.duration <= 600 and 1 <= args.users <= 500 and 1 <= args.ac_accounts <= args.tenants <= 1000):
        parser.error("bounded run: 1-600 s, 1-500 users, 1 <= ac-accounts <= tenants <= 1000")
    report = run(args)
    if report["ok"] and not args.keep_logs:
        shutil.rmtree(report.pop("workdir"), ignore_errors=True)
    print_report(report)
    if report.get("workdir"):
        print(f"  logs of every process: {report['workdir']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
