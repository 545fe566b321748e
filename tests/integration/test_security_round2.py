"""The second security round (second security round), findings 2-4 and 6-11 and the Mongo items, on the local stack."""

import concurrent.futures
import json
import os
import time

import pytest
from acexport import db
from acexport.jobs import files, worker
from acexport.jobs import service as job_requests
from acexport.jobs import store as job_store
from acexport.settings import job_settings
from acexport.tenancy import Tenant
from bson import ObjectId

from devstack.ac_sandbox import most_in_any_window
from tests.integration.conftest import DEMO_KEY

BUDGET = "integrations_activecampaign_rate_budget"


def cancel_all(kit, job_ids, timeout=20):
    """Cancel jobs and wait until their workers cleaned up (uploads aborted), so no upload outlives the test."""
    for job_id in job_ids:
        kit.api.call("DELETE", f"/export/jobs/{job_id}")
    deadline = time.monotonic() + timeout
    while not all((kit.doc(job_id) or {}).get("finalized") for job_id in job_ids):
        assert time.monotonic() < deadline, "cancelled jobs were not cleaned up"
        time.sleep(0.1)


def save(api, *, token="default", api_key="bogus-key", base_url=None):
    return api.call("POST", "/auth", token=token,
                    json={"base_url": base_url or api.sandbox.base_url, "api_key": api_key})


# ---- 2: validation outside the host's budget; POST /auth limited per caller -------------------

