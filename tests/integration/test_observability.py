"""Logs and metrics of export jobs (the operations round): the layer's lines are Powertools JSON with the job id and the
tenant, never a key, whatever the root logger's level (Lambda keeps it at WARNING); a job publishes its
metrics (records, duration, AC calls, failures) as CloudWatch EMF, as page exports do.

The jobs run as in AWS: queue -> worker function (in this process, like `make dev`)."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from acexport import logs

from tests.integration.conftest import DEMO_KEY


@pytest.fixture
def log_lines(monkeypatch):
    """Every line the service logs (the one Powertools handler), parsed; the root logger at WARNING."""
    buffer = io.StringIO()
    handler = logs.logger.registered_handler
    previous = handler.setStream(buffer)
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    lines.text = buffer.getvalue
    yield lines
    handler.setStream(previous)


def emf(text: str) -> list[dict]:
    """The CloudWatch EMF documents printed on stdout (one JSON object a line with an `_aws` key)."""
    out = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            out.append(json.loads(line))
    return out


def emf_until(capsys, *names: str, timeout: float = 10) -> list[dict]:
    """The EMF documents printed so far, waiting until each of `names` was published: a job's status can be
    read before its worker invocation has returned and flushed its metrics. Locally one process holds every
    function; each invocation thread publishes its own metrics (acexport.metrics), as each container does."""
    documents: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        documents += emf(capsys.readouterr().out)
        if all(any(name in doc for doc in documents) for name in names) or time.monotonic() > deadline:
            return documents
        time.sleep(0.05)


def metric_sum(documents: list[dict], name: str) -> float:
    return sum(float(doc[name]) if not isinstance(doc[name], list) else sum(doc[name])
               for doc in documents if name in doc)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_job_failed_on_purpose_leaves_a_json_line_with_job_and_tenant_and_no_key(kit, log_lines, capsys):
    kit.sandbox.remove_key(DEMO_KEY)                     # AC now refuses the stored key: the job must fail
    job = kit.wait(kit.start("contacts")["id"])
    assert job["status"] == "failed"

    failed = [line for line in log_lines()
              if line["message"] == "export job failed" and line.get("job_id") == job["id"]]
    assert len(failed) == 1, log_lines.text()
    line = failed[0]
    assert line["level"] == "WARNING" and line["service"] == "activecampaign-integration"
    assert line["job_id"] == job["id"]
    assert (line["account_id"], line["owner"]) == ("account-1", "user-1")
    assert line["reason"] == "Invalid base_url or api_key"
    assert line.get("correlation_id")                   # the SQS message id of the step
    assert DEMO_KEY not in log_lines.text()              # no line of the whole run holds the key

    documents = emf_until(capsys, "JobFailed", "ACCalls")
    assert metric_sum(documents, "JobFailed") >= 1
    assert metric_sum(documents, "ACCalls") >= 1
    failed_doc = next(doc for doc in documents if "JobFailed" in doc)
    assert failed_doc["service"] == "activecampaign-integration"
    assert failed_doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ActiveCampaignIntegration"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_job_publishes_records_duration_and_ac_calls_and_logs_info_as_json(kit, log_lines, capsys):
    job, rows = kit.run("contacts", {"format": "ndjson"})
    documents = emf_until(capsys, "JobSucceeded", "ExportedRecords", "JobStepSeconds", "ACCalls")
    assert metric_sum(documents, "ExportedRecords") == len(rows) == job["file"]["records"]
    assert metric_sum(documents, "JobSucceeded") == 1
    assert metric_sum(documents, "ACCalls") >= 1
    assert metric_sum(documents, "JobStepSeconds") > 0
    assert metric_sum(documents, "JobFailed") == 0

    # An INFO line of a layer module (acexport.jobs.worker), as JSON, with the job and the tenant, although
    # the root logger is at WARNING as in Lambda.
    succeeded = [line for line in log_lines() if line["message"] == "export job succeeded"]
    assert len(succeeded) == 1, log_lines.text()
    assert succeeded[0]["level"] == "INFO" and succeeded[0]["records"] == len(rows)
    assert (succeeded[0]["job_id"], succeeded[0]["account_id"], succeeded[0]["owner"]) == (
        job["id"], "account-1", "user-1")
    # Each function's lines carry its own name, also with the functions running at once in one process.
    assert succeeded[0]["function_name"] == "ExportWorkerFunction"
    (started,) = [line for line in log_lines() if line["message"] == "export job started"]
    assert (started["job_id"], started["function_name"]) == (job["id"], "ExportJobStartFunction")


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_api_lines_name_the_caller_and_the_request(api, log_lines):
    reply = api.export("contacts", "limit=2", token=api.token(uid="user-7", account_id="account-7"))
    assert reply.status_code == 404                      # not connected: refused, and logged as such
    (line,) = [line for line in log_lines() if line["message"] == "request refused"]
    assert (line["account_id"], line["owner"], line["status"]) == ("account-7", "user-7", 404)
    assert line["correlation_id"] == reply.headers["apigw-requestid"]


def test_bind_refuses_anything_but_identifiers():
    with pytest.raises(ValueError, match="api_key"):
        logs.bind(api_key=DEMO_KEY)
    with pytest.raises(ValueError, match="token"):
        logs.bind(token="x")
