"""The reconcile end to end: POST /changes/reconcile queues a job on the export queue, the local worker reads
every id at the AC stand-in over HTTP, compares with the id sets in the (moto) bucket, and puts
`<resource>.deleted` changes into the feed (nx-27017) and on the bus. Deleting a record at the stand-in is
removing it from its data lists, as a test may (devstack/ac_sandbox.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path

import pytest
import requests
from acexport.reconcile import codec, deletions, service

pytestmark = pytest.mark.slow


def start(api, **kwargs):
    return api.call("POST", "/changes/reconcile", **kwargs)


def reconcile(kit, *, timeout: float = 30) -> dict:
    reply = start(kit.api)
    assert reply.status_code == 202, reply.text
    job = reply.json()["data"]
    assert job["resource"] == "reconcile" and job["format"] is None and job["status"] == "queued"
    done = kit.wait(job["id"], timeout=timeout)
    assert done["status"] == "succeeded", done
    return done


def feed(api) -> list[dict]:
    reply = api.call("GET", "/changes?limit=250")
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


def deleted(api) -> list[tuple[str, str]]:
    return sorted((c["type"], c["record_id"]) for c in feed(api) if c["type"].endswith(".deleted"))


def bus(stack) -> list[tuple[str, str]]:
    return sorted((e["detail"]["type"], e["detail"]["record_id"]) for e in stack.events.published()
                  if e["detail-type"] == "ActiveCampaign Change" and e["detail"]["type"].endswith(".deleted"))


def remove(items: list[dict], record_id: str) -> dict:
    (gone,) = [item for item in items if item["id"] == record_id]
    items.remove(gone)
    return gone


def objects(kit, prefix: str = "reconcile/") -> list[str]:
    reply = kit.s3().list_objects_v2(Bucket=os.environ["EXPORT_BUCKET"], Prefix=prefix)
    return [item["Key"] for item in reply.get("Contents") or []]


@pytest.fixture(autouse=True)
def no_id_sets(kit):
    """The bucket outlives a test (moto): every test starts without stored id sets."""
    for key in objects(kit):
        kit.s3().delete_object(Bucket=os.environ["EXPORT_BUCKET"], Key=key)


@pytest.fixture
def quiet_bus(stack):
    stack.events.published()
    with stack.events._published_lock:
        stack.events._published.clear()


def test_baseline_then_each_deletion_once_and_a_recreated_record_is_not_deleted(kit, sandbox, quiet_bus):
    first = reconcile(kit)
    summary = first["reconcile"]
    assert summary["baseline"] is True and summary["deleted"] == {"contacts": 0, "deals": 0, "accounts": 0}
    assert summary["ids"] == {"contacts": len(sandbox.contacts), "deals": len(sandbox.deals),
                              "accounts": len(sandbox.accounts)}
    assert first["records_written"] == sum(summary["ids"].values())
    assert deleted(kit.api) == [] and bus(kit.stack) == []

    contact = sandbox.delete("contacts", "5")
    deal_id = sandbox.deals[len(sandbox.deals) // 2]["id"]
    reply = requests.delete(f"{sandbox.base_url}/_sandbox/deals/{deal_id}", timeout=10)   # as curl would
    assert reply.status_code == 200 and reply.json()["deal"]["id"] == deal_id
    sandbox.delete("accounts", "3")
    sandbox.add_contact(contact["email"], first_name="Again")        # re-created: a new id, same email
    recreated = max(int(c["id"]) for c in sandbox.contacts)

    second = reconcile(kit)
    assert second["reconcile"]["baseline"] is False
    assert second["reconcile"]["deleted"] == {"contacts": 1, "deals": 1, "accounts": 1}
    expected = sorted([("contact.deleted", "5"), ("deal.deleted", deal_id), ("account.deleted", "3")])
    assert deleted(kit.api) == expected
    assert bus(kit.stack) == expected
    change = next(c for c in feed(kit.api) if c["type"] == "contact.deleted")
    assert change["record"] is None and change["resource"] == "contact" and change["initiated_by"] is None
    assert change["occurred_at"] == second["reconcile"]["noticed_at"]
    assert str(recreated) not in [record for _, record in deleted(kit.api)]

    third = reconcile(kit)                                   # nothing new: nothing reported again
    assert third["reconcile"]["deleted"] == {"contacts": 0, "deals": 0, "accounts": 0}
    assert deleted(kit.api) == expected and bus(kit.stack) == expected


def test_the_stored_id_set_is_compact_and_per_tenant(kit, sandbox):
    reconcile(kit)
    (key,) = objects(kit)
    body = kit.s3().get_object(Bucket=os.environ["EXPORT_BUCKET"], Key=key)["Body"].read()
    header, sets = codec.unpack(body)
    assert sets["contacts"] == sorted(int(c["id"]) for c in sandbox.contacts)
    assert sets["deals"] == sorted(int(d["id"]) for d in sandbox.deals)
    assert header["generation"] == 1 and header["connection"]
    assert "account-1" not in key and "user-1" not in key     # a digest names the tenant
    assert len(body) < 2_000


def test_a_reconnect_takes_a_new_baseline_and_delete_auth_removes_the_id_sets(kit, api, sandbox, quiet_bus):
    reconcile(kit)
    assert objects(kit)
    assert api.call("DELETE", "/auth").status_code == 200
    assert objects(kit) == []                                # removed with the connection
    sandbox.generate(contacts=40, deals=10, accounts=5)      # another AC account: most ids are not there
    api.connect()
    job = reconcile(kit)
    assert job["reconcile"]["baseline"] is True
    assert job["reconcile"]["ids"] == {"contacts": 40, "deals": 10, "accounts": 5}
    assert deleted(api) == [] and bus(kit.stack) == []


def test_id_sets_of_another_connection_are_a_new_baseline_too(kit, api, sandbox, mongo):
    """Even if the sets outlived their connection (e.g. S3 refused the delete), a new connection never
    compares with them."""
    reconcile(kit)
    credentials = mongo[os.environ["CREDENTIALS_COLLECTION"]]
    doc = credentials.find_one({})
    credentials.delete_one({"_id": doc["_id"]})
    api.connect()                                            # a new connection id; the old sets stay in S3
    sandbox.generate(contacts=10, deals=2, accounts=1)
    job = reconcile(kit)
    assert job["reconcile"]["baseline"] is True and deleted(api) == []


def test_a_reconcile_failing_half_way_reports_nothing_and_is_retried(kit, sandbox, monkeypatch, quiet_bus):
    reconcile(kit)
    sandbox.requests.clear()
    remove(sandbox.contacts, "7")
    remove(sandbox.deals, sandbox.deals[0]["id"])
    calls = []
    real = deletions.report

    def report(*args, **kwargs):
        calls.append(kit.doc(job_id)["last_error"] if kit.doc(job_id) else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(deletions, "report", report)
    sandbox.inject(500, times=5, path="/deals")              # every attempt of the first deals page fails
    reply = start(kit.api)
    job_id = reply.json()["data"]["id"]
    job = kit.wait(job_id, timeout=60)
    assert job["status"] == "succeeded", job
    assert [r.status for r in sandbox.requests if r.path == "/deals"][:5] == [500] * 5
    assert calls == ["UpstreamUnavailableError: ActiveCampaign is unavailable (it answered 500); retry later"]
    assert len([c for c in deleted(kit.api) if c[0] == "contact.deleted"]) == 1
    assert len(deleted(kit.api)) == 2 and len(bus(kit.stack)) == 2


def test_a_reconcile_stopped_between_report_and_store_reports_each_deletion_once(kit, sandbox, monkeypatch):
    from acexport.reconcile import storage

    reconcile(kit)
    remove(sandbox.accounts, "2")
    real, failures = storage.save, []

    def save(tenant, sets):
        if not failures:
            failures.append(1)
            raise RuntimeError("crashed after reporting")
        return real(tenant, sets)

    monkeypatch.setattr(storage, "save", save)
    job = kit.wait(start(kit.api).json()["data"]["id"], timeout=30)
    assert job["status"] == "succeeded" and failures == [1]
    assert deleted(kit.api) == [("account.deleted", "2")]


def test_two_reconciles_at_once_one_runs(kit, sandbox):
    sandbox.answer_time(0.2)
    replies: list = []
    threads = [threading.Thread(target=lambda: replies.append(start(kit.api))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in replies) == [200, 202]
    assert len({r.json()["data"]["id"] for r in replies}) == 1
    job_id = replies[0].json()["data"]["id"]
    assert start(kit.api).status_code == 200                 # still the same while it runs
    listed = kit.api.call("GET", "/export/jobs").json()["data"]
    assert [j["id"] for j in listed if j["resource"] == "reconcile"] == [job_id]
    assert kit.wait(job_id)["status"] == "succeeded"
    again = start(kit.api)                                   # finished: the next one is a new job
    assert again.status_code == 202 and again.json()["data"]["id"] != job_id
    kit.wait(again.json()["data"]["id"])


def test_starts_racing_in_the_store_insert_one_job(kit, mongo):
    """The local gateway runs one invocation of a function at a time; Lambda runs them side by side. Starts
    racing straight into the store: one job, and every start answers with it."""
    from acexport.tenancy import Tenant

    tenant, results, barrier = Tenant(account_id="account-1", owner="user-1"), [], threading.Barrier(4)

    def race():
        barrier.wait()
        results.append(service.start(tenant))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len({job["_id"] for job, _ in results}) == 1
    assert mongo[os.environ["JOBS_COLLECTION"]].count_documents({"kind": "reconcile"}) == 1
    kit.wait(results[0][0]["_id"])


def test_a_cancelled_reconcile_stores_and_reports_nothing(kit, sandbox):
    sandbox.generate(contacts=3000)
    sandbox.answer_time(0.05)
    job_id = start(kit.api).json()["data"]["id"]
    kit.wait(job_id, until=("running",))
    reply = kit.api.call("DELETE", f"/export/jobs/{job_id}")
    assert reply.status_code == 200 and reply.json()["data"]["status"] == "cancelled"
    kit.settle()
    assert [key for key in objects(kit) if key.endswith("/ids")] == []
    assert deleted(kit.api) == []


def test_records_moving_under_the_offset_walk_are_read_again_not_reported(kit, sandbox, monkeypatch, quiet_bus):
    """A deal deleted before the offset while the walk reads the deals shifts every later deal back one
    place: the next page would skip one, which would then look deleted. The overlap check sees it and the
    walk reads the deals again; only the deal really deleted is reported."""
    sandbox.generate(deals=450)
    reconcile(kit)
    real, seen, victim = sandbox._deals, [], []

    def deals(q, ql):
        seen.append(q.get("offset"))
        if len(seen) == 2:                                   # between the first and the second page
            remove(sandbox.deals, victim[0])
        page = real(q, ql)
        if len(seen) == 1:
            victim.append(page["deals"][10]["id"])           # a deal the first page holds
        return page

    monkeypatch.setattr(sandbox, "_deals", deals)
    job = reconcile(kit)
    assert seen[:3] == ["0", "99", "0"]                       # the second page did not start where the first ended
    assert deleted(kit.api) == [("deal.deleted", victim[0])]
    assert job["reconcile"]["ids"]["deals"] == len(sandbox.deals)


def test_contacts_are_read_in_lanes_with_the_fewest_requests(kit, api, sandbox):
    api.env(EXPORT_PAGES_IN_FLIGHT="4")
    sandbox.generate(contacts=2_000, deals=0, accounts=0)
    sandbox.requests.clear()
    job = reconcile(kit)
    assert job["reconcile"]["ids"]["contacts"] == 2_000
    pages = [r for r in sandbox.requests if r.path == "/contacts"]
    assert 20 <= len(pages) <= 20 + 4                        # 100 ids a page, one short page per lane
    assert job["reconcile"]["requests"] == len(pages) + 2     # and one (empty) page of deals and of accounts


def test_bad_requests_change_nothing(kit, api, mongo):
    reply = start(api, json={"resource": "contacts"})
    assert reply.status_code == 400
    assert start(api, token=api.token(uid="someone-else")).status_code == 404    # no connection
    assert mongo[os.environ["JOBS_COLLECTION"]].count_documents({}) == 0


def test_the_schedule_starts_live_tenants_in_their_own_hour(kit, api, sandbox, mongo):
    assert api.call("PUT", "/live").status_code == 200
    slot = service.slot("account-1", "user-1", 168)
    hour = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    base = int(hour.timestamp() // 3600)
    due = dt.datetime.fromtimestamp((base - base % 168 + slot) * 3600 + 60, dt.UTC)
    other = due + dt.timedelta(hours=1)
    assert service.scheduled(other)["started"] == 0
    result = service.scheduled(due)
    assert result["started"] == 1 and result["due_hour"] == slot
    (job,) = mongo[os.environ["JOBS_COLLECTION"]].find({"kind": "reconcile"})
    assert job["source"] == "schedule"
    assert service.scheduled(due)["started"] == 0           # a repeated tick while it runs starts nothing
    assert kit.wait(job["_id"])["status"] == "succeeded"



def test_a_long_reconcile_is_handed_on_between_steps(kit, api, sandbox, monkeypatch, quiet_bus):
    """Steps of 0.3 s: the ids read so far go to S3 and the cursor to the job, and the next step goes on
    from there (contact lanes, then deal and account offsets)."""
    api.env(EXPORT_STEP_SECONDS="0.3", EXPORT_PAGES_IN_FLIGHT="2")
    sandbox.generate(contacts=3_000, deals=450, accounts=230)
    sandbox.answer_time(0.04)
    saves = []
    from acexport.reconcile import storage

    real = storage.save_partial

    def save_partial(doc, sets):
        saves.append({name: len(ids) for name, ids in sets.sets.items()})
        return real(doc, sets)

    monkeypatch.setattr(storage, "save_partial", save_partial)
    first = reconcile(kit, timeout=120)
    assert len(saves) >= 3 and saves[0]["contacts"] < 3_000
    assert first["reconcile"]["ids"] == {"contacts": 3_000, "deals": 450, "accounts": 230}
    assert [key for key in objects(kit) if "/jobs/" in key] == []        # the partial ids went with the job
    sandbox.delete("contacts", "2999")
    sandbox.delete("deals", sandbox.deals[300]["id"])
    sandbox.delete("accounts", "200")
    second = reconcile(kit, timeout=120)
    assert second["reconcile"]["deleted"] == {"contacts": 1, "deals": 1, "accounts": 1}
    assert len(deleted(kit.api)) == 3


def test_only_live_enabled_tenants_are_scheduled(kit, api, mongo):
    api.env(RECONCILE_INTERVAL_HOURS="1")                    # every tenant due every hour
    other = api.token(uid="user-2")
    api.connect(token=other)                                 # connected, live changes off
    assert api.call("PUT", "/live").status_code == 200       # user-1: live changes on
    assert service.scheduled()["started"] == 1
    (job,) = mongo[os.environ["JOBS_COLLECTION"]].find({"kind": "reconcile"})
    assert job["owner"] == "user-1"
    kit.wait(job["_id"])


def test_another_tenant_sees_neither_the_job_nor_the_deletions(kit, api, sandbox):
    other = api.token(uid="user-2")
    api.connect(token=other)
    reconcile(kit)
    sandbox.delete("contacts", "9")
    job = reconcile(kit)
    assert deleted(api) == [("contact.deleted", "9")]
    assert api.call("GET", "/changes", token=other).json()["data"] == []
    assert api.call("GET", f"/export/jobs/{job['id']}", token=other).status_code == 404
    assert api.call("DELETE", f"/export/jobs/{job['id']}", token=other).status_code == 404
    mine = start(api, token=other)                           # its own reconcile: a baseline of its own
    assert mine.status_code == 202 and mine.json()["data"]["id"] != job["id"]
    done = kit.wait(mine.json()["data"]["id"], token=other)
    assert done["reconcile"]["baseline"] is True and deleted(api) == [("contact.deleted", "9")]


def test_the_sample_events_run_through_their_handlers(kit, api, stack):
    """events/changes_reconcile.json (the dev tenant) and events/reconcile_schedule.json, invoked as Lambda
    invokes them."""
    api.connect(token=api.token(uid="dev-user", account_id="dev-account"))
    with open(Path(__file__).resolve().parents[2] / "events" / "changes_reconcile.json") as file:
        reply = stack.api.invoke("ChangesReconcileFunction", json.load(file))
    assert reply["statusCode"] == 202
    job = json.loads(reply["body"])["data"]
    assert job["resource"] == "reconcile"
    with open(Path(__file__).resolve().parents[2] / "events" / "reconcile_schedule.json") as file:
        tick = stack.api.invoke("ReconcileScheduleFunction", json.load(file))
    assert tick["started"] == 0 and tick["interval_hours"] == 168      # nobody has live changes on
    kit.wait(job["id"], token=api.token(uid="dev-user", account_id="dev-account"))
