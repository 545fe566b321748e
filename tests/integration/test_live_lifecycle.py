"""Live subscriptions against a hostile internet and racing requests (docs/live.md, "The webhook URL" and
"Lifecycle"): the URL AC posts to never comes from a request header; DELETE /auth, DELETE /live and PUT /live
racing leave no webhook at AC and no secret accepted; a subscription made with a connection the tenant no
longer has, or one AC no longer has, accepts nothing; account events are registered, or reported refused.
Real HTTP to the local API and the AC sandbox, the wire protocol to nx-27017."""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

import pytest

from tests.integration.test_live import changes, deliver, enable, hook, secret_of, settle

TENANT = {"account_id": "account-1", "owner": "user-1"}
UPDATE = "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3&contact[first_name]=X"


def tenant():
    from acexport.tenancy import Tenant

    return Tenant(**TENANT)


@pytest.fixture
def connected(api):
    api.connect()
    return api


# ------------------------------------------------------------------ account events


def test_put_registers_the_account_events_the_documented_list_omits(connected, sandbox):
    live = enable(connected)
    assert {"account_add", "account_update"} <= set(live["events"])
    assert {"account_add", "account_update"} <= set(hook(sandbox)["events"])
    assert "refused_events" not in live


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_an_account_that_refuses_account_events_gets_the_webhook_without_them_and_get_live_says_so(
        connected, sandbox):
    sandbox.refused_events = {"account_add", "account_update"}
    live = enable(connected)
    assert not {"account_add", "account_update"} & set(hook(sandbox)["events"])
    assert "update" in hook(sandbox)["events"] and len(sandbox.webhooks) == 1
    status = connected.call("GET", "/live").json()["data"]
    assert status["state"] == "enabled" and status["refused_events"] == ["account_add", "account_update"]
    assert live["refused_events"] == status["refused_events"] and "refused" in status["note"]


# ------------------------------------------------------------------ the webhook URL


@pytest.mark.parametrize("proto", ["https://attacker.example/c?x=", "https", "gopher", "http://evil.example#"])
def test_x_forwarded_proto_never_shapes_the_webhook_url(connected, sandbox, proto):
    live = enable(connected, headers={"X-Forwarded-Proto": proto})
    url = urlsplit(hook(sandbox)["url"])
    api = urlsplit(connected.stack.api_url)
    assert (url.scheme, url.netloc, url.query, url.fragment) == (api.scheme, api.netloc, "", "")
    assert "attacker" not in hook(sandbox)["url"] and "evil" not in hook(sandbox)["url"]
    assert live["host"] == api.netloc
    assert connected.call("GET", "/live").json()["data"]["host"] == api.netloc


def test_a_host_header_does_not_shape_the_webhook_url_either(connected, sandbox):
    enable(connected, headers={"X-Forwarded-Host": "attacker.example", "Forwarded": "host=attacker.example"})
    assert urlsplit(hook(sandbox)["url"]).netloc == urlsplit(connected.stack.api_url).netloc


# ------------------------------------------------------------------ lifecycle


def _during_registration(monkeypatch, action, *, after_ac_answered: bool):
    """Run `action` while PUT /live registers its webhook: just before AC is asked, or just after AC made it
    (the handlers run in this process, so this is the interleaving two Lambdas could produce)."""
    from acexport.live import hooks

    real = hooks._register

    def racing(client, name, url, events):
        if not after_ac_answered:
            action()
        made = real(client, name, url, events)
        if after_ac_answered:
            action()
        return made

    monkeypatch.setattr(hooks, "_register", racing)


@pytest.mark.parametrize("after_ac_answered", [False, True])
def test_delete_auth_during_put_live_leaves_no_webhook_and_no_accepted_secret(connected, sandbox, mongo,
                                                                              monkeypatch, after_ac_answered):
    from acexport.credentials import connections

    _during_registration(monkeypatch, lambda: connections.delete(tenant(), deadline=time.monotonic() + 20),
                         after_ac_answered=after_ac_answered)
    reply = connected.call("PUT", "/live")
    assert reply.status_code in (404, 409), reply.text
    assert sandbox._webhook_seq == 1 and sandbox.webhooks == {}    # made at AC, then removed again
    (doc,) = mongo[os.environ["LIVE_COLLECTION"]].find({})
    assert doc["state"] == "disabled" and doc["secret_hash"].startswith("revoked:")
    assert connected.call("GET", "/live").json()["data"]["state"] == "disabled"


def test_delete_auth_during_put_live_refuses_the_secret_it_registered(connected, sandbox, monkeypatch):
    from acexport.credentials import connections

    urls = []

    def delete_and_keep_url():
        urls.append(next(iter(sandbox.webhooks.values()))["url"])
        connections.delete(tenant(), deadline=time.monotonic() + 20)

    _during_registration(monkeypatch, delete_and_keep_url, after_ac_answered=True)
    connected.call("PUT", "/live")
    (url,) = urls
    assert deliver(connected, url.rsplit("/", 1)[1], UPDATE).status_code == 410


