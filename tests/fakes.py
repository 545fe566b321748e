"""Test doubles shared by the tests: a fake clock, the walk's drivers, and in-memory fakes of AC and of the
stores that satisfy acexport.ports' Protocols (the unit tier's stand-ins for the sandbox and Mongo)."""

import copy
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path


class FakeClock:
    """A clock that only moves when something sleeps on it: `clock()` reads it, `clock.sleep(s)` advances it."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def walk_ids(client, resource: str, cursor: dict | None = None) -> list[str]:
    """The ids a full-export walk (acexport.jobs.walk.Walk) writes for `resource` through `client`, one page
    per step, resuming from each page's cursor as the worker does across steps."""
    from acexport.jobs import spec as job_spec
    from acexport.jobs.walk import Walk

    spec = job_spec.parse(resource, {})
    seen, cursor = [], dict(cursor or {})
    while True:
        with Walk(client, spec, cursor, deadline=time.monotonic() + 30, patience=0) as walk:
            page = walk.next_page(prefetch=False)
        seen += [r["id"] for r in page.records]
        cursor = page.cursor
        if page.last:
            return seen


def walk_ahead(client, resource: str, cursor: dict | None = None, *, in_flight: int = 5):
    """The ids one full-export walk writes for `resource` with up to `in_flight` pages requested at once (offset
    pages ahead for deals and accounts, slices for contacts), in one step; and the walk (its `wasted`)."""
    from acexport.jobs import spec as job_spec
    from acexport.jobs.walk import Walk

    spec = job_spec.parse(resource, {})
    seen = []
    with Walk(client, spec, dict(cursor or {}), deadline=time.monotonic() + 30, patience=0,
              in_flight=in_flight) as walk:
        while True:
            page = walk.next_page()
            seen += [r["id"] for r in page.records]
            if page.last:
                return seen, walk


# ---- in-memory stand-ins behind acexport.ports' Protocols (the unit tier: no socket, no process)

ANSWERS = Path(__file__).parent / "fixtures" / "ac_answers"
_OWNER_KEYS = ("contact", "dealId", "deal_id")     # how a sideloaded item names its record (ac.resources)


def recorded_answers(name: str = "account") -> dict[str, dict]:
    """{GET path: AC's answer} of tests/fixtures/ac_answers/<name>.json (each answer's `source` note dropped)."""
    recorded = json.loads((ANSWERS / f"{name}.json").read_text())
    return {path: entry["answer"] for path, entry in recorded.items()}


class FakeAC:
    """An `acexport.ports.ACCaller` answering from recorded AC answers, in-process.

    GET `path` answers the recorded body of that path: its collection (the path's name: /contacts ->
    `contacts`) cut by `offset` and `limit` (AC's default limit 20), contacts also by `id_greater`, `id_less`
    and `orders[id]` (the walk's slices; `meta.total` then counts what the filters match, as AC does), and
    sideloaded items kept for the page's records only. A path with no recorded answer fails the test: the code
    asked AC for something the test did not expect. Writes (POST/PUT/DELETE) are recorded in `writes` and
    answer `{}`. Every call is in `requests` as (method, path, params)."""

    key_fingerprint = "fake-key-fingerprint"

    def __init__(self, answers: dict[str, dict] | None = None, *, host: str = "acme.api-us1.com"):
        self.answers = recorded_answers() if answers is None else answers
        self.host = host
        self.calls = 0
        self.throttled = 0
        self.requests: list[tuple[str, str, list[tuple[str, str]]]] = []
        self.writes: list[tuple[str, str, dict | None]] = []
        self._lock = threading.Lock()     # the walk asks from several threads

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> dict:
        with self._lock:
            self.calls += 1
            self.requests.append(("GET", path, list(params or [])))
        if path not in self.answers:
            raise AssertionError(f"FakeAC has no recorded answer for GET {path} (tests/fixtures/ac_answers)")
        body = copy.deepcopy(self.answers[path])
        name = path.strip("/").split("/")[0]
        if isinstance(body.get(name), list):
            self._page(body, name, dict(params or []))
        return body

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None, *,
                json: dict | None = None, idempotent: bool = True, missing_ok: bool = False) -> dict | None:
        if method == "GET":
            return self.get(path, params)
        with self._lock:
            self.calls += 1
            self.requests.append((method, path, list(params or [])))
            self.writes.append((method, path, json))
        return {}

    @staticmethod
    def _page(body: dict, name: str, query: dict[str, str]) -> None:
        items = body[name]
        if name == "contacts":
            low, high = int(query.get("id_greater", -1)), int(query.get("id_less", 2**63))
            items = [c for c in items if low < int(c["id"]) < high]
            items.sort(key=lambda c: int(c["id"]), reverse=query.get("orders[id]") == "DESC")
            if ("id_greater" in query or "id_less" in query) and "total" in body.get("meta", {}):
                body["meta"]["total"] = str(len(items))
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
        body[name] = items[offset:offset + limit]
        ids = {str(record.get("id")) for record in body[name]}
        for key, value in body.items():
            if key != name and isinstance(value, list):
                body[key] = [item for item in value
                             if not any(k in item for k in _OWNER_KEYS)
                             or any(str(item.get(k)) in ids for k in _OWNER_KEYS if k in item)]


