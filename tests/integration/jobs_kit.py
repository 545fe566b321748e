"""What the test_jobs* modules share (no tests here): a client of the job routes on the local stack, and the
records a full export of the AC stand-in must contain, computed from the stand-in's own data.

Jobs run as in AWS: POST .../jobs queues a message on the (moto) FIFO queue, the local poller feeds the
worker function, the file lands in the (moto) bucket and is fetched from its pre-signed URL. AC's 5 req/s
(the stand-in's and the service's budget) is lifted (`Api.lift_rate_limit`, tests/integration/conftest.py)
unless a test restores it; parts are 16 KiB (moto's 5 MiB minimum is lowered for the test) so that even
small exports span several parts.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import os
import time

import requests
from acexport.jobs import store as job_store

from devstack.ac_sandbox import deal_created

PART_SIZE = 16 * 1024
FAST = {"EXPORT_PART_SIZE": str(PART_SIZE), "EXPORT_RETRY_SECONDS": "0.1", "EXPORT_PROGRESS_SECONDS": "0.1",
        "EXPORT_LEASE_SECONDS": "5",
        # one walk per job, in id order: with AC's rate lifted, slices (the real-latency round) would only reorder
        # the file;
        # tests/integration/test_jobs_slices.py sets its own
        "EXPORT_PAGES_IN_FLIGHT": "1"}


class Kit:
    def __init__(self, api, monkeypatch, mongo, **env: str):
        import moto.s3.models

        self.api, self.sandbox, self.stack, self.mongo = api, api.sandbox, api.stack, mongo
        monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1024)
        api.lift_rate_limit()
        api.env(**{**FAST, **env})
        self.queue_url = self.stack.events.queues["ExportJobQueue"]["url"]
        self.dlq_url = self.stack.events.queues["ExportJobDeadLetterQueue"]["url"]

    # ---- the API
    def post(self, resource: str, body=None, *, token="default", **kwargs):
        kwargs.setdefault("json", body if body is not None else {})
        return self.api.call("POST", f"/export/{resource}/jobs", token=token, **kwargs)

    def start(self, resource: str, body=None, *, token="default") -> dict:
        reply = self.post(resource, body, token=token)
        assert reply.status_code == 202, reply.text
        job = reply.json()["data"]
        assert job["status"] == "queued" and job["resource"] == resource
        return job

    def get(self, job_id: str, *, token="default"):
        return self.api.call("GET", f"/export/jobs/{job_id}", token=token)

    def wait(self, job_id: str, *, timeout: float = 20, token="default", until=job_store.TERMINAL) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id, token=token).json()["data"]
            if job["status"] in until:
                return job
            assert time.monotonic() < deadline, f"job still {job['status']} after {timeout}s: {job}"
            time.sleep(0.05)

    def run(self, resource: str, body=None, *, token="default", timeout: float = 20) -> tuple[dict, list]:
        job = self.wait(self.start(resource, body, token=token)["id"], token=token, timeout=timeout)
        assert job["status"] == "succeeded", job
        return job, self.download(job)

    # ---- the file
    @staticmethod
    def download(job: dict):
        reply = requests.get(job["file"]["url"], timeout=30)
        assert reply.status_code == 200, reply.text
        assert len(reply.content) == job["file"]["size"]
        text = gzip.decompress(reply.content).decode()
        if job["format"] == "csv":
            return list(csv.reader(io.StringIO(text)))
        return [json.loads(line) for line in text.splitlines()]

    # ---- behind the API
    def doc(self, job_id: str) -> dict:
        return self.mongo[os.environ["JOBS_COLLECTION"]].find_one({"_id": job_id})

    def sqs(self):
        return self.stack.events.client("sqs")

    def s3(self):
        return self.stack.events.client("s3")

    def finished_events(self, job_id: str, *, timeout: float = 5) -> list[dict]:
        """The job's "Finished" events, once there is one (up to `timeout`): a job's end is written before its
        event is published (jobs.worker.finalize), so a reader that saw the status can be a moment early."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.stack.events.published()
                     if e["detail-type"] == "ActiveCampaign Export Job Finished" and e["detail"]["job_id"] == job_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def settle(self, timeout: float = 10) -> None:
        """Let every job still active finish (or cancel it), so nothing runs into the next test."""
        deadline = time.monotonic() + timeout
        coll = self.mongo[os.environ["JOBS_COLLECTION"]]
        while coll.count_documents({"status": {"$in": list(job_store.ACTIVE)}}) and time.monotonic() < deadline:
            time.sleep(0.05)
        coll.update_many({"status": {"$in": list(job_store.ACTIVE)}}, {"$set": {"status": "cancelled"}})

    # ---- what the files must hold
    def expected(self, resource: str) -> list[dict]:
        return expected_records(self.sandbox, resource)