@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_save_attempts_are_limited_per_caller_with_retry_after(api):
    api.env(AUTH_SAVE_ATTEMPTS="3", AUTH_SAVE_WINDOW_SECONDS="60", AC_VALIDATIONS_PER_SECOND="1000")  # per caller
    for _ in range(3):
        assert save(api).status_code == 400
    reply = save(api)
    assert reply.status_code == 429
    assert 1 <= int(reply.headers["Retry-After"]) <= 60 and reply.json()["retry_after"] >= 1
    assert api.sandbox.count("/users/me") == 3                      # the refused attempt never reached AC
    assert save(api, api_key=DEMO_KEY).status_code == 429           # a good key waits too: nothing stored
    assert api.call("GET", "/auth").json()["data"] == {"connected": False}
    other = api.token("user-2", "account-2")                        # another caller is not affected
    assert save(api, token=other, api_key=DEMO_KEY).status_code == 200


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_concurrent_attempts_cannot_all_take_the_last_one(api):
    api.env(AUTH_SAVE_ATTEMPTS="5", AC_VALIDATIONS_PER_SECOND="1000")   # the per-caller count, not the lane
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: save(api).status_code, range(15)))
    assert statuses.count(400) == 5 and statuses.count(429) == 10


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_validations_take_at_most_one_slot_a_second_of_the_hosts_budget(api, mongo):
    """Bogus saves from many callers cannot take the host's budget from its tenants: validations pass a lane
    of 1 per second per AC account before taking a budget slot. They do take a slot: AC counts them like any
    request (outside the budget, saves pushed the load run's accounts to 6 per second and 429s)."""
    api.env(AC_RATE_BUDGET="shared")
    api.connect()                                                   # the victim, on the same AC account
    api.sandbox.requests.clear()
    callers = [api.token(f"attacker-{n}", f"attacker-account-{n}") for n in range(6)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        attack = [pool.submit(save, api, token=token) for token in callers]
        pages = [api.export("contacts", f"limit=5&page={n}").status_code for n in range(1, 9)]
        statuses = [f.result().status_code for f in attack]
    assert pages == [200] * 8
    assert set(statuses) <= {400, 503} and 400 in statuses        # refused at AC, or told to come back
    validations = [r.at for r in api.sandbox.requests if r.path == "/users/me"]
    # the lane: one a second. Arrivals jitter by tens of ms around the lane's 1.05 s spacing (two may land
    # 0.96 s apart on a busy machine), so the rate is read over the whole attack, not per window.
    assert len(validations) >= 3, validations
    assert (len(validations) - 1) / (max(validations) - min(validations)) <= 1.1, validations
    everything = [r.at for r in api.sandbox.requests]
    assert most_in_any_window(everything) <= 5 and not [r for r in api.sandbox.requests if r.status == 429]
    assert any(str(doc["_id"]).startswith("validate:") for doc in mongo[BUDGET].find({}))


# ---- 3: a job keeps the connection it started with --------------------------------------------

@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_connection_replaced_between_steps_fails_the_job_instead_of_mixing_accounts(kit):
    """The issue's case: a job spans steps and the connection now holds another AC account's key. Each
    step used to read the current connection; now the job fails at the next step with a clear reason."""
    from acexport.credentials import crypto

    kit.api.env(EXPORT_STEP_SECONDS="0.2")                           # a step per page or so
    kit.sandbox.add_key("second-account-key")
    kit.sandbox.generate(contacts=1500)
    kit.sandbox.inject(delay=0.3, times=100, path="/contacts")
    job = kit.start("contacts")
    doc = kit.doc(job["id"])
    recorded = doc["connection"]
    assert set(recorded) == {"id", "host", "key"} and recorded["host"] == kit.sandbox.base_url.split("//")[1]
    assert DEMO_KEY not in json.dumps(doc, default=str)             # a digest, never the key
    kit.wait(job["id"], until=("running",))
    credentials = kit.mongo[os.environ["CREDENTIALS_COLLECTION"]]
    other = crypto.encrypt("second-account-key", account_id="account-1", owner="user-1")
    credentials.update_one({"account_id": "account-1", "owner": "user-1"}, {"$set": {"api_key": other}})
    finished = kit.wait(job["id"], timeout=30)
    assert finished["status"] == "failed"
    assert finished["error"]["message"] == worker.CONNECTION_CHANGED
    assert finished["file"] is None
    keys = {r.api_key for r in kit.sandbox.requests if r.path == "/contacts"}
    assert keys == {DEMO_KEY}                                         # no page was read with the other key


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_job_whose_connection_identity_changed_before_its_step_fails(kit):
    """The worker compares the identity at the start of every step (the key, not only the record)."""
    job = kit.start("accounts")
    kit.wait(job["id"])
    doc = kit.doc(job["id"])
    assert doc["connection"]["key"] != "" and len(doc["connection"]["key"]) == 32
    tenant = Tenant("account-1", "user-1")
    fresh, _ = job_store.create({**{k: doc[k] for k in ("account_id", "owner", "resource", "format", "filters",
                                                           "ac_host", "source")},
                                 "_id": "identity-changed-job-0001", "request_key": "test:identity",
                                 "connection": {**doc["connection"], "key": "0" * 32}}, slots=5)
    worker.handle(json.dumps({"job_id": fresh["_id"], "seq": 0}), remaining_seconds=60, worker_id="w-test")
    assert job_store.get_for(tenant, fresh["_id"])["error"]["message"] == worker.CONNECTION_CHANGED


# ---- 4: EventBridge requests: the owner's connection and the sub-account relation ---------------

@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_an_event_for_a_sub_account_of_another_agency_is_rejected(kit):
    kit.mongo[os.environ.get("ACCOUNTS_COLLECTION", "accounts")].insert_one(
        {"_id": "sub-9", "parent_account": "agency-1"})
    detail = {"account_id": "sub-9", "owner": "user-1", "agency_account_id": "agency-2", "resource": "contacts"}
    assert job_requests.start_from_event({"id": "e-agency", "detail": detail}) is None
    rejected = [e["detail"] for e in kit.stack.events.published()
                if e["detail-type"] == "ActiveCampaign Export Request Rejected"]
    assert rejected[-1]["status"] == 403 and rejected[-1]["error"] == "Sub-account not accessible"
    assert kit.mongo[os.environ["JOBS_COLLECTION"]].count_documents({}) == 0


# ---- 6: bounded dates; errors that cannot go away fail the job at once --------------------------

@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00", "0001-01-01",
                                    "1969-12-31", "9999-12-31"])
