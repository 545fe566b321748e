"""Full exports under failure: steps handing on, a worker crashing or killed mid-job, messages delivered twice
(in turn and at once), poison messages, AC throttling, failing, hanging and rejecting the key mid-job, the
connection deleted mid-job, and two jobs on one AC account sharing its 5 req/s. Whatever happens, a file
that is produced holds every record exactly once."""

import itertools
import json
import math
import threading
import time

import pytest
from acexport.jobs import files as job_files
from acexport.jobs import service as job_requests
from acexport.jobs import spec as job_spec
from acexport.jobs import store as jobs
from acexport.jobs import worker as job_worker

from tests.integration.jobs_kit import crash_on_checkpoint, ids


def parts_uploaded(monkeypatch) -> list[int]:
    numbers: list[int] = []
    real = job_files.Upload.put_part

    def put_part(self, number, data):
        numbers.append(number)
        return real(self, number, data)

    monkeypatch.setattr(job_files.Upload, "put_part", put_part)
    return numbers


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_job_of_many_steps_hands_on_through_the_queue(kit):
    kit.api.env(EXPORT_STEP_SECONDS="0.001")          # every step writes one page, then hands on
    kit.sandbox.generate(contacts=450)
    job, records = kit.run("contacts")
    assert records == kit.expected("contacts")
    doc = kit.doc(job["id"])
    assert doc["handoff"]["seq"] >= 4 and doc["handoff"]["sent"]
    assert kit.sandbox.count("/contacts") == 5            # one page per step, nothing read twice


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_part_uploaded_but_not_checkpointed_is_uploaded_again_under_its_number(kit, monkeypatch):
    kit.sandbox.generate(contacts=600)
    numbers = parts_uploaded(monkeypatch)
    crash_on_checkpoint(monkeypatch, 2)          # part 2 is in S3; its checkpoint never happens
    job, records = kit.run("contacts")
    assert records == kit.expected("contacts")
    assert numbers.count(2) == 2 and sorted(set(numbers)) == list(range(1, max(numbers) + 1))
    assert kit.doc(job["id"])["last_error"] == "RuntimeError"


