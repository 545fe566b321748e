"""SetupDbFunction through the local Lambda runtime (template.yaml's handler, layer and environment), invoked
directly as `sam remote invoke` does and as the MongoIndexes custom resource, with CloudFormation's response
URL served on loopback: Create/Update answer SUCCESS once every index exists, Delete is a no-op success,
a failure answers FAILED with a reason that holds no secret, and the stack is always answered before the
function's own timeout (acexport/custom_resource.py)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from acexport import custom_resource
from acexport.settings import get_settings

FUNCTION = "SetupDbFunction"
LEGACY_KEY = "legacy-plaintext-key-0123456789"
CREDENTIAL_KEY = (("account_id", 1), ("owner", 1))


class ResponseUrl:
    """CloudFormation's pre-signed response URL, on loopback: records every PUT."""

    def __init__(self, status: int = 200):
        self.status, self.puts = status, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.puts.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/cfn-response?X-Amz-Signature=sig-0123456789"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def response_url():
    url = ResponseUrl()
    yield url
    url.close()


@pytest.fixture
def fresh_db(api, mongo):
    """The service pointed at a database no setup ever ran on."""
    name = "fresh_setup_db_function"
    mongo.client.drop_database(name)
    api.env(MONGODB_DATABASE=name)
    yield mongo.client[name]
    mongo.client.drop_database(name)


def request(kind: str, url: str, **extra) -> dict:
    return {"RequestType": kind, "ResponseURL": url, "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:"
            "function:setup-db:live", "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
            "RequestId": f"req-{kind}", "LogicalResourceId": "MongoIndexes", "ResourceType": "Custom::MongoIndexes",
            "ResourceProperties": {"ServiceToken": "x", "MongoDatabase": "platform"}, **extra}


def index_keys(coll) -> set:
    return {tuple(info["key"]) for info in coll.index_information().values()}


def invoke(api, event):
    return api.stack.api.invoke(FUNCTION, event)


def test_a_direct_invoke_creates_every_index_and_again_is_a_no_op(api, fresh_db):
    check = invoke(api, {"check": True})
    assert check["ok"] is True and check["check_only"] is True
    assert fresh_db.list_collection_names() == []                        # a check changes nothing
    for _ in range(2):
        answer = invoke(api, {})
        assert (answer["ok"], answer["exit_code"]) == (True, 0), answer
        assert answer["report"][-1] == "Indexes ready."
    settings = get_settings()
    assert CREDENTIAL_KEY in index_keys(fresh_db[settings.credentials_collection])
    for name in (settings.jobs.collection, settings.live.subscriptions_collection, settings.live.changes_collection,
                 settings.rate_budget_collection):
        assert len(index_keys(fresh_db[name])) > 1, name                  # more than _id


def test_create_answers_success_on_the_response_url_once_the_indexes_exist(api, fresh_db, response_url):
    import os

    answer = invoke(api, request("Create", response_url.url))
    assert answer == {"status": "SUCCESS", "delivered": True}
    (put,) = response_url.puts
    assert put["path"].startswith("/cfn-response?X-Amz-Signature=")
    assert put["headers"].get("Content-Type", "") == ""                 # the URL is signed without one
    body = put["body"]
    assert body["Status"] == "SUCCESS"
    assert (body["RequestId"], body["StackId"], body["LogicalResourceId"]) == (
        "req-Create", "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid", "MongoIndexes")
    assert body["PhysicalResourceId"] == "mongodb-indexes"
    assert body["Data"]["Indexes"] >= 5 and body["Data"]["Warnings"] == 0
    assert CREDENTIAL_KEY in index_keys(fresh_db[os.environ["CREDENTIALS_COLLECTION"]])


def test_update_keeps_the_physical_id_it_was_given(api, fresh_db, response_url):
    invoke(api, request("Update", response_url.url, PhysicalResourceId="earlier-id",
                        OldResourceProperties={"ServiceToken": "x"}))
    (put,) = response_url.puts
    assert (put["body"]["Status"], put["body"]["PhysicalResourceId"]) == ("SUCCESS", "earlier-id")


def test_delete_is_a_no_op_success(api, fresh_db, response_url):
    answer = invoke(api, request("Delete", response_url.url, PhysicalResourceId="mongodb-indexes"))
    assert answer["status"] == "SUCCESS"
    (put,) = response_url.puts
    assert (put["body"]["Status"], put["body"]["PhysicalResourceId"]) == ("SUCCESS", "mongodb-indexes")
    assert fresh_db.list_collection_names() == []                        # nothing was touched


