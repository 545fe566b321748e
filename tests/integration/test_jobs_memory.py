"""The worker's memory stays flat whatever the size of the export: the same peak for 10x the records.

The worker runs in a child process (as in its own Lambda container) so that only its allocations are
measured: in this process the AC stand-in and moto (which keeps the uploaded parts) grow with the data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from acexport.jobs import service as job_requests
from acexport.jobs import spec as job_spec
from acexport.tenancy import Tenant

from tests.integration.jobs_kit import Kit

pytestmark = pytest.mark.slow  # memory: the worker runs in child processes

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
import json, sys, tracemalloc
from acexport.jobs import aws as job_aws
from acexport.jobs import worker as job_worker
from acexport.jobs import store as jobs
for service in ("s3", "sqs", "events"):
    job_aws.client(service)                        # a warm container: clients exist before the job
job_id = sys.argv[1]
tracemalloc.start()
while jobs.get(job_id)["status"] not in jobs.TERMINAL:
    job_worker.handle(json.dumps({"job_id": job_id, "seq": 0}), remaining_seconds=120, worker_id="probe")
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "job": jobs.get(job_id)["file"]}))
"""


@pytest.fixture
def kit(api, mongo, monkeypatch):
    kit = Kit(api, monkeypatch, mongo)
    api.connect()
    monkeypatch.setattr(job_requests, "send_work", lambda *args: None)   # the child runs the job, not the poller
    yield kit
    kit.settle()


def run_in_child(kit, size: int) -> dict:
    kit.sandbox.generate(contacts=size)
    doc = job_requests.start(Tenant("account-1", "user-1"), job_spec.parse("contacts", {}), source="api")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "common")}
    child = subprocess.run([sys.executable, "-c", WORKER, doc["_id"]], env=env, capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["job"]["records"] == size
    return result


def test_peak_memory_does_not_grow_with_the_number_of_records(kit):
    small, large = run_in_child(kit, 500), run_in_child(kit, 5000)
    assert large["job"]["size"] > 8 * small["job"]["size"]            # 10x the data went through
    assert large["peak"] < small["peak"] * 1.25 + 512 * 1024, (small["peak"], large["peak"])