@pytest.mark.slow  # >= 1 s of real waiting
def test_a_killed_worker_is_resumed_once_its_lease_runs_out(kit, monkeypatch):
    kit.api.env(EXPORT_LEASE_SECONDS="1")
    kit.sandbox.generate(contacts=500)
    numbers = parts_uploaded(monkeypatch)
    killed = threading.Event()
    real_put = job_files.Upload.put_part

    def die_once_at_part_3(self, number, data):
        if number == 3 and not killed.is_set():
            killed.set()
            raise RuntimeError("killed")
        return real_put(self, number, data)

    monkeypatch.setattr(job_files.Upload, "put_part", die_once_at_part_3)
    monkeypatch.setattr(jobs, "release", lambda *args: None)   # a killed process releases nothing
    started = time.monotonic()
    _, records = kit.run("contacts")
    assert killed.is_set() and records == kit.expected("contacts")
    assert time.monotonic() - started >= 0.9                    # it waited for the dead step's lease
    assert numbers.count(1) == 1 and 2 in numbers               # parts before the kill were kept


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_message_delivered_twice_through_the_queue(kit):
    kit.api.env(EXPORT_STEP_SECONDS="0.001")
    kit.sandbox.generate(contacts=500)
    job = kit.start("contacts")
    duplicate = json.dumps({"job_id": job["id"], "seq": 0})
    for n in range(2):
        kit.sqs().send_message(QueueUrl=kit.queue_url, MessageBody=duplicate, MessageGroupId="127.0.0.1",
                               MessageDeduplicationId=f"duplicate-{n}")
    done = kit.wait(job["id"])
    assert done["status"] == "succeeded" and kit.download(done) == kit.expected("contacts")
    assert len(kit.finished_events(job["id"])) == 1


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_two_deliveries_at_the_same_moment_write_the_file_once(kit, monkeypatch):
    kit.sandbox.generate(contacts=400)
    monkeypatch.setattr(job_requests, "send_work", lambda *args: None)       # we deliver it ourselves
    spec = job_spec.parse("contacts", {})
    from acexport.tenancy import Tenant

    doc = job_requests.start(Tenant("account-1", "user-1"), spec, source="api")
    body = json.dumps({"job_id": doc["_id"], "seq": 0})
    outcomes: list[str] = []

    def deliver(name):
        try:
            job_worker.handle(body, remaining_seconds=60, worker_id=name)
            outcomes.append("done")
        except job_worker.LeaseHeld:
            outcomes.append("held")

    threads = [threading.Thread(target=deliver, args=(f"worker-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["done", "held"]
    job_worker.handle(body, remaining_seconds=60, worker_id="late")          # the held one, retried: a no-op
    job = kit.get(doc["_id"]).json()["data"]
    assert job["status"] == "succeeded" and kit.download(job) == kit.expected("contacts")
    assert len(kit.finished_events(doc["_id"])) == 1


@pytest.mark.slow  # >= 1 s of real waiting
def test_a_step_that_always_fails_ends_in_the_dlq_and_fails_the_job(kit, monkeypatch):
    def broken(self):
        raise RuntimeError("bug")

    monkeypatch.setattr(job_worker.Claimed, "_work", broken)
    job = kit.start("accounts")
    done = kit.wait(job["id"], timeout=20)
    assert done["status"] == "failed"
    assert done["error"] == {"message": "The export worker failed repeatedly on this job (RuntimeError); "
                                        "start a new export"}
    (event,) = kit.finished_events(job["id"])
    assert event["detail"]["status"] == "failed" and "failed repeatedly" in event["detail"]["error"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_message_that_is_not_ours_goes_to_the_dlq_and_nothing_else_happens(kit):
    kit.sqs().send_message(QueueUrl=kit.queue_url, MessageBody="{not json", MessageGroupId="x",
                           MessageDeduplicationId="poison")
    deadline = time.monotonic() + 10
    while True:
        attributes = {url: kit.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                      for url in (kit.queue_url, kit.dlq_url)}
        if all(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]) == 0
               for a in attributes.values()):
            break                                  # moved to the DLQ, where its consumer dropped it
        assert time.monotonic() < deadline, attributes
        time.sleep(0.1)
    _, records = kit.run("accounts")              # the worker carries on
    assert records == kit.expected("accounts")


@pytest.mark.slow  # >= 1 s of real waiting
def test_a_429_storm_is_absorbed(kit):
    kit.sandbox.generate(contacts=300)
    kit.sandbox.inject(status=429, retry_after=0.2, times=8, path="/contacts")   # beyond the client's 5 tries
    _, records = kit.run("contacts")
    assert records == kit.expected("contacts")
    assert sum(1 for r in kit.sandbox.requests if r.status == 429) == 8


@pytest.mark.slow  # >= 1 s of real waiting
def test_ac_5xx_and_hangs_are_absorbed(kit):
    kit.api.env(AC_READ_TIMEOUT="0.3")
    kit.sandbox.generate(contacts=300)
    kit.sandbox.inject(status=502, times=1, path="/contacts")
    kit.sandbox.inject(delay=0.6, times=1, path="/contacts")      # hangs past the read timeout
    kit.sandbox.inject(status=503, times=1, path="/contacts")
    _, records = kit.run("contacts")
    assert records == kit.expected("contacts")


@pytest.mark.slow  # >= 1 s of real waiting
def test_ac_failing_beyond_the_patience_fails_the_job_with_acs_error(kit):
    # No patience, and a step that must stop calling AC within about 2.5 s of its 300 (so the AC client's
    # own retries end early instead of backing off for 6 s)
    kit.api.env(EXPORT_UPSTREAM_PATIENCE_SECONDS="0", EXPORT_RESERVE_SECONDS="297.5")
    kit.sandbox.inject(status=500, times=100, path="/deals")
    done = kit.wait(kit.start("deals")["id"])
    assert done["status"] == "failed" and done["file"] is None
    assert done["error"] == {"message": "ActiveCampaign is unavailable (it answered 500); retry later"}


def after_first_page(sandbox, monkeypatch, path: str, action) -> None:
    endpoint = "_" + path.strip("/")
    real = getattr(sandbox, endpoint)
    calls = itertools.count()

    def serve(q, ql):
        answer = real(q, ql)
        if next(calls) == 0:
            action()
        return answer

    monkeypatch.setattr(sandbox, endpoint, serve)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_key_ac_rejects_mid_job_fails_it_with_the_reconnect_message(kit, monkeypatch):
    kit.sandbox.generate(contacts=500)
    after_first_page(kit.sandbox, monkeypatch, "/contacts", lambda: kit.sandbox.remove_key("sandbox-key"))
    done = kit.wait(kit.start("contacts")["id"])
    assert done["status"] == "failed"
    assert done["error"] == {"message": "Invalid base_url or api_key", "reconnect": True}
    assert kit.api.call("GET", "/auth").json()["data"]["needs_reconnect"] is True
    upload = kit.doc(done["id"])["upload"]
    assert not kit.s3().list_multipart_uploads(Bucket=upload["bucket"]).get("Uploads")


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_connection_deleted_mid_job_fails_it_with_unauthorised_access(kit, monkeypatch):
    import os

    kit.sandbox.generate(contacts=600)
    kit.sandbox.inject(delay=0.2, times=10, path="/contacts")
    credentials = kit.mongo[os.environ["CREDENTIALS_COLLECTION"]]
    after_first_page(kit.sandbox, monkeypatch, "/contacts", lambda: credentials.delete_many({}))
    done = kit.wait(kit.start("contacts")["id"])
    assert done["status"] == "failed" and done["error"] == {"message": "Unauthorised Access"}


@pytest.mark.slow  # >= 1 s of real waiting
def test_jobs_on_one_ac_account_stay_within_its_5_requests_per_second(kit, monkeypatch):
    monkeypatch.setattr(kit.sandbox, "rate_limit", 5.0)              # the stand-in answers 429 beyond 5/s
    monkeypatch.delenv("AC_RATE_LIMIT_PER_SECOND")
    monkeypatch.delenv("AC_RATE_BUDGET")                             # the service's own budget (shared)
    kit.api.env()
    kit.sandbox.generate(contacts=400)
    other = kit.api.token(uid="user-2")
    kit.api.connect(token=other)
    time.sleep(1.1)                                                # AC's window empties
    kit.sandbox.requests.clear()
    started = time.monotonic()
    first, second = kit.start("contacts"), kit.start("contacts", token=other)
    for job, token in ((first, "default"), (second, other)):
        done = kit.wait(job["id"], token=token)
        assert done["status"] == "succeeded" and kit.download(done) == kit.expected("contacts")
    elapsed = time.monotonic() - started
    arrivals = sorted(r.at for r in kit.sandbox.requests)
    assert not [r for r in kit.sandbox.requests if r.status == 429]
    assert max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals) <= 5
    windows = math.ceil(len(arrivals) / 5)                     # back to back at the limit, nothing idle
    assert elapsed < (windows - 1) * 1.2 + 1.5, (elapsed, len(arrivals))
    assert ids(kit.api.call("GET", "/export/jobs", token=other).json()["data"]) == [second["id"]]