def _multi(value, kind):
    """A multi-select value as the export shows it (AC stores "||a||b||")."""
    if kind in ("checkbox", "listbox", "multiselect", "dropdown") and isinstance(value, str) \
            and value.startswith("||") and value.endswith("||") and len(value) >= 2:
        return [part for part in value[2:-2].split("||") if part]
    return value


def expected_records(sandbox, resource: str) -> list[dict]:
    """Every record of the stand-in as an export must show it, in the order the walk reads AC: contacts
    and accounts by id, deals by creation date (AC's documented orders[cdate]; stubs, which show no cdate,
    where the stand-in's AC places them: ac_sandbox.deal_created; ties by id)."""
    if resource == "contacts":
        fields = {f["id"]: f for f in sandbox.fields}
        tags = {t["id"]: t["tag"] for t in sandbox.tags}
        lists = {x["id"]: x["name"] for x in sandbox.lists}
        out = []
        for contact in sorted(sandbox.contacts, key=lambda c: int(c["id"])):
            values = [v for v in sandbox.field_values if v["contact"] == contact["id"]]
            linked = [t for t in sandbox.contact_tags if t["contact"] == contact["id"]]
            members = [m for m in sandbox.contact_lists if m["contact"] == contact["id"]]
            out.append({**contact, "fieldValues": values,
                        "contactTags": [t["id"] for t in linked], "contactLists": [m["id"] for m in members],
                        "customFields": {fields[v["field"]]["title"]: _multi(v["value"], fields[v["field"]]["type"])
                                         for v in values},
                        "customFieldsByTag": {fields[v["field"]]["perstag"]:
                                              _multi(v["value"], fields[v["field"]]["type"]) for v in values},
                        "tags": [tags[t["tag"]] for t in linked],
                        "lists": [{"id": m["list"], "name": lists[m["list"]], "status": m["status"]}
                                  for m in members]})
        return out
    if resource == "deals":
        pipelines = {g["id"]: g["title"] for g in sandbox.deal_groups}
        stages = {s["id"]: s["title"] for s in sandbox.deal_stages}
        users = {u["id"]: f"{u['firstName']} {u['lastName']}" for u in sandbox.users}
        labels = {m["id"]: m["fieldLabel"] for m in sandbox.deal_custom_field_meta}
        out = []
        for deal in sorted(sandbox.deals, key=lambda d: (deal_created(d), int(d["id"]))):
            if "group" not in deal:        # a disabled stub: AC's three fields, nothing known beside them
                out.append({**deal, "pipelineTitle": None, "stageTitle": None, "ownerName": None,
                            "customFields": None})
                continue
            values = [v for v in sandbox.deal_custom_field_data if v["dealId"] == int(deal["id"])]
            out.append({**deal, "dealCustomFieldData": [v["id"] for v in values],
                        "pipelineTitle": pipelines.get(deal.get("group")), "stageTitle": stages.get(deal.get("stage")),
                        "ownerName": users.get(deal.get("owner")),
                        "customFields": {labels[str(v["customFieldId"])]: v["fieldValue"] for v in values}})
        return out
    labels = {m["id"]: m["fieldLabel"] for m in sandbox.account_custom_field_meta}
    contacts = [link["account"] for link in sandbox.account_contacts]
    deals = [d.get("account") for d in sandbox.deals]
    return [{**account, "contactCount": str(contacts.count(account["id"])),
             "dealCount": str(deals.count(account["id"])),
             "customFields": {labels[str(v["customFieldId"])]: v["fieldValue"]
                              for v in sandbox.account_custom_field_data if v["accountId"] == int(account["id"])}}
            for account in sorted(sandbox.accounts, key=lambda a: int(a["id"]))]


def ids(records: list[dict]) -> list[str]:
    return [record["id"] for record in records]


def crash_on_checkpoint(monkeypatch, number: int) -> list[dict]:
    """The worker crashes at its `number`th checkpoint (jobs.save raises): what it wrote since the one before
    is in the file but not checkpointed. Returns the cursors of the checkpoints saved, as they are saved."""
    cursors: list[dict] = []
    saves = itertools.count(1)
    real_save = job_store.save

    def save(job_id, worker, seq, checkpoint, *args, **kwargs):
        if next(saves) == number:
            raise RuntimeError("worker crashed")
        cursors.append(dict(checkpoint["cursor"]))
        return real_save(job_id, worker, seq, checkpoint, *args, **kwargs)

    monkeypatch.setattr(job_store, "save", save)
    return cursors
