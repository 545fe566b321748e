"""An api key or a JWT never appears in a response, a log line (any level, any library), Mongo in
plaintext, or an exception message; a ciphertext copied to another tenant's record does not decrypt."""

import base64
import logging
import os

import pytest

SECRET_KEY = "ac-live-5ecret-0000-1111-2222-333344445555"


@pytest.fixture
def debug_logs():
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)
    service = logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "activecampaign-integration"))
    layer = logging.getLogger("acexport")   # the layer's modules log through Powertools (acexport.logs)
    levels = {service: service.level, layer: layer.level}
    for logger in levels:
        logger.setLevel(logging.DEBUG)
    yield
    root.setLevel(previous)
    for logger, level in levels.items():
        logger.setLevel(level)


def forms(secret: str) -> list[str]:
    """The secret and the encodings a leak would most likely take."""
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()]


@pytest.mark.slow  # >= 1 s of real waiting
def test_no_secret_anywhere_across_a_full_flow(api, mongo, capfd, caplog, debug_logs):
    caplog.set_level(logging.DEBUG)
    api.sandbox.add_key(SECRET_KEY)
    token = api.token("leak-check", "acc-leak")
    replies = [api.call("POST", "/auth", token=token, json={"api_key": SECRET_KEY, "base_url": api.sandbox.base_url})]
    replies += [api.call("GET", "/auth", token=token)]
    replies += [api.export(r, "limit=3", token=token) for r in ("contacts", "deals", "accounts")]
    replies += [api.export("contacts", "limit=abc", token=token)]
    api.sandbox.inject(status=429, retry_after=30, times=1)
    api.env(REQUEST_BUDGET_SECONDS="2")
    replies += [api.export("contacts", token=token)]
    api.env(REQUEST_BUDGET_SECONDS="5")  # a fresh container, and the 30 s Retry-After penalty is over:
    mongo[os.environ.get("RATE_BUDGET_COLLECTION", "integrations_activecampaign_rate_budget")].delete_many({})
    api.sandbox.remove_key(SECRET_KEY)
    replies += [api.export("deals", token=token)]                       # rejected key: 403 reconnect
    replies += [api.call("POST", "/auth", token=token, json={"api_key": SECRET_KEY, "base_url": api.sandbox.base_url})]
    replies += [api.call("DELETE", "/auth", token=token)]
    assert [r.status_code for r in replies] == [200, 200, 200, 200, 200, 400, 503, 403, 409, 200]

    out, err = capfd.readouterr()
    logged = out + err + caplog.text
    assert "leak-check" in logged or "request refused" in logged   # the logs were captured at all
    for secret in [*forms(SECRET_KEY), token]:
        for reply in replies:
            assert secret not in reply.text and secret not in str(reply.headers)
        assert secret not in logged, "secret found in logs"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_key_is_ciphertext_at_rest_and_bound_to_its_tenant(api, mongo):
    api.sandbox.add_key(SECRET_KEY)
    alice, mallory = api.token("alice", "acc-a"), api.token("mallory", "acc-m")
    for token in (alice, mallory):
        api.call("POST", "/auth", token=token, json={"api_key": SECRET_KEY, "base_url": api.sandbox.base_url})
    collection = mongo[os.environ["CREDENTIALS_COLLECTION"]]
    alice_doc = collection.find_one({"owner": "alice"})
    for form in forms(SECRET_KEY):
        assert form.encode() not in bytes(alice_doc["api_key"])
        for doc in collection.find({}):
            assert form not in repr(doc)

    # Mallory copies Alice's ciphertext into her own record: KMS refuses it under Mallory's context,
    # even right after Alice's own export left her decrypted key in the container's cache.
    assert api.export("contacts", "limit=2", token=alice).status_code == 200
    collection.update_one({"owner": "mallory"}, {"$set": {"api_key": alice_doc["api_key"]}})
    api.sandbox.requests.clear()
    reply = api.export("contacts", token=mallory)
    assert reply.status_code == 403 and reply.json()["reconnect"] is True
    assert api.sandbox.count() == 0     # nothing was sent to AC with someone else's key
    assert api.export("contacts", "limit=2", token=alice).status_code == 200


def test_a_kms_record_without_its_ciphertext_asks_for_a_reconnect(api, mongo):
    api.sandbox.add_key(SECRET_KEY)
    token = api.token("olga", "acc-o")
    api.call("POST", "/auth", token=token, json={"api_key": SECRET_KEY, "base_url": api.sandbox.base_url})
    collection = mongo[os.environ["CREDENTIALS_COLLECTION"]]
    collection.update_one({"owner": "olga"}, {"$unset": {"api_key": ""}})
    api.sandbox.requests.clear()
    reply = api.export("contacts", token=token)
    assert reply.status_code == 403 and reply.json()["reconnect"] is True     # as KMS refusing it: not a 500
    assert api.sandbox.count() == 0


def test_exception_texts_carry_no_secret():
    from acexport.ac.client import ACClient
    from acexport.errors import ApiError

    client = ACClient("http://127.0.0.1:9", SECRET_KEY, deadline=0)   # no time: fails at once
    with pytest.raises(ApiError) as err:
        client.get("/contacts")
    assert SECRET_KEY not in str(err.value) and SECRET_KEY not in repr(err.value.body())
    assert SECRET_KEY not in repr(client.__dict__.get("host"))