def test_delete_live_during_put_live_wins(connected, sandbox, monkeypatch):
    from acexport.live import hooks

    _during_registration(monkeypatch, lambda: hooks.disable(tenant(), deadline=time.monotonic() + 20),
                         after_ac_answered=True)
    reply = connected.call("PUT", "/live")
    assert reply.status_code == 409, reply.text
    assert sandbox.webhooks == {}
    assert connected.call("GET", "/live").json()["data"]["state"] == "disabled"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_two_put_live_at_once_leave_one_webhook(connected, sandbox, monkeypatch):
    from acexport.live import hooks

    real = hooks._register
    inner: list[dict] = []

    def racing(client, name, url, events):
        made = real(client, name, url, events)
        if not inner:
            monkeypatch.setattr(hooks, "_register", real)
            inner.append(hooks.enable(tenant(), url_base=url.rsplit("/", 1)[0], deadline=time.monotonic() + 20))
        return made

    monkeypatch.setattr(hooks, "_register", racing)
    assert connected.call("PUT", "/live").status_code == 409
    assert inner[0]["state"] == "enabled" and len(sandbox.webhooks) == 1
    settle(sandbox, sandbox.update_contact(3, firstName="Once"))
    assert [c["record"]["firstName"] for c in changes(connected)["data"]] == ["Once"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_subscription_of_a_replaced_connection_accepts_nothing_and_its_changes_are_not_served(
        connected, sandbox, mongo):
    """A reconnect that never revoked the subscription (say, a DELETE /auth whose revocation failed): the
    receiver checks the connection the subscription was made with."""
    enable(connected)
    secret = secret_of(hook(sandbox))
    settle(sandbox, sandbox.update_contact(3, firstName="Old account"))
    assert len(changes(connected)["data"]) == 1
    credentials = mongo[os.environ["CREDENTIALS_COLLECTION"]]
    (old,) = credentials.find({})
    credentials.delete_one({"_id": old["_id"]})
    connected.connect()                                         # a new connection (maybe another AC account)
    assert deliver(connected, secret, UPDATE).status_code == 410
    assert changes(connected)["data"] == []                     # the old connection's change is not served
    assert connected.call("GET", "/live").json()["data"]["state"] == "gone"
    enable(connected)                                           # registered again for the new connection
    settle(sandbox, sandbox.update_contact(4, firstName="New account"))
    assert [c["record"]["firstName"] for c in changes(connected)["data"]] == ["New account"]


def test_a_subscription_without_its_connection_accepts_nothing(connected, sandbox, mongo):
    enable(connected)
    secret = secret_of(hook(sandbox))
    mongo[os.environ["CREDENTIALS_COLLECTION"]].delete_many({})
    assert deliver(connected, secret, UPDATE).status_code == 410


def test_a_gone_subscription_accepts_nothing(connected, sandbox, mongo):
    enable(connected)
    secret = secret_of(hook(sandbox))
    sandbox.webhooks.clear()                                    # deleted in AC's UI
    assert connected.call("GET", "/live").json()["data"]["state"] == "gone"
    assert deliver(connected, secret, UPDATE).status_code == 410
    assert mongo[os.environ["CHANGES_COLLECTION"]].count_documents({"gap": {"$exists": False}}) == 0


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_subscription_enabled_before_connections_were_recorded_still_works(connected, sandbox, mongo):
    """Documents written before `connection_id` existed: accepted while the connection that existed when
    the webhook was registered is still the tenant's."""
    enable(connected)
    secret = secret_of(hook(sandbox))
    live = mongo[os.environ["LIVE_COLLECTION"]]
    live.update_one({}, {"$unset": {"connection_id": ""}})
    assert deliver(connected, secret, UPDATE).status_code == 200
    credentials = mongo[os.environ["CREDENTIALS_COLLECTION"]]
    credentials.delete_many({})
    connected.connect()                                          # created after the subscription: not its own
    assert deliver(connected, secret, UPDATE.replace("=X", "=Y")).status_code == 410


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_delete_auth_says_what_it_did_to_the_feed(connected, sandbox):
    enable(connected)
    secret = secret_of(hook(sandbox))
    settle(sandbox, sandbox.update_contact(3, firstName="Before"))
    assert connected.call("DELETE", "/auth").status_code == 200
    assert sandbox.webhooks == {} and deliver(connected, secret, UPDATE).status_code == 410
    connected.connect()
    assert changes(connected)["data"] == []       # the deleted connection's changes are not served any more
