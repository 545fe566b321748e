"""Smoke test of a deployed stack (or `make dev`'s local one), covering the product: sign a token with the
stack's JWT secret, save an ActiveCampaign connection and read it back, export a page of contacts, run a
full export job to the end and count the records in its file, and a live-changes round trip (register the
webhook, send one test delivery to the receiver AC was given, read the change back, turn live changes off
and see the receiver refuse the URL); then delete the connection.

    make smoke API_URL=https://<api-id>.execute-api.<region>.amazonaws.com AC_URL=https://<account>.api-us1.com \\
               AC_KEY=<an AC api key> JWT_SECRET=<the JwtSecretArn secret's value>
    python scripts/smoke.py --api-url ... --ac-url ... --ac-key ... --jwt-secret ...   (or the same env variables)

The token's caller is SMOKE_UID / SMOKE_ACCOUNT_ID (default `smoke-test` / `smoke-test`), a tenant of its
own, so no user's connection, job or change feed is touched; a connection or live subscription left by an
interrupted run is removed first. The test delivery is made up (contact email `smoke-<n>@example.invalid`):
nothing is changed in the AC account; the receiver URL is read from AC with the key (AC lists the account's
webhooks) and is never printed. What stays: the job's file until the bucket's lifecycle rule
(ExportFileDays) and the one test change in the smoke tenant's feed until ChangesTtlDays, plus the
`ActiveCampaign Change` and `... Export Job Finished` events it put on the bus (their account_id is the smoke
tenant's).

The job exports SMOKE_JOB_RESOURCE (default `accounts`, usually the smallest; `contacts` or `deals` for a
bigger test) as NDJSON and waits at most SMOKE_JOB_SECONDS (default 600) before cancelling it and failing.

Prints one line per step (status and seconds), never the key, the token, the secret or the hook URL. Exit
status 0 when every step passed, 1 at the first one that did not (the line says what to check), 2 for
missing settings. docs/deploy.md, "Smoke test"; tests/e2e runs the same steps under pytest.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import jwt
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "common"))
# The JWT secret in either of its forms (a plain key, or the rotation object): acexport/identity.py.
from acexport.identity import SecretFormatError, signing_keys

BASE = "/v1/integrations/activecampaign"
HOOKS_PATH = f"{BASE}/hooks/"
TIMEOUT = 35          # API Gateway answers within 30 s
TOKEN_TTL = 1800      # long enough for a job of a few minutes
TERMINAL = ("succeeded", "failed", "cancelled")


class StepFailed(Exception):
    pass


def sign(secret: str, uid: str, account_id: str) -> str:
    now = int(time.time())
    return jwt.encode({"uid": uid, "account_id": account_id, "iat": now, "exp": now + TOKEN_TTL},
                      signing_keys(secret).current, algorithm="HS256")


HINTS = {
    401: "no Authorization header reached the API",
    403: "the authorizer refused the token: is JWT_SECRET the value of the stack's JwtSecretArn secret?",
    404: "not found: is API_URL the stack's ApiUrl output (no stage, no path)?",
    410: "the receiver does not know the hook URL (revoked, or another stack's)",
    429: "throttled by API Gateway (ApiThrottling* parameters) or AC",
    500: "internal error: read the function's log (docs/runbook.md)",
    502: "AC could not be reached or answered wrongly: is AC_URL the account's API URL?",
    503: "Mongo, KMS or a secret unavailable, or AC throttling (the message says which): docs/runbook.md",
    504: "timed out: Mongo or AC too slow, or Lambda cannot reach them (VPC/NAT, docs/deploy.md)",
}


def test_delivery(marker: int) -> dict[str, str]:
    """One made-up `update` delivery as AC posts it (form-encoded, bracketed keys; docs/live.md)."""
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return {"type": "update", "date_time": now, "initiated_by": "admin", "initiated_from": "admin", "list": "0",
            "contact[id]": str(marker), "contact[email]": f"smoke-{marker}@example.invalid",
            "contact[first_name]": "Smoke", "contact[last_name]": "Test"}


class Smoke:
    def __init__(self, api_url: str, token: str, out: Callable[[str], None] = print, *,
                 poll_seconds: float = 2.0):
        self.api = api_url.rstrip("/") + BASE
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.plain = requests.Session()   # for what is not the API: no token sent to S3, AC or the receiver
        self.out = out
        self.poll_seconds = poll_seconds

    # ------------------------------------------------------------------ HTTP
    def call(self, method: str, path: str, expect: int, *, quiet: bool = False, **kwargs) -> dict:
        started = time.monotonic()
        try:
            reply = self.http.request(method, self.api + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise StepFailed(f"FAIL {method} {path}: {type(exc).__name__} (is API_URL right and reachable?)") from None
        seconds = time.monotonic() - started
        try:
            body = reply.json()
        except ValueError:
            body = {}
        message = body.get("message", "") if isinstance(body, dict) else ""
        if reply.status_code != expect:
            hint = HINTS.get(reply.status_code, "")
            line = f"FAIL {method} {path}: {reply.status_code} {message!r} (expected {expect}) {hint}"
            raise StepFailed(line.rstrip())
        if not quiet:
            self.out(f"ok   {method} {path} -> {reply.status_code} ({seconds:.2f} s)")
        return body if isinstance(body, dict) else {}

    def _ac_hooks(self, ac_url: str, ac_key: str) -> dict[str, str]:
        """This service's webhooks at the AC account: id -> URL (AC's GET /api/3/webhooks; the key reads them)."""
        found: dict[str, str] = {}
        offset = 0
        while True:
            for attempt in range(5):   # AC allows 5 requests a second per account, shared with the service
                try:
                    reply = self.plain.get(f"{ac_url.rstrip('/')}/api/3/webhooks", timeout=TIMEOUT,
                                           params={"limit": 100, "offset": offset}, headers={"Api-Token": ac_key})
                except requests.RequestException as exc:
                    raise StepFailed(f"FAIL GET <AC_URL>/api/3/webhooks: {type(exc).__name__}") from None
                if reply.status_code != 429:
                    break
                try:
                    time.sleep(min(10.0, float(reply.headers.get("Retry-After") or 1) + attempt))
                except ValueError:
                    time.sleep(1 + attempt)
            if reply.status_code != 200:
                raise StepFailed(f"FAIL GET <AC_URL>/api/3/webhooks: {reply.status_code} "
                                 "(is AC_KEY that account's key?)")
            body = reply.json()
            hooks = body.get("webhooks") or []
            for hook in hooks:
                url = str(hook.get("url") or "")
                if HOOKS_PATH in url:
                    found[str(hook.get("id"))] = url
            offset += len(hooks)
            if not hooks or offset >= int((body.get("meta") or {}).get("total") or 0):
                return found

    def _deliver(self, url: str, form: dict[str, str], expect: int, what: str) -> None:
        try:
            reply = self.plain.post(url, data=form, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise StepFailed(f"FAIL POST <receiver>: {type(exc).__name__} (can the hook URL be reached?)") from None
        if reply.status_code != expect:
            hint = HINTS.get(reply.status_code, "")
            raise StepFailed(f"FAIL POST <receiver> ({what}): {reply.status_code} (expected {expect}) {hint}".rstrip())
        self.out(f"ok   POST <receiver> ({what}) -> {reply.status_code}")

    # ------------------------------------------------------------------ steps
    def reset(self) -> None:
        """Remove what an interrupted run left (DELETE /auth also removes live webhooks)."""
        if self.call("GET", "/auth", 200).get("data", {}).get("connected"):
            self.out("     (a connection from an earlier run was left: deleting it first)")
            self.call("DELETE", "/auth", 200)

    def connect(self, ac_url: str, ac_key: str) -> None:
        self.call("POST", "/auth", 200, json={"api_key": ac_key, "base_url": ac_url})
        status = self.call("GET", "/auth", 200)["data"]
        if not status.get("connected") or status.get("needs_reconnect"):
            raise StepFailed(f"FAIL GET /auth: the saved connection reads back as {status}")

    def page(self) -> int:
        page = self.call("GET", "/export/contacts?page=1&limit=5", 200)
        if not page.get("success") or not isinstance(page.get("data"), list) or "pagination" not in page:
            raise StepFailed("FAIL GET /export/contacts: not a page envelope (success, data, pagination)")
        self.out(f"     {len(page['data'])} contact(s) on page 1 of {page['pagination'].get('total')} in AC")
        return len(page["data"])

    def job(self, resource: str = "accounts", timeout: float = 600) -> int:
        """Start a full export, wait for it, download the file and count its records."""
        job = self.call("POST", f"/export/{resource}/jobs", 202, json={"format": "ndjson"})["data"]
        job_id = job["id"]
        deadline = time.monotonic() + timeout
        while job.get("status") not in TERMINAL:
            if time.monotonic() > deadline:
                self.call("DELETE", f"/export/jobs/{job_id}", 200)
                raise StepFailed(f"FAIL export job: still {job.get('status')} after {timeout:.0f} s (cancelled; "
                                 "is the worker running? docs/runbook.md; SMOKE_JOB_SECONDS for a bigger account)")
            time.sleep(self.poll_seconds)
            job = self.call("GET", f"/export/jobs/{job_id}", 200, quiet=True)["data"]
        self.out(f"ok   GET /export/jobs/<id> -> {job['status']} ({job.get('records_written')} records)")
        if job["status"] != "succeeded":
            raise StepFailed(f"FAIL export job: {job['status']}: {job.get('error')}")
        file = job.get("file") or {}
        try:
            reply = self.plain.get(file.get("url") or "", timeout=120)
        except requests.RequestException as exc:
            raise StepFailed(f"FAIL download of the job's file: {type(exc).__name__}") from None
        if reply.status_code != 200:
            raise StepFailed(f"FAIL download of the job's file: {reply.status_code} (the pre-signed URL)")
        lines = [line for line in gzip.decompress(reply.content).splitlines() if line.strip()]
        for line in lines:
            json.loads(line)
        if len(lines) != file.get("records") or len(lines) != job.get("records_written"):
            raise StepFailed(f"FAIL the job's file holds {len(lines)} records; the job says {file.get('records')}")
        self.out(f"ok   the job's file ({len(reply.content)} bytes gzip) holds {len(lines)} {resource}, "
                 "as the job says")
        return len(lines)

    def live(self, ac_url: str, ac_key: str, *, wait: float = 30) -> None:
        """Register live changes, deliver one made-up change to the registered receiver, read it back,
        turn live changes off, and see the receiver refuse the revoked URL."""
        if self.call("GET", "/live", 200).get("data", {}).get("enabled"):
            self.out("     (live changes from an earlier run were on: turning them off first)")
            self.call("DELETE", "/live", 200)
        before = self._ac_hooks(ac_url, ac_key)
        enabled = self.call("PUT", "/live", 200)["data"]
        if not enabled.get("enabled"):
            raise StepFailed(f"FAIL PUT /live: answered {enabled}")
        new = {hook_id: url for hook_id, url in self._ac_hooks(ac_url, ac_key).items() if hook_id not in before}
        if len(new) != 1:
            raise StepFailed(f"FAIL PUT /live: {len(new)} new webhook(s) of this service at AC, expected 1")
        ((hook_id, url),) = new.items()
        self.out("ok   the webhook is registered at AC (its URL is not printed: it holds the secret)")
        marker = int(time.time() * 1000) % 10**12
        form = test_delivery(marker)
        self._deliver(url, form, 200, "a test delivery")
        change = self._find_change(form["contact[email]"], wait)
        self.out(f"ok   GET /changes: {change['type']} of contact {change['record_id']} (cursor {change['cursor']})")
        self.call("DELETE", "/live", 200)
        self._deliver(url, form, 410, "the same URL after DELETE /live")
        if hook_id in self._ac_hooks(ac_url, ac_key):
            raise StepFailed("FAIL DELETE /live: the webhook is still registered at AC")

    def _find_change(self, email: str, wait: float) -> dict:
        deadline, cursor = time.monotonic() + wait, None
        while time.monotonic() < deadline:
            query = "limit=250" + (f"&after={cursor}" if cursor else "")
            body = self.call("GET", f"/changes?{query}", 200, quiet=True)
            for change in body.get("data") or []:
                if (change.get("record") or {}).get("email") == email:
                    return change
            cursor = body.get("next_cursor") or cursor
            if not body.get("data"):   # read to the end of the feed: wait for the change to arrive
                time.sleep(min(self.poll_seconds, 1.0))
        raise StepFailed(f"FAIL GET /changes: the test change did not arrive within {wait:.0f} s")

    def disconnect(self) -> None:
        self.call("DELETE", "/auth", 200)
        if self.call("GET", "/auth", 200)["data"].get("connected"):
            raise StepFailed("FAIL GET /auth: still connected after DELETE")

    def run(self, ac_url: str, ac_key: str, *, job_resource: str = "accounts", job_seconds: float = 600) -> None:
        self.reset()
        self.connect(ac_url, ac_key)
        failure: StepFailed | None = None
        try:
            self.page()
            self.job(job_resource, job_seconds)
            self.live(ac_url, ac_key)
        except StepFailed as failed:
            failure = failed
        try:
            self.disconnect()                       # never leave the smoke tenant's key (or webhook) behind
        except StepFailed:
            if failure is None:
                raise
        if failure is not None:
            raise failure


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/smoke.py", description=__doc__.splitlines()[0])
    for flag, name, what in (("--api-url", "API_URL", "the stack's ApiUrl output"),
                             ("--ac-url", "AC_URL", "an ActiveCampaign account's API URL"),
                             ("--ac-key", "AC_KEY", "that account's API key"),
                             ("--jwt-secret", "JWT_SECRET", "the value of the stack's JWT secret")):
        parser.add_argument(flag, default=os.environ.get(name, ""), help=f"{what} (default: ${name})")
    parser.add_argument("--uid", default=os.environ.get("SMOKE_UID", "smoke-test"))
    parser.add_argument("--account-id", default=os.environ.get("SMOKE_ACCOUNT_ID", "smoke-test"))
    parser.add_argument("--job-resource", choices=("contacts", "deals", "accounts"),
                        default=os.environ.get("SMOKE_JOB_RESOURCE", "accounts"))
    parser.add_argument("--job-seconds", type=float, default=float(os.environ.get("SMOKE_JOB_SECONDS") or 600))
    return parser


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    args = _parser().parse_args(argv)
    missing = [name for name, value in (("API_URL", args.api_url), ("AC_URL", args.ac_url), ("AC_KEY", args.ac_key),
                                        ("JWT_SECRET", args.jwt_secret)) if not value.strip()]
    if missing:
        print(f"smoke: set {', '.join(missing)} (make smoke API_URL=... AC_URL=... AC_KEY=... JWT_SECRET=...)",
              file=sys.stderr)
        return 2
    try:
        token = sign(args.jwt_secret, args.uid, args.account_id)
    except SecretFormatError as exc:
        print(f"smoke: JWT_SECRET: {exc}", file=sys.stderr)
        return 2
    local = args.api_url.startswith(("http://127.0.0.1", "http://localhost"))
    smoke = Smoke(args.api_url, token, out=out, poll_seconds=0.25 if local else 2.0)
    try:
        smoke.run(args.ac_url, args.ac_key, job_resource=args.job_resource, job_seconds=args.job_seconds)
    except StepFailed as failed:
        out(str(failed))
        return 1
    out("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
