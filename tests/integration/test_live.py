"""Live changes end to end (the live-changes work): PUT/GET/DELETE /live register, check and remove the webhooks at
the AC sandbox; the sandbox posts AC-shaped form deliveries to the local API when its data changes; the receiver
stores each once and puts an event on the bus; GET /changes reads them back. Real HTTP everywhere, the
Mongo wire protocol to nx-27017, EventBridge on moto."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.conftest import BASE

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
REQUIRED = {"subscribe", "update", "unsubscribe", "contact_tag_added", "contact_tag_removed", "deal_add",
            "deal_update"}


def enable(api, **kwargs):
    reply = api.call("PUT", "/live", **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]


def hook(sandbox) -> dict:
    (only,) = sandbox.webhooks.values()
    return only


def secret_of(webhook: dict) -> str:
    return urlsplit(webhook["url"]).path.rsplit("/", 1)[1]


def changes(api, query: str = "", **kwargs):
    reply = api.call("GET", "/changes" + (f"?{query}" if query else ""), **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()


def deliver(api, secret: str, body, headers=FORM):
    reply = api.http.post(f"{api.stack.api_url}{BASE}/hooks/{secret}", data=body, headers=headers, timeout=30)
    from tests.openapi_check import check_response

    check_response(reply)
    return reply


def settle(sandbox, deliveries):
    sandbox.wait_for_deliveries()
    assert [d.status for d in deliveries] == [200] * len(deliveries)


def published(stack, change_type: str | None = None) -> list[dict]:
    events = [e for e in stack.events.published() if e["detail-type"] == "ActiveCampaign Change"]
    return [e for e in events if change_type is None or e["detail"]["type"] == change_type]


@pytest.fixture
def live(api, stack):
    """A connected caller with live changes on; the bus log drained."""
    api.connect()
    stack.events.published()
    with stack.events._published_lock:
        stack.events._published.clear()
    return enable(api)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_put_registers_one_webhook_with_the_events_and_sources_ac_documents(api, sandbox, mongo, live):
    assert live["enabled"] is True and live["state"] == "enabled"
    assert set(live["events"]) >= REQUIRED and set(live["sources"]) == {"public", "admin", "api", "system"}
    webhook = hook(sandbox)
    assert set(webhook["events"]) == set(live["events"]) and webhook["sources"] == live["sources"]
    url = urlsplit(webhook["url"])
    assert f"{url.scheme}://{url.netloc}" == api.stack.api_url
    assert url.path.startswith(f"{BASE}/hooks/")
    secret = secret_of(webhook)
    assert len(secret) >= 32
    # stored only as a hash; never in an answer
    (doc,) = mongo[os.environ["LIVE_COLLECTION"]].find({})
    assert doc["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(doc)
    assert secret not in api.call("GET", "/live").text


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_put_again_is_idempotent_and_a_webhook_lost_at_ac_is_registered_again(api, sandbox, live):
    first = hook(sandbox)
    again = enable(api)
    assert hook(sandbox) == first and again["events"] == live["events"]
    sandbox.webhooks.clear()                          # someone deleted it in AC's UI
    status = api.call("GET", "/live").json()["data"]
    assert (status["enabled"], status["state"]) == (False, "gone") and status["gone_at"]
    enable(api)
    renewed = hook(sandbox)
    assert renewed["id"] != first["id"] and secret_of(renewed) != secret_of(first)
    old_url = deliver(api, secret_of(first), "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3")
    assert old_url.status_code == 410                                           # the old URL is revoked
    assert api.call("GET", "/live").json()["data"]["state"] == "enabled"


def test_put_without_a_connection_is_404(api):
    reply = api.call("PUT", "/live")
    assert reply.status_code == 404 and reply.json()["message"] == "Unauthorised Access"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_contact_change_arrives_in_the_feed_in_export_names_and_on_the_bus(api, sandbox, stack, live):
    settle(sandbox, sandbox.update_contact(3, firstName="Zed", lastName="Quinn"))
    body = changes(api)
    (change,) = body["data"]
    assert body["next_cursor"] == change["cursor"]
    assert (change["type"], change["resource"], change["record_id"], change["initiated_by"]) == \
        ("contact.updated", "contact", "3", "admin")
    record = change["record"]
    assert (record["id"], record["firstName"], record["lastName"]) == ("3", "Zed", "Quinn")
    assert record["email"] == sandbox.contacts[2]["email"] and isinstance(record["tags"], list)
    assert "first_name" not in record and "contact[first_name]" not in record
    (event,) = published(stack)
    assert event["source"] == "activecampaign-integration"
    assert event["detail"] == {"account_id": "account-1", "owner": "user-1", "workspace_id": None,
                               "type": "contact.updated", "resource": "contact", "record_id": "3",
                               "change_id": change["id"], "cursor": change["cursor"],
                               "occurred_at": change["occurred_at"]}


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_deals_tags_and_new_contacts(api, sandbox, live):
    settle(sandbox, sandbox.tag_contact(5, "vip"))
    stage = "3" if sandbox._deal(5)["stage"] == "2" else "2"
    settle(sandbox, sandbox.update_deal(5, value=123456, stage=stage))
    contact, sent = sandbox.add_contact("new.person@example.com", first_name="New")
    settle(sandbox, sent)
    tagged, deal, created = changes(api)["data"]
    assert (tagged["type"], tagged["tag"]) == ("contact.tag_added", "vip") and "vip" in tagged["record"]["tags"]
    assert deal["type"] == "deal.updated" and deal["record"]["value"] == "123456"   # cents, as the export
    assert deal["record"]["stage"] == stage and deal["updated_fields"] == ["value", "stage", "mdate"]
    assert (created["type"], created["record_id"]) == ("contact.created", contact["id"])


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_the_same_delivery_twice_is_one_change_and_one_event(api, sandbox, stack, live):
    (sent,) = sandbox.update_contact(4, firstName="Once")
    sandbox.wait_for_deliveries()
    again = sandbox.redeliver(sent)
    sandbox.wait_for_deliveries()
    assert (sent.status, again.status) == (200, 200)
    assert len(changes(api)["data"]) == 1
    assert len(published(stack)) == 1


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_feed_pages_oldest_first_by_cursor(api, sandbox, live):
    for n in range(5):
        settle(sandbox, sandbox.update_contact(10 + n, firstName=f"P{n}"))
    first = changes(api, "limit=2")
    assert [c["record_id"] for c in first["data"]] == ["10", "11"]
    rest = changes(api, f"after={first['next_cursor']}&limit=250")
    assert [c["record_id"] for c in rest["data"]] == ["12", "13", "14"]
    empty = changes(api, f"after={rest['next_cursor']}")
    assert empty["data"] == [] and empty["next_cursor"] == rest["next_cursor"]


@pytest.mark.parametrize("query", ["limit=0", "limit=251", "limit=x", "limit=", "after=", "after=-1", "after=abc",
                                   "after=1&after=2",
                                   "since=1", "after=" + "9" * 19])
@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_bad_feed_queries_are_400(api, query):
    reply = api.call("GET", f"/changes?{query}")
    assert reply.status_code == 400, reply.text


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_wrong_or_malformed_secrets_are_refused_and_store_nothing(api, sandbox, mongo, live):
    body = "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3&contact[first_name]=X"
    for secret, status in (("a" * 43, 410), (secret_of(hook(sandbox))[:-1] + "x", 410), ("short", 404),
                           ("../../auth", 404), ("x" * 129, 404)):
        reply = deliver(api, secret, body)
        assert reply.status_code == status, (secret, reply.text)
    assert mongo[os.environ["CHANGES_COLLECTION"]].count_documents({}) == 0


@pytest.mark.parametrize(("body", "headers", "status"), [
    ('{"type": "update"}', {"Content-Type": "application/json"}, 400),
    ("type=update&contact[id]=3", FORM, 400),
    ("type=sent&date_time=2024-02-28T04:45:41-06:00&campaign[id]=1", FORM, 400),
    ("type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=three", FORM, 400),
    (b"type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3&x=\xff\xfe", FORM, 400),
    ("type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3&pad=" + "x" * 140_000, FORM, 413),
])
@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_malformed_or_oversized_deliveries_store_nothing(api, sandbox, mongo, live, body, headers, status):
    reply = deliver(api, secret_of(hook(sandbox)), body, headers)
    assert reply.status_code == status, reply.text
    assert mongo[os.environ["CHANGES_COLLECTION"]].count_documents({}) == 0


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_another_tenant_never_sees_a_change(api, sandbox, stack, live):
    other = api.token(uid="user-2", account_id="account-2")
    sub_owner = api.token(uid="user-1", account_id="account-1b")
    settle(sandbox, sandbox.update_contact(3, firstName="Mine"))
    assert len(changes(api)["data"]) == 1
    for token in (other, sub_owner):
        assert changes(api, token=token)["data"] == []
        assert changes(api, "after=0&limit=250", token=token)["data"] == []
    # the second tenant connects the same AC account and turns live on: each gets its own copy
    api.connect(token=other)
    enable(api, token=other)
    assert len(sandbox.webhooks) == 2
    settle(sandbox, sandbox.update_contact(3, firstName="Both"))
    mine, theirs = changes(api)["data"], changes(api, token=other)["data"]
    assert [c["record"]["firstName"] for c in mine] == ["Mine", "Both"]
    assert [c["record"]["firstName"] for c in theirs] == ["Both"]
    assert {c["id"] for c in mine}.isdisjoint({c["id"] for c in theirs})
    owners = {(e["detail"]["account_id"], e["detail"]["owner"]) for e in published(stack)}
    assert owners == {("account-1", "user-1"), ("account-2", "user-2")}


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_delete_live_removes_the_webhook_and_revokes_the_url(api, sandbox, live):
    secret = secret_of(hook(sandbox))
    reply = api.call("DELETE", "/live")
    assert reply.status_code == 200 and reply.json()["data"] == {"enabled": False, "state": "disabled",
                                                                  "events": [], "since": None,
                                                                  "removed_at_ac": True}
    assert sandbox.webhooks == {}
    assert deliver(api, secret, "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3").status_code == 410
    assert api.call("GET", "/live").json()["data"]["enabled"] is False
    assert api.call("DELETE", "/live").status_code == 200      # idempotent
    enable(api)                                                # and on again, with cursors still increasing
    settle(sandbox, sandbox.update_contact(3, firstName="Back"))
    assert changes(api)["data"][-1]["record"]["firstName"] == "Back"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_delete_auth_removes_the_webhooks_too(api, sandbox, live):
    secret = secret_of(hook(sandbox))
    assert api.call("DELETE", "/auth").status_code == 200
    assert sandbox.webhooks == {}
    assert deliver(api, secret, "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3").status_code == 410
    assert api.call("GET", "/live").json()["data"]["state"] == "disabled"


@pytest.mark.slow   # the AC client's back-offs against the injected 503s: about 3 s
def test_delete_auth_when_ac_is_down_still_revokes_the_url(api, sandbox, live):
    secret = secret_of(hook(sandbox))
    sandbox.inject(503, times=20)
    assert api.call("DELETE", "/auth").status_code == 200
    assert len(sandbox.webhooks) == 1                          # AC kept it; its deliveries now get 410
    assert deliver(api, secret, "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3").status_code == 410


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_changes_expire_after_the_ttl(api, sandbox, mongo, live):
    settle(sandbox, sandbox.update_contact(3, firstName="Old"))
    settle(sandbox, sandbox.update_contact(4, firstName="New"))
    coll = mongo[os.environ["CHANGES_COLLECTION"]]
    ttl = next(i for i in coll.list_indexes() if list(i["key"]) == ["received_at"])  # nx-27017 renames indexes
    assert ttl["expireAfterSeconds"] == 7 * 86400                      # made by setup_db at the stack's start
    unique = {tuple(k for k, _ in i["key"].items()) for i in coll.list_indexes() if i.get("unique")}
    assert ("account_id", "owner", "dedupe") in unique
    live_unique = {tuple(k for k, _ in i["key"].items()) for i in mongo[os.environ["LIVE_COLLECTION"]].list_indexes()
                   if i.get("unique")}
    assert {("account_id", "owner"), ("secret_hash",)} <= live_unique
    old = coll.find_one({"record_id": "3"})
    now = dt.datetime.now(dt.UTC)
    coll.update_one({"_id": old["_id"]}, {"$set": {"received_at": now - dt.timedelta(days=8)}})
    # (the number of an expired change is a gap; a gap next to a change numbered under 2 s ago holds
    # readers back for those 2 s: this one was numbered 3 s ago)
    coll.update_one({"record_id": "4"}, {"$set": {"sequenced_at": now - dt.timedelta(seconds=3)}})
    assert [c["record_id"] for c in changes(api)["data"]] == ["4"]
    assert coll.count_documents({"record_id": "3"}) <= 1   # nx-27017's TTL monitor may already have run


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_change_being_written_holds_the_cursor_back(api, sandbox, mongo, live):
    """A gap in the sequence younger than GAP_SECONDS is a change being written: readers stop before it."""
    settle(sandbox, sandbox.update_contact(3, firstName="One"))
    coll = mongo[os.environ["CHANGES_COLLECTION"]]
    first = coll.find_one({})
    now = dt.datetime.now(dt.UTC)
    later = {**first, "_id": "later", "seq": first["seq"] + 2, "dedupe": "later", "sequenced_at": now}
    coll.insert_one(later)
    assert [c["id"] for c in changes(api)["data"]] == [first["_id"]]        # stops before the gap
    coll.update_one({"_id": "later"}, {"$set": {"sequenced_at": now - dt.timedelta(seconds=5)}})
    assert [c["id"] for c in changes(api)["data"]] == [first["_id"], "later"]   # an old gap is skipped


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_no_hook_secret_in_any_log_line(api, sandbox, live, capfd, caplog):
    secret = secret_of(hook(sandbox))
    settle(sandbox, sandbox.update_contact(3, firstName="Logged"))
    deliver(api, secret, "type=nope&date_time=x")
    deliver(api, secret, "type=update")
    deliver(api, secret[:-2] + "zz", "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3")
    api.call("GET", "/live")
    api.call("DELETE", "/live")
    deliver(api, secret, "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3")
    out, err = capfd.readouterr()
    assert out or err or caplog.text, "the handlers' log lines should have been captured"
    for text in (out, err, caplog.text):
        assert secret not in text and secret[:-2] not in text


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_the_receiver_answers_fast(api, sandbox, live):
    sent = []
    for n in range(20):
        sent += sandbox.update_contact(20 + n, firstName=f"F{n}")
    sandbox.wait_for_deliveries()
    assert all(d.status == 200 for d in sent)
    times = sorted(d.elapsed for d in sent)
    assert times[len(times) // 2] < 0.5, times     # a generous bound; benchmarks/bench_live.py measures


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_receiver_needs_no_token_but_the_other_live_routes_do(api, sandbox, live):
    assert api.call("GET", "/changes", token=None).status_code == 401
    assert api.call("PUT", "/live", token=None).status_code == 401
    reply = requests.post(f"{api.stack.api_url}{BASE}/hooks/{secret_of(hook(sandbox))}", headers=FORM, timeout=10,
                          data="type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=3")
    assert reply.status_code == 200 and reply.json()["data"] == {"duplicate": False}


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_odd_labels_from_ac_are_stored_as_sent(api, sandbox, live):
    """Custom field labels are AC users' text: a `.` or a leading `$` must not break the store."""
    body = ("type=deal_add&date_time=2024-02-28T04:45:41-06:00&deal[id]=77&deal[value]=10.00&deal[value_raw]=10"
            "&deal[fields][0][id]=1&deal[fields][0][key]=$where.x&deal[fields][0][value]=1"
            "&deal[fields][1][key]=a.b&deal[fields][1][value]=2")
    assert deliver(api, secret_of(hook(sandbox)), body).status_code == 200
    (change,) = changes(api)["data"]
    assert change["record"]["customFields"] == {"$where.x": "1", "a.b": "2"}
    assert change["record"]["value"] == "1000"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_the_sample_events_run_through_their_handlers(api, sandbox, mongo):
    """events/live_*.json and hooks_receiver.json, invoked as Lambda invokes them (as `sam local invoke -e`)."""
    import json
    from pathlib import Path

    events = Path(__file__).resolve().parents[2] / "events"

    def invoke(name: str, function: str, change=None) -> dict:
        payload = json.loads((events / f"{name}.json").read_text())
        if change:
            change(payload)
        reply = api.stack.api.invoke(function, payload)
        return {**reply, "json": json.loads(reply["body"])}

    api.connect(token=api.token("dev-user", "dev-account", workspace_id="dev-workspace"))   # the events' tenant
    enabled = invoke("live_enable", "LiveEnableFunction")
    assert enabled["statusCode"] == 200 and enabled["json"]["data"]["enabled"] is True
    url = hook(sandbox)["url"]
    assert url.startswith("https://abcdef1234.execute-api.us-east-1.amazonaws.com/v1/integrations/activecampaign/hooks/")
    assert invoke("live_status", "LiveStatusFunction")["json"]["data"]["state"] == "enabled"

    def with_secret(payload):
        payload["pathParameters"]["secret"] = url.rsplit("/", 1)[1]
        payload["rawPath"] = payload["requestContext"]["http"]["path"] = urlsplit(url).path

    assert invoke("hooks_receiver", "HooksReceiverFunction")["statusCode"] == 410     # the sample's secret
    received = invoke("hooks_receiver", "HooksReceiverFunction", with_secret)
    assert received["statusCode"] == 200 and received["json"]["data"] == {"duplicate": False}
    feed = invoke("live_changes", "LiveChangesFunction")["json"]
    assert [(c["type"], c["record"]["tags"]) for c in feed["data"]] == [("contact.updated", ["customer", "vip"])]
    assert invoke("live_disable", "LiveDisableFunction")["json"]["data"]["removed_at_ac"] is True
    assert sandbox.webhooks == {}