@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_out_of_range_dates_are_a_400_on_both_paths(kit, moment):
    reply = kit.post("contacts", {"updated_after": moment})
    assert reply.status_code == 400 and reply.json()["parameter"] == "updated_after"
    assert job_requests.start_from_event({"id": f"e-{moment}", "detail": {
        "account_id": "account-1", "owner": "user-1", "resource": "contacts",
        "options": {"updated_after": moment}}}) is None
    rejected = [e["detail"] for e in kit.stack.events.published()
                if e["detail-type"] == "ActiveCampaign Export Request Rejected"]
    assert rejected[-1]["status"] == 400 and rejected[-1]["request_id"] == f"e-{moment}"
    assert kit.mongo[os.environ["JOBS_COLLECTION"]].count_documents({}) == 0


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_stored_job_that_overflows_fails_at_once_without_retries(kit):
    """A job stored before the bound (or by any path that skipped it) no longer holds the host's queue
    group through retries: the overflow fails it in the same step."""
    connection = kit.api.call("GET", "/auth").json()["data"]
    assert connection["connected"]
    doc, _ = job_store.create({"_id": "overflowing-job-000001", "request_key": "test:overflow",
                               "account_id": "account-1", "owner": "user-1", "source": "api",
                               "resource": "contacts", "format": "ndjson", "filters": {},
                               "updated_after": "0001-01-01T00:00:00Z", "ac_host": "x"}, slots=5)
    worker.handle(json.dumps({"job_id": doc["_id"], "seq": 0}), remaining_seconds=60, worker_id="w-test")
    stored = kit.doc(doc["_id"])
    assert stored["status"] == "failed" and stored["error"]["message"] == worker.CANNOT_PROCESS


# ---- 7: the active-job quota is atomic ----------------------------------------------------------

@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_concurrent_starts_never_exceed_the_quota(kit):
    kit.api.env(EXPORT_MAX_ACTIVE_JOBS="5")
    kit.sandbox.inject(delay=1.0, times=200, path="/accounts")
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda _: kit.post("accounts"), range(20)))
    statuses = [reply.status_code for reply in replies]
    assert statuses.count(202) == 5 and statuses.count(429) == 15
    active = kit.mongo[os.environ["JOBS_COLLECTION"]].count_documents({"status": {"$in": list(job_store.ACTIVE)}})
    assert active == 5
    cancel_all(kit, [reply.json()["data"]["id"] for reply in replies if reply.status_code == 202])


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_finished_or_cancelled_job_frees_its_slot(kit):
    kit.api.env(EXPORT_MAX_ACTIVE_JOBS="1")
    kit.sandbox.inject(delay=0.5, times=20, path="/accounts")
    first = kit.start("accounts")
    assert kit.post("accounts").status_code == 429
    assert kit.api.call("DELETE", f"/export/jobs/{first['id']}").status_code == 200
    assert "active_slot" not in kit.doc(first["id"])
    second = kit.start("accounts")
    assert kit.wait(second["id"], timeout=30)["status"] == "succeeded"
    third = kit.start("accounts")                                   # the finished job's slot is free too
    assert kit.wait(third["id"], timeout=30)["status"] == "succeeded"
    cancel_all(kit, [first["id"]])


# ---- 8: sub-account ids as stored ----------------------------------------------------------------

