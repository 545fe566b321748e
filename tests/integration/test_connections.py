"""POST/DELETE/GET /auth through the local API Gateway, against the AC stand-in, Mongo and KMS."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from bson.binary import Binary

from tests.integration.conftest import DEMO_KEY


def records(mongo):
    return list(mongo[_collection()].find({}))


def _collection():
    import os

    return os.environ["CREDENTIALS_COLLECTION"]


def test_save_status_delete_round_trip(api, mongo):
    assert api.call("GET", "/auth").json()["data"] == {"connected": False}

    saved = api.connect()
    body = saved.json()
    assert body["success"] is True and body["data"]["connected"] is True
    assert body["data"]["base_url"] == api.sandbox.base_url
    assert DEMO_KEY not in saved.text

    status = api.call("GET", "/auth").json()["data"]
    assert status["connected"] is True and status["needs_reconnect"] is False
    assert status["created_at"] and status["validated_at"]
    for name in ("created_at", "updated_at", "validated_at"):     # the Node module's Date.toJSON shape
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", status[name]), status[name]
    assert "api_key" not in status

    [doc] = records(mongo)
    assert (doc["account_id"], doc["owner"]) == ("account-1", "user-1")
    assert isinstance(doc["api_key"], bytes | Binary) and DEMO_KEY.encode() not in bytes(doc["api_key"])
    assert doc["key_encryption"] == "kms"

    assert api.call("DELETE", "/auth").json() == {"success": True, "message": "SUCCESS"}
    assert records(mongo) == []
    gone = api.call("DELETE", "/auth")
    assert gone.status_code == 404
    assert gone.json() == {"success": False, "errno": 404, "message": "Unauthorised Access"}


def test_base_url_is_normalised_from_what_users_paste(api, mongo):
    api.env(ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL="true")
    reply = api.call("POST", "/auth", json={"api_key": DEMO_KEY, "base_url": api.sandbox.base_url + "/api/3/"})
    assert reply.status_code == 200, reply.text
    assert records(mongo)[0]["base_url"] == api.sandbox.base_url


@pytest.mark.parametrize(("body", "message"), [
    ({}, "Base URL is required"),
    ({"api_key": "k"}, "Base URL is required"),
    ({"base_url": "   ", "api_key": "k"}, "Base URL is required"),
    ({"base_url": 42, "api_key": "k"}, "Base URL is required"),
    ({"base_url": "https://acme.api-us1.com"}, "API Key is required"),
    ({"base_url": "https://acme.api-us1.com", "api_key": "  "}, "API Key is required"),
])
def test_missing_fields(api, mongo, body, message):
    reply = api.call("POST", "/auth", json=body)
    assert reply.status_code == 400
    assert reply.json() == {"success": False, "errno": 400, "message": message}
    assert records(mongo) == [] and api.sandbox.count() == 0


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"text"', "\xff\xfe"])
def test_body_must_be_a_json_object(api, mongo, data):
    reply = api.call("POST", "/auth", data=data.encode("latin-1"), headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["message"] == "Request body must be a JSON object"


@pytest.mark.parametrize("base_url", [
    "http://acme.api-us1.com", "https://169.254.169.254", "https://acme.api-us1.com.evil.com",
    "https://user@acme.api-us1.com", "https://acme.api-us1.com:8443", "https://localhost",
])
def test_hostile_base_urls_never_reach_the_network(api, mongo, base_url):
    api.env(ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL="false")
    reply = api.call("POST", "/auth", json={"base_url": base_url, "api_key": DEMO_KEY})
    assert reply.status_code == 400
    assert "Invalid base_url" in reply.json()["message"]
    assert records(mongo) == [] and api.sandbox.count() == 0


def test_loopback_needs_the_local_switch(api, mongo):
    api.env(ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL="false")
    reply = api.call("POST", "/auth", json={"base_url": api.sandbox.base_url, "api_key": DEMO_KEY})
    assert reply.status_code == 400 and api.sandbox.count() == 0


@pytest.mark.parametrize("fault", [
    {"status": 403, "content_type": None, "body": b""},                     # bad key, no Content-Type
    {"status": 401, "body": b'{"message": "Unauthorized"}'},
    {"status": 302, "location": "https://www.activecampaign.com/login", "body": b"<html>login</html>",
     "content_type": "text/html"},                                            # wrong host
    {"status": 200, "body": b"<html>hello</html>", "content_type": "text/html"},   # not AC's JSON
    {"status": 404, "body": b"<html>Sorry, this page could not be found</html>", "content_type": "text/html"},
])
def test_pairs_ac_refuses_are_invalid(api, mongo, fault):
    api.sandbox.inject(**fault)
    reply = api.call("POST", "/auth", json={"base_url": api.sandbox.base_url, "api_key": DEMO_KEY})
    assert reply.status_code == 400
    assert reply.json()["message"] == "Invalid base_url or api_key"
    assert records(mongo) == []
    assert api.sandbox.count() == 1  # validation fails fast: no retry of a refusal


def test_wrong_key_is_invalid(api, mongo):
    reply = api.call("POST", "/auth", json={"base_url": api.sandbox.base_url, "api_key": "wrong-key"})
    assert reply.status_code == 400 and reply.json()["message"] == "Invalid base_url or api_key"
    assert "wrong-key" not in reply.text and records(mongo) == []


@pytest.mark.slow  # >= 1 s of real waiting
def test_ac_down_is_502_not_invalid_key(api, mongo):
    api.sandbox.inject(status=500, times=10)
    reply = api.call("POST", "/auth", json={"base_url": api.sandbox.base_url, "api_key": DEMO_KEY})
    assert reply.status_code == 502
    assert "unavailable" in reply.json()["message"] and records(mongo) == []


@pytest.mark.slow  # > 3 s
def test_ac_unreachable_is_502(api, mongo):
    reply = api.call("POST", "/auth", json={"base_url": "http://127.0.0.1:9", "api_key": DEMO_KEY})
    assert reply.status_code == 502 and records(mongo) == []
    assert "could not be reached" in reply.json()["message"]


@pytest.mark.slow  # >= 1 s of real waiting
def test_ac_timing_out_is_504(api, mongo):
    api.env(AC_READ_TIMEOUT="0.3", REQUEST_BUDGET_SECONDS="2")
    api.sandbox.inject(delay=1.0, times=20)
    reply = api.call("POST", "/auth", json={"base_url": api.sandbox.base_url, "api_key": DEMO_KEY})
    assert reply.status_code == 504 and records(mongo) == []
    assert "did not answer in time" in reply.json()["message"]


def test_second_save_is_409_and_changes_nothing(api, mongo):
    api.connect()
    before = records(mongo)
    calls = api.sandbox.count()
    again = api.call("POST", "/auth", json={"base_url": api.sandbox.base_url, "api_key": "other-key"})
    assert again.status_code == 409
    assert again.json() == {"success": False, "errno": 409, "message": "Record already exist"}
    assert records(mongo) == before and api.sandbox.count() == calls


def test_twenty_concurrent_saves_leave_one_record(api, mongo):
    api.lift_rate_limit()     # the sandbox's limit comes back after the test (it used to stay off)
    body = {"base_url": api.sandbox.base_url, "api_key": DEMO_KEY}
    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda _: api.call("POST", "/auth", json=body), range(20)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses.count(200) == 1 and statuses.count(409) == 19, statuses
    assert len(records(mongo)) == 1


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_connections_are_per_user_and_account(api, mongo):
    api.connect(token=api.token("alice", "acc-1"))
    assert api.call("GET", "/auth", token=api.token("bob", "acc-1")).json()["data"]["connected"] is False
    assert api.call("GET", "/auth", token=api.token("alice", "acc-2")).json()["data"]["connected"] is False
    assert api.call("DELETE", "/auth", token=api.token("bob", "acc-1")).status_code == 404
    assert api.export("contacts", token=api.token("alice", "acc-2")).status_code == 404
    assert len(records(mongo)) == 1
    api.connect(token=api.token("bob", "acc-1"))  # bob may have his own
    assert len(records(mongo)) == 2