def test_duplicates_fail_the_resource_with_the_reason_and_never_the_key(api, fresh_db, response_url):
    import os

    creds = fresh_db[os.environ["CREDENTIALS_COLLECTION"]]
    record = {"account_id": "acct-9", "owner": "user-9", "base_url": "https://x.api-us1.com", "api_key": LEGACY_KEY}
    creds.insert_many([dict(record), dict(record)])
    answer = invoke(api, request("Create", response_url.url))
    assert answer["status"] == "FAILED"
    body = response_url.puts[0]["body"]
    assert body["Status"] == "FAILED"
    assert "DUPLICATES" in body["Reason"] and "sam remote invoke SetupDbFunction" in body["Reason"]
    assert LEGACY_KEY not in json.dumps(body)
    assert CREDENTIAL_KEY not in index_keys(creds)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_mongo_unreachable_fails_within_the_time_and_names_no_password(api, fresh_db, response_url):
    api.env(MONGODB_URI="mongodb://setup:pa55word-0123@127.0.0.1:9/?connectTimeoutMS=300", MONGODB_TIMEOUT_MS="300")
    started = time.monotonic()
    invoke(api, request("Create", response_url.url))
    assert time.monotonic() - started < 20
    body = response_url.puts[0]["body"]
    assert body["Status"] == "FAILED" and "cannot reach MongoDB" in body["Reason"]
    assert "pa55word" not in json.dumps(body) and "127.0.0.1:9" not in body["Reason"]


# ---------------------------------------------------------------- the protocol's edges (acexport/custom_resource.py)
class Context:
    def __init__(self, seconds: float):
        self.ends = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.ends - time.monotonic()) * 1000)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_work_that_outlasts_the_function_is_answered_failed_before_its_timeout(response_url):
    started = time.monotonic()
    sent = custom_resource.handle(request("Create", response_url.url), Context(custom_resource.MARGIN_SECONDS + 1),
                                  lambda props: time.sleep(30), physical_id="p")
    assert time.monotonic() - started < 5
    assert sent["status"] == "FAILED" and "timed out" in response_url.puts[0]["body"]["Reason"]


def test_a_failure_while_the_stack_rolls_back_is_answered_success(response_url):
    def fails(props):
        raise custom_resource.Failed("MongoDB unreachable")

    update = request("Update", response_url.url, PhysicalResourceId="mongodb-indexes")
    sent = custom_resource.handle(update, Context(60), fails, physical_id="p", is_rolling_back=lambda stack: True)
    assert sent["status"] == "SUCCESS" and response_url.puts[0]["body"]["Status"] == "SUCCESS"
    sent = custom_resource.handle(update, Context(60), fails, physical_id="p", is_rolling_back=lambda stack: False)
    assert sent["status"] == "FAILED" and response_url.puts[1]["body"]["Reason"] == "MongoDB unreachable"


def test_an_unexpected_error_says_only_its_type(response_url):
    def leaks(props):
        raise RuntimeError("mongodb://user:secret-password@db.example.com")

    custom_resource.handle(request("Create", response_url.url), Context(60), leaks, physical_id="p")
    reason = response_url.puts[0]["body"]["Reason"]
    assert reason.startswith("RuntimeError") and "secret-password" not in reason


@pytest.mark.slow   # the retries wait 1 + 2 s
def test_a_refused_response_is_retried_then_given_up_without_raising(caplog):
    refusing = ResponseUrl(status=403)
    try:
        sent = custom_resource.handle(request("Delete", refusing.url), Context(60), lambda p: {}, physical_id="p")
    finally:
        refusing.close()
    assert sent["delivered"] is False and len(refusing.puts) == custom_resource.PUT_ATTEMPTS
    assert "X-Amz-Signature" not in caplog.text                          # the pre-signed URL is never logged


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_the_stack_status_is_read_and_an_unreadable_one_is_not_a_rollback(api):
    """rolling_back() against moto's CloudFormation: a stack that is not rolling back, and one that does not
    exist (the failure is then reported as it is)."""
    import json as _json

    import boto3

    cfn = boto3.client("cloudformation", region_name="us-east-1")
    body = _json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
    stack_id = cfn.create_stack(StackName="setup-db-status-test", TemplateBody=body)["StackId"]
    try:
        assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
        assert custom_resource.rolling_back(stack_id) is False
    finally:
        cfn.delete_stack(StackName=stack_id)
    assert custom_resource.rolling_back("arn:aws:cloudformation:us-east-1:123456789012:stack/none/guid") is False