@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_sub_account_id_in_another_letter_case_is_the_same_tenant(api, mongo):
    sub = ObjectId("65ab12cd34ef56ab78cd90ef")
    mongo[os.environ.get("ACCOUNTS_COLLECTION", "accounts")].insert_one({"_id": sub, "parent_account": "agency-1"})
    agency = api.token("boss", "agency-1")
    api.connect(token=agency, headers={"X-Sub-Account-Id": str(sub).upper()})
    stored = mongo[os.environ["CREDENTIALS_COLLECTION"]].find_one({})
    assert stored["account_id"] == str(sub)                          # as the accounts collection has it
    lower = api.call("GET", "/auth", token=agency, headers={"X-Sub-Account-Id": str(sub)}).json()["data"]
    assert lower["connected"] is True
    again = save(api, token=agency, api_key=DEMO_KEY)
    assert again.status_code == 200                                  # the agency's own account: another tenant
    mixed = api.call("POST", "/auth", token=agency, headers={"X-Sub-Account-Id": "65AB12cd34EF56ab78CD90ef"},
                     json={"base_url": api.sandbox.base_url, "api_key": DEMO_KEY})
    assert mixed.status_code == 409                                  # one sub-account, one connection


# ---- 9 and 11: cancel clean-ups ------------------------------------------------------------------

@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_cancel_drops_the_buffered_records_at_once(kit):
    kit.sandbox.inject(delay=1.0, times=50, path="/contacts")
    job = kit.start("contacts")
    coll = kit.mongo[os.environ["JOBS_COLLECTION"]]
    coll.update_one({"_id": job["id"]}, {"$set": {"checkpoint.buffer": b"exported records", "checkpoint.read": 1}})
    assert kit.api.call("DELETE", f"/export/jobs/{job['id']}").status_code == 200
    checkpoint = coll.find_one({"_id": job["id"]}).get("checkpoint") or {}
    assert "buffer" not in checkpoint and checkpoint.get("read") == 1
    cancel_all(kit, [job["id"]])


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_cancel_right_after_the_file_is_completed_leaves_no_file(kit, monkeypatch):
    original = files.Upload.complete

    def complete_then_cancel(self, etags):
        original(self, etags)
        job_id = self.key.split("/")[-2]
        job_store.cancel(Tenant("account-1", "user-1"), job_id)     # the user cancels at this very moment
    monkeypatch.setattr(files.Upload, "complete", complete_then_cancel)
    job = kit.wait(kit.start("accounts")["id"])
    assert job["status"] == "cancelled" and job["file"] is None
    listed = kit.s3().list_objects_v2(Bucket=job_settings().bucket, Prefix=f"{job_settings().prefix}{job['id']}/")
    assert listed.get("KeyCount", 0) == 0


# ---- 10: legacy base URLs go through the guard --------------------------------------------------

@pytest.mark.parametrize("legacy", ["http://acme.api-us1.com", "https://acme.api-zz9.com", "http://10.0.0.1:8080",
                                    "https://169.254.169.254"])
@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_legacy_base_url_is_refused_with_a_reconnect_message(api, mongo, legacy):
    mongo[os.environ["CREDENTIALS_COLLECTION"]].insert_one(
        {"account_id": "account-1", "owner": "user-1", "base_url": legacy, "api_key": DEMO_KEY})
    reply = api.export("contacts", "limit=2")
    assert reply.status_code == 403 and reply.json()["reconnect"] is True
    assert "connect again" in reply.json()["message"]
    assert api.call("GET", "/auth").json()["data"]["needs_reconnect"] is True
    jobs = api.call("POST", "/export/contacts/jobs", json={})
    assert jobs.status_code == 403 and jobs.json()["reconnect"] is True
    assert api.sandbox.count() == 0


# ---- Mongo: pool size, index errors ---------------------------------------------------------------

def test_the_pool_is_small_and_set_by_the_setting(api):
    assert db.client().options.pool_options.max_pool_size == 4
    api.env(MONGODB_MAX_POOL_SIZE="2")
    assert db.client().options.pool_options.max_pool_size == 2


# An index that cannot be built (finding 5): the operations round moved every index build out of the request path
# (acexport.setup_db), so the build's E11000 is the deploy command's report and a request never meets it:
# tests/integration/test_setup_db.py::test_an_index_build_error_is_the_commands_report_and_requests_log_a_missing_index