@dataclass(frozen=True)
class FakeKeyPair:
    base_url: str
    api_key: str


class FakeCredentialStore:
    """An `acexport.ports.CredentialStore` over a dict: one connection per (account_id, owner), as the real
    store keys them, each answered by its own FakeAC (`connect`)."""

    def __init__(self):
        self.docs: dict[tuple[str, str], dict] = {}
        self.clients: dict[tuple[str, str], FakeAC] = {}

    def connect(self, tenant, ac: FakeAC, *, api_key: str = "fake-key") -> dict:
        key = (tenant.account_id, tenant.owner)
        self.docs[key] = {"_id": f"conn-{len(self.docs) + 1}", "account_id": tenant.account_id,
                          "owner": tenant.owner, "base_url": f"https://{ac.host}", "api_key": api_key,
                          "rejected_at": None}
        self.clients[key] = ac
        return self.docs[key]

    def find(self, tenant) -> dict | None:
        doc = self.docs.get((tenant.account_id, tenant.owner))
        return None if doc is None else dict(doc)

    def credentials(self, doc: dict) -> FakeKeyPair:
        return FakeKeyPair(base_url=doc["base_url"], api_key=doc["api_key"])

    def client(self, doc: dict, *, deadline: float) -> FakeAC:
        return self.clients[(doc["account_id"], doc["owner"])]

    def mark_rejected(self, tenant) -> None:
        self.docs[(tenant.account_id, tenant.owner)]["rejected_at"] = "now"


class FakeJobStore:
    """An `acexport.ports.JobStore` over a dict: a request key seen before answers its job and False; a tenant
    holds at most `slots` queued or running jobs (then `NoFreeSlot`); `get_for` and `cancel` answer None for
    another tenant's job as for a missing one."""

    ACTIVE = ("queued", "running")

    def __init__(self):
        self.jobs: dict[str, dict] = {}

    @staticmethod
    def _owned(doc: dict, tenant) -> bool:
        return doc["account_id"] == tenant.account_id and doc["owner"] == tenant.owner

    def create(self, doc: dict, *, slots: int) -> tuple[dict, bool]:
        from acexport.jobs.store import NoFreeSlot

        for existing in self.jobs.values():
            if existing.get("request_key") == doc.get("request_key"):
                return dict(existing), False
        active = [j for j in self.jobs.values() if j["status"] in self.ACTIVE
                  and (j["account_id"], j["owner"]) == (doc["account_id"], doc["owner"])]
        if len(active) >= slots:
            raise NoFreeSlot()
        stored = {**doc, "status": "queued", "seq": 0}
        self.jobs[stored["_id"]] = stored
        return dict(stored), True

    def get(self, job_id: str) -> dict | None:
        doc = self.jobs.get(job_id)
        return None if doc is None else dict(doc)

    def get_for(self, tenant, job_id: str) -> dict | None:
        doc = self.jobs.get(job_id)
        return dict(doc) if doc is not None and self._owned(doc, tenant) else None

    def cancel(self, tenant, job_id: str) -> dict | None:
        doc = self.jobs.get(job_id)
        if doc is None or not self._owned(doc, tenant) or doc["status"] not in self.ACTIVE:
            return None
        doc["status"] = "cancelled"
        return dict(doc)
