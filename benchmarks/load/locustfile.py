"""The users of the load run (locust, headless; started by run_load.py, which writes LOAD_CONFIG).

Each user acts for one tenant (users are dealt to the tenants in turn) and sends each request to one of
the two servers at random, as API Gateway spreads requests over warm containers. The mix: exports of
contacts, deals and accounts (pages, AC-side and local filters and orders), status, saves (mostly 409:
already stored) and reconnects (delete, then save again).

Every answer is checked: no 5xx; only the statuses the contract allows for the tenant's possible states
(docs/contract.md), among them the two "slow down" answers, counted apart as `told to wait`: a save past
AUTH_SAVE_ATTEMPTS per window (429 + Retry-After) and AC's rate budget not to be had within the request's
wait (503 `ActiveCampaign rate limit reached; retry later` + Retry-After: a save waits 3 s at most);
every exported record is one of the tenant's own AC account (id and email/title/name as that sandbox
generated them), totals of unfiltered pages equal that account's; the status shows the tenant's own
base URL. Results (latencies per route, statuses, violations) go to LOAD_RESULTS when locust quits.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from collections import Counter, defaultdict

from locust import HttpUser, between, events, task

CONFIG = json.loads(open(os.environ["LOAD_CONFIG"]).read())  # noqa: SIM115 - read once at import
BASE = "/v1/integrations/activecampaign"
ALLOWED = {  # statuses a tenant may see while other users of the same tenant save and delete
    "GET /auth": {200},
    "POST /auth": {200, 409},   # and a documented 429 past AUTH_SAVE_ATTEMPTS saves (_told_to_wait)
    "DELETE /auth": {200, 404},
    "GET /export/contacts": {200, 404},
    "GET /export/deals": {200, 404},
    "GET /export/accounts": {200, 404},
}
# (query, exact total expected?) - a filtered query's total is the filter's, not the account's
CONTACT_QUERIES = [("page=1&limit=20", True), ("page=2&limit=50", True), ("page=1&limit=100", True),
                   ("page=3&limit=10", True), ("orders[email]=ASC&filters[firstName]=John", False)]
DEAL_QUERIES = [("page=1&limit=20", True), ("page=2&limit=25", True), ("orders[title]=DESC&limit=10", True)]
ACCOUNT_QUERIES = [("page=1&limit=10", True), ("filters[name]=Acme Corporation", False),
                   ("orders[name]=DESC&limit=5", True)]
# record -> the field that identifies it in the tenant's AC account
KEY_FIELD = {"contacts": "email", "deals": "title", "accounts": "name"}

_lock = threading.Lock()
_latencies: dict[str, list[float]] = defaultdict(list)
_statuses: dict[str, Counter] = defaultdict(Counter)
_violations: list[str] = []
_checked = Counter()
_tenants = itertools.count()


def _violation(text: str) -> None:
    with _lock:
        if len(_violations) < 200:
            _violations.append(text)
        _checked["violations"] += 1


@events.request.add_listener
def _record(request_type, name, response_time, response_length, response=None, exception=None, **_):
    status = getattr(response, "status_code", 0) if response is not None else 0
    with _lock:
        _latencies[name].append(response_time)
        _statuses[name][str(status)] += 1


@events.quitting.add_listener
def _dump(environment, **_):
    out = {"latencies_ms": _latencies, "statuses": {k: dict(v) for k, v in _statuses.items()},
           "violations": _violations, "checked": dict(_checked), "finished_at": time.time()}
    with open(os.environ["LOAD_RESULTS"], "w") as fh:
        json.dump(out, fh)


def _told_to_wait(reply) -> bool:
    """A documented "retry later": 429 (too many saves) or 503 (AC's rate limit), each with Retry-After and the
    error envelope that says so (docs/contract.md)."""
    if reply.status_code not in (429, 503) or not reply.headers.get("Retry-After"):
        return False
    try:
        body = reply.json()
    except ValueError:
        return False
    expected = {429: "Too many attempts to save a connection; retry later",
                503: "ActiveCampaign rate limit reached; retry later"}[reply.status_code]
    return body.get("errno") == reply.status_code and body.get("message") == expected


class TenantUser(HttpUser):
    wait_time = between(0.05, 0.5)
    host = CONFIG["servers"][0]

    def on_start(self) -> None:
        self.tenant = CONFIG["tenants"][next(_tenants) % len(CONFIG["tenants"])]
        self.expected = CONFIG["expected"][self.tenant["ac"]]
        self.headers = {"Authorization": f"Bearer {self.tenant['token']}"}

    def _url(self, path: str) -> str:
        return random.choice(CONFIG["servers"]) + BASE + path

    def _send(self, method: str, route: str, path: str, **kwargs):
        with self.client.request(method, self._url(path), name=route, headers=self.headers, timeout=90,
                                 catch_response=True, **kwargs) as reply:
            status = reply.status_code
            if _told_to_wait(reply):
                reply.success()
                with _lock:
                    _checked[f"told to wait: {route} {status}"] += 1
                return None
            if status >= 500 or status == 0:   # 0: no answer at all (connection refused, reset, timeout)
                reply.failure(f"{status}")
                _violation(f"{route} {path}: {status} {reply.text[:200] if status else repr(reply.error)[:300]}")
                return None
            if status not in ALLOWED[route]:
                reply.failure(f"unexpected {status}")
                _violation(f"{route} {path}: unexpected {status} {reply.text[:200]}")
                return None
            reply.success()
            return reply

    def _export(self, resource: str, queries) -> None:
        query, exact_total = random.choice(queries)
        reply = self._send("GET", f"GET /export/{resource}", f"/export/{resource}?{query}")
        if reply is None or reply.status_code != 200:
            return
        body = reply.json()
        own = self.expected[resource]
        field = KEY_FIELD[resource]
        for record in body.get("data") or []:
            if own["records"].get(str(record.get("id"))) != record.get(field):
                _violation(f"{self.tenant['uid']} got a {resource} record not of its AC account: "
                           f"{record.get('id')} {record.get(field)!r}")
                return
        if exact_total and body["pagination"]["total"] != str(own["total"]):
            _violation(f"{self.tenant['uid']} {resource}?{query}: total {body['pagination']['total']} "
                       f"!= {own['total']}")
            return
        with _lock:
            _checked["export_pages"] += 1
            _checked["records"] += len(body.get("data") or [])

    @task(4)
    def export_contacts(self) -> None:
        self._export("contacts", CONTACT_QUERIES)

    @task(2)
    def export_deals(self) -> None:
        self._export("deals", DEAL_QUERIES)

    @task(2)
    def export_accounts(self) -> None:
        self._export("accounts", ACCOUNT_QUERIES)

    @task(2)
    def status(self) -> None:
        reply = self._send("GET", "GET /auth", "/auth")
        if reply is None:
            return
        data = reply.json().get("data") or {}
        if data.get("connected") and data.get("base_url") != self.tenant["base_url"]:
            _violation(f"{self.tenant['uid']} sees base_url {data.get('base_url')} of another AC account")
        with _lock:
            _checked["statuses"] += 1

    def _save(self) -> None:
        self._send("POST", "POST /auth", "/auth",
                   json={"api_key": self.tenant["api_key"], "base_url": self.tenant["base_url"]})

    @task(1)
    def save(self) -> None:
        self._save()

    @task(1)
    def reconnect(self) -> None:
        self._send("DELETE", "DELETE /auth", "/auth")
        self._save()
