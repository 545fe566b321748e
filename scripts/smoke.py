"""Smoke test of a deployed stack (or `make dev`'s local one): sign a token with the stack's JWT secret,
save an ActiveCampaign connection, read it back, export a page of contacts, delete the connection.

    make smoke API_URL=https://<api-id>.execute-api.<region>.amazonaws.com AC_URL=https://<account>.api-us1.com \\
               AC_KEY=<an AC api key> JWT_SECRET=<the JwtSecretArn secret's value>
    python scripts/smoke.py --api-url ... --ac-url ... --ac-key ... --jwt-secret ...   (or the same env variables)

The token's caller is SMOKE_UID / SMOKE_ACCOUNT_ID (default `smoke-test` / `smoke-test`), a tenant of its
own, so no user's connection is touched; a connection left by an interrupted run is deleted first. Prints
one line per step (status and seconds), never the key, the token or the secret. Exit status 0 when every
step passed, 1 at the first one that did not (the line says what to check), 2 for missing settings.
docs/deploy.md, "Smoke test".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence

import jwt
import requests

BASE = "/v1/integrations/activecampaign"
TIMEOUT = 35          # API Gateway answers within 30 s
TOKEN_TTL = 600


class StepFailed(Exception):
    pass


def sign(secret: str, uid: str, account_id: str) -> str:
    now = int(time.time())
    return jwt.encode({"uid": uid, "account_id": account_id, "iat": now, "exp": now + TOKEN_TTL}, secret,
                      algorithm="HS256")


HINTS = {
    401: "no Authorization header reached the API",
    403: "the authorizer refused the token: is JWT_SECRET the value of the stack's JwtSecretArn secret?",
    404: "not found: is API_URL the stack's ApiUrl output (no stage, no path)?",
    429: "throttled by API Gateway (ApiThrottling* parameters) or AC",
    500: "internal error: read the function's log (docs/runbook.md)",
    502: "AC could not be reached or answered wrongly: is AC_URL the account's API URL?",
    503: "Mongo, KMS or a secret unavailable, or AC throttling (the message says which): docs/runbook.md",
    504: "timed out: Mongo or AC too slow, or Lambda cannot reach them (VPC/NAT, docs/deploy.md)",
}


class Smoke:
    def __init__(self, api_url: str, token: str, out: Callable[[str], None] = print):
        self.api = api_url.rstrip("/") + BASE
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.out = out

    def call(self, method: str, path: str, expect: int, **kwargs) -> dict:
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
        self.out(f"ok   {method} {path} -> {reply.status_code} ({seconds:.2f} s)")
        return body if isinstance(body, dict) else {}

    def run(self, ac_url: str, ac_key: str) -> None:
        status = self.call("GET", "/auth", 200)
        if status.get("data", {}).get("connected"):
            self.out("     (a connection from an earlier run was left: deleting it first)")
            self.call("DELETE", "/auth", 200)
        self.call("POST", "/auth", 200, json={"api_key": ac_key, "base_url": ac_url})
        failure: StepFailed | None = None
        try:
            status = self.call("GET", "/auth", 200)["data"]
            if not status.get("connected") or status.get("needs_reconnect"):
                raise StepFailed(f"FAIL GET /auth: the saved connection reads back as {status}")
            page = self.call("GET", "/export/contacts?page=1&limit=5", 200)
            if not page.get("success") or not isinstance(page.get("data"), list) or "pagination" not in page:
                raise StepFailed("FAIL GET /export/contacts: not a page envelope (success, data, pagination)")
            self.out(f"     {len(page['data'])} contact(s) on page 1 of {page['pagination'].get('total')} in AC")
        except StepFailed as failed:
            failure = failed
        try:
            self.call("DELETE", "/auth", 200)                # never leave the smoke tenant's key behind
        except StepFailed:
            if failure is None:
                raise
        if failure is not None:
            raise failure
        if self.call("GET", "/auth", 200)["data"].get("connected"):
            raise StepFailed("FAIL GET /auth: still connected after DELETE")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/smoke.py", description=__doc__.splitlines()[0])
    for flag, name, what in (("--api-url", "API_URL", "the stack's ApiUrl output"),
                             ("--ac-url", "AC_URL", "an ActiveCampaign account's API URL"),
                             ("--ac-key", "AC_KEY", "that account's API key"),
                             ("--jwt-secret", "JWT_SECRET", "the value of the stack's JWT secret")):
        parser.add_argument(flag, default=os.environ.get(name, ""), help=f"{what} (default: ${name})")
    parser.add_argument("--uid", default=os.environ.get("SMOKE_UID", "smoke-test"))
    parser.add_argument("--account-id", default=os.environ.get("SMOKE_ACCOUNT_ID", "smoke-test"))
    return parser


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    args = _parser().parse_args(argv)
    missing = [name for name, value in (("API_URL", args.api_url), ("AC_URL", args.ac_url), ("AC_KEY", args.ac_key),
                                        ("JWT_SECRET", args.jwt_secret)) if not value.strip()]
    if missing:
        print(f"smoke: set {', '.join(missing)} (make smoke API_URL=... AC_URL=... AC_KEY=... JWT_SECRET=...)",
              file=sys.stderr)
        return 2
    smoke = Smoke(args.api_url, sign(args.jwt_secret, args.uid, args.account_id), out=out)
    try:
        smoke.run(args.ac_url, args.ac_key)
    except StepFailed as failed:
        out(str(failed))
        return 1
    out("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
