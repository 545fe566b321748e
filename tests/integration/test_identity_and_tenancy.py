"""The authorizer in front of every route, and sub-account tenancy."""

import time

import jwt
import pytest

from devstack.stack import DEV_JWT_SECRET

ROUTES = [("POST", "/auth"), ("DELETE", "/auth"), ("GET", "/auth"), ("GET", "/export/contacts"),
          ("GET", "/export/deals"), ("GET", "/export/accounts")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_missing_token_is_401_on_every_route(api, method, path):
    reply = api.call(method, path, token=None)
    assert reply.status_code == 401


def _token(**claims):
    body = {"uid": "u1", "account_id": "a1", "exp": int(time.time()) + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, DEV_JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize("token", [
    _token(exp=int(time.time()) - 120),
    _token(uid=None),
    _token(account_id=None),
    jwt.encode({"uid": "u1", "account_id": "a1", "exp": int(time.time()) + 600}, "not-the-dev-secret-0123456789abc",
               algorithm="HS256"),
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ1aWQiOiJ1MSIsImFjY291bnRfaWQiOiJhMSIsImV4cCI6OTk5OTk5OTk5OX0.",
    "garbage",
])
@pytest.mark.parametrize(("method", "path"), [("GET", "/auth"), ("GET", "/export/contacts")])
def test_bad_tokens_are_denied(api, token, method, path):
    reply = api.call(method, path, token=token)
    assert reply.status_code == 403
    assert reply.json() == {"message": "Forbidden"}


@pytest.mark.slow  # >= 1 s of real waiting
def test_agency_reaches_only_its_own_sub_accounts(api, mongo):
    import os

    accounts = mongo[os.environ.get("ACCOUNTS_COLLECTION", "accounts")]
    accounts.insert_many([{"_id": "sub-1", "parent_account": "agency-1"},
                          {"_id": "sub-2", "parent_account": "agency-2"}])
    agency = api.token("boss", "agency-1")
    other_agency = api.token("boss", "agency-2")

    api.connect(token=agency, headers={"X-Sub-Account-Id": "sub-1"})
    on_sub = api.call("GET", "/auth", token=agency, headers={"X-Sub-Account-Id": "sub-1"}).json()["data"]
    assert on_sub["connected"] is True
    assert api.call("GET", "/auth", token=agency).json()["data"]["connected"] is False   # not the agency's own

    for token, sub in ((agency, "sub-2"), (other_agency, "sub-1"), (agency, "nope")):
        for method, path in ROUTES:
            reply = api.call(method, path, token=token, headers={"X-Sub-Account-Id": sub},
                             json={"base_url": api.sandbox.base_url, "api_key": "sandbox-key"})
            assert reply.status_code == 403, (token, sub, method, path)
            assert reply.json()["message"] == "Sub-account not accessible"

    # The sub-account's own session sees the agency-made connection only if it's the same user.
    assert api.call("GET", "/auth", token=api.token("boss", "sub-1")).json()["data"]["connected"] is True
    assert api.call("GET", "/auth", token=api.token("someone", "sub-1")).json()["data"]["connected"] is False
    bad = api.call("GET", "/auth", token=agency, headers={"X-Sub-Account-Id": "bad id!"})
    assert bad.status_code == 400
