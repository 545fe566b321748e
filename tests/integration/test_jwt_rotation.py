"""JWT secret rotation through the local API Gateway and the real authorizer (template.yaml): with the
rotation object in JWT_SECRET, tokens of both keys reach the API during the window and the previous key's
are refused (403) after it; a malformed secret fails closed (500) and names no key in the log."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from tests.integration.conftest import BASE

OLD = "rotation-old-secret-0123456789abcdef01"
NEW = "rotation-new-secret-0123456789abcdef01"


def signed(key: str) -> str:
    return jwt.encode({"uid": "user-1", "account_id": "account-1", "exp": int(time.time()) + 600}, key,
                      algorithm="HS256")


def use_secret(api, value: str) -> None:
    api.env(JWT_SECRET=value)
    api.stack.api.clear_authorizer_cache()   # as after the 5-minute caches (secret and authorizer) ran out


def test_both_keys_verify_during_the_window_and_the_old_one_is_refused_after(api):
    use_secret(api, OLD)
    assert api.call("GET", "/auth", token=signed(OLD)).status_code == 200
    assert api.call("GET", "/auth", token=signed(NEW)).status_code == 403       # not yet the new key

    use_secret(api, json.dumps({"current": NEW, "previous": OLD, "previous_until": time.time() + 600}))
    assert api.call("GET", "/auth", token=signed(NEW)).status_code == 200
    assert api.call("GET", "/auth", token=signed(OLD)).status_code == 200

    use_secret(api, json.dumps({"current": NEW, "previous": OLD, "previous_until": time.time() - 1}))
    assert api.call("GET", "/auth", token=signed(NEW)).status_code == 200
    refused = api.call("GET", "/auth", token=signed(OLD))
    assert (refused.status_code, refused.json()) == (403, {"message": "Forbidden"})


@pytest.mark.parametrize("value", [json.dumps({"current": NEW, "previous": OLD}), "{oops"])
def test_a_malformed_secret_fails_closed_without_naming_a_key(api, capfd, value):
    use_secret(api, value)
    # (straight HTTP: docs/openapi.yaml documents the handlers' answers, not a gateway 500)
    reply = api.http.get(f"{api.stack.api_url}{BASE}/auth", headers={"Authorization": f"Bearer {signed(NEW)}"},
                         timeout=30)
    assert reply.status_code == 500
    assert reply.json() == {"message": "Internal Server Error"}
    logged = "".join(capfd.readouterr())
    assert NEW not in logged and OLD not in logged


@pytest.mark.slow   # moto's Secrets Manager, >= 0.3 s here
def test_the_rotation_object_read_from_secrets_manager_works_the_same(api, monkeypatch):
    """In AWS the secret comes from Secrets Manager (Powertools Parameters): the JSON form is read as is."""
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=api.stack.moto_url, region_name="us-east-1")
    value = json.dumps({"current": NEW, "previous": OLD, "previous_until": time.time() + 600})
    arn = client.create_secret(Name=f"activecampaign/jwt-rotation-{id(api)}", SecretString=value)["ARN"]
    try:
        monkeypatch.delenv("JWT_SECRET")
        api.env(JWT_SECRET_ARN=arn)
        api.stack.api.clear_authorizer_cache()
        assert api.call("GET", "/auth", token=signed(NEW)).status_code == 200
        assert api.call("GET", "/auth", token=signed(OLD)).status_code == 200
        assert api.call("GET", "/auth", token=signed("x" * 40)).status_code == 403
    finally:
        client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
