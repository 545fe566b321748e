"""The change feed's read side (docs/live.md, "The feed" and "Latest state of a record"): pages bounded by
bytes, no change ever behind a reader's cursor, and what a consumer needs to keep each record's latest state
when AC's deliveries arrive out of order. Real HTTP to the local API, the wire protocol to nx-27017."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import pytest

from tests.integration.test_live import changes, deliver, hook, live, secret_of, settle  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("live")   # a connected caller with live changes on


def _feed(mongo):
    return mongo[os.environ["CHANGES_COLLECTION"]]


# ------------------------------------------------------------------ pages bounded by bytes


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_page_of_large_changes_stays_far_below_lambdas_6_mb(api, sandbox, mongo):
    """25 changes of ~250 KB each (what 126 KB deliveries of control characters became) at the default page
    size: 6 MB, Lambda's limit. Pages stop at about 1 MB, and paging on returns every change once."""
    settle(sandbox, sandbox.update_contact(3, firstName="seed"))
    feed = _feed(mongo)
    seed = feed.find_one({})
    big = '{"id":"3","firstName":"' + "\\u0001" * 42_000 + '"}'         # 252 KB of JSON text
    from acexport.live import subscriptions

    sub = mongo[os.environ["LIVE_COLLECTION"]].find_one({})
    for n in range(25):
        seq = subscriptions.next_seq(sub["_id"])
        feed.insert_one({**seed, "_id": f"big-{n}", "seq": seq, "dedupe": f"big-{n}", "record": big})
    seen, after, sizes = [], "0", []
    while True:
        reply = api.call("GET", f"/changes?after={after}")
        assert reply.status_code == 200
        sizes.append(len(reply.content))
        body = reply.json()
        if body["next_cursor"] == after:
            break
        seen += [c["id"] for c in body["data"]]
        after = body["next_cursor"]
    assert max(sizes) < 1_300_000, sizes
    assert seen == [seed["_id"], *(f"big-{n}" for n in range(25))]


# ------------------------------------------------------------------ a reader never skips a change


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_writer_slower_than_the_readers_never_lands_behind_their_cursor(api, sandbox, mongo, monkeypatch):
    """Writer A takes its number and stalls; writer B stores the next change; a reader, 3 s later, reads on
    past A's number. When A goes on, its change must still reach the reader."""
    from acexport.live import changes as feed_module
    from acexport.live import subscriptions

    real = subscriptions.next_seq
    stalled, release = threading.Event(), threading.Event()

    def next_seq(subscription_id):
        number = real(subscription_id)
        if threading.current_thread().name == "writer-a" and not release.is_set():
            stalled.set()
            release.wait(20)
        return number

    monkeypatch.setattr(subscriptions, "next_seq", next_seq)
    secret = secret_of(hook(sandbox))
    from acexport.live import receiver

    body = b"type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=7&contact[first_name]=A"
    a = threading.Thread(name="writer-a", target=receiver.receive, args=(  # the handler's work, in a thread
        secret, body, "application/x-www-form-urlencoded"), kwargs={"max_bytes": 128 * 1024})
    a.start()
    assert stalled.wait(20)
    assert deliver(api, secret, "type=update&date_time=2024-02-28T04:45:42-06:00&contact[id]=8"
                                "&contact[first_name]=B").status_code == 200
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=3)
    _feed(mongo).update_many({"record_id": "8"}, {"$set": {"sequenced_at": past}})
    first = changes(api)
    assert [c["record_id"] for c in first["data"]] == ["8"]
    release.set()
    a.join(20)
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline and "7" not in seen:
        seen += [c["record_id"] for c in changes(api, f"after={first['next_cursor']}")["data"]]
        time.sleep(0.2)
    assert seen == ["7"], "writer A's change fell behind the reader's cursor"
    assert feed_module.CLAIM_AFTER_SECONDS <= 2


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_duplicate_delivery_holds_no_reader_back(api, sandbox, mongo):
    (sent,) = sandbox.update_contact(4, firstName="Once")
    sandbox.wait_for_deliveries()
    sandbox.redeliver(sent)
    sandbox.wait_for_deliveries()
    settle(sandbox, sandbox.update_contact(5, firstName="Next"))
    assert [c["record_id"] for c in changes(api)["data"]] == ["4", "5"]        # at once, no 2 s wait


def test_a_gap_is_claimed_once_and_the_claim_is_never_served(api, sandbox, mongo):
    settle(sandbox, sandbox.update_contact(3, firstName="One"))
    feed = _feed(mongo)
    first = feed.find_one({})
    later = {**first, "_id": "later", "seq": first["seq"] + 2, "dedupe": "later",
             "sequenced_at": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)}
    feed.insert_one(later)
    assert [c["id"] for c in changes(api)["data"]] == [first["_id"], "later"]
    (gap,) = feed.find({"gap": True})
    assert gap["seq"] == first["seq"] + 1
    from pymongo.errors import DuplicateKeyError

    with pytest.raises(DuplicateKeyError):            # the late writer of that number can no longer insert it
        feed.insert_one({**first, "_id": "late", "seq": first["seq"] + 1, "dedupe": "late"})


# ------------------------------------------------------------------ the latest state of a record


def _tagged(secret, api, when: str, tags: str, kind="contact_tag_added", extra="", record="3"):
    body = (f"type={kind}&date_time={when}&initiated_by=admin&contact[id]={record}&contact[email]=a%40example.com"
            f"&contact[tags]={tags}{extra}")
    assert deliver(api, secret, body).status_code == 200


def test_an_update_sent_first_but_stored_last_is_marked_superseded(api, sandbox):
    """The README's flow, as AC can deliver it: `update` (at :41, old tags) arrives after
    `contact_tag_added` (at :42, with vip). A consumer that skips superseded changes ends with vip."""
    secret = secret_of(hook(sandbox))
    _tagged(secret, api, "2024-02-28T04:45:42-06:00", "customer, vip", extra="&tag=vip")
    _tagged(secret, api, "2024-02-28T04:45:41-06:00", "customer", kind="update",
            extra="&contact[first_name]=Ada")
    tagged, updated = changes(api)["data"]
    assert (tagged["type"], updated["type"]) == ("contact.tag_added", "contact.updated")
    assert tagged["superseded_by"] is None and updated["superseded_by"] == tagged["id"]
    assert not tagged["order_unknown"] and not updated["order_unknown"]
    state = {}
    for change in (tagged, updated):                  # the consumer rule of docs/live.md
        if change["superseded_by"] is None:
            state[(change["resource"], change["record_id"])] = change["record"]
    assert state[("contact", "3")]["tags"] == ["customer", "vip"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_reader_that_saw_the_older_change_first_learns_it_was_superseded_on_the_next_page(api, sandbox):
    secret = secret_of(hook(sandbox))
    _tagged(secret, api, "2024-02-28T04:45:41-06:00", "customer", kind="update")
    first = changes(api)["data"]
    assert first[0]["superseded_by"] is None                     # nothing newer yet: apply it
    _tagged(secret, api, "2024-02-28T04:45:42-06:00", "customer, vip", extra="&tag=vip")
    (newer,) = changes(api, f"after={first[0]['cursor']}")["data"]
    assert newer["superseded_by"] is None                        # apply it too: the latest state wins
    assert changes(api)["data"][0]["superseded_by"] == newer["id"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_two_changes_of_a_record_in_the_same_second_say_their_order_is_unknown(api, sandbox):
    secret = secret_of(hook(sandbox))
    _tagged(secret, api, "2024-02-28T04:45:41-06:00", "customer, vip", extra="&tag=vip")
    _tagged(secret, api, "2024-02-28T04:45:41-06:00", "customer", kind="update")
    _tagged(secret, api, "2024-02-28T04:45:41-06:00", "x", kind="update", record="4")
    tagged, updated, other = changes(api)["data"]
    assert tagged["order_unknown"] and updated["order_unknown"] and not other["order_unknown"]
    assert tagged["superseded_by"] is None and updated["superseded_by"] is None


def test_a_gap_behind_a_change_numbered_hours_ago_is_an_expired_change_and_is_not_claimed(api, sandbox, mongo):
    settle(sandbox, sandbox.update_contact(3, firstName="One"))
    feed = _feed(mongo)
    first = feed.find_one({})
    feed.insert_one({**first, "_id": "old", "seq": first["seq"] + 5, "dedupe": "old",
                     "sequenced_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)})
    assert [c["id"] for c in changes(api)["data"]] == [first["_id"], "old"]
    assert feed.count_documents({"gap": True}) == 0


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_long_gap_is_claimed_a_thousand_numbers_per_read_and_never_jams(api, sandbox, mongo):
    from acexport.live import changes as feed_module

    settle(sandbox, sandbox.update_contact(3, firstName="One"))
    feed = _feed(mongo)
    first = feed.find_one({})
    far = first["seq"] + feed_module.MAX_CLAIMS + 200
    feed.insert_one({**first, "_id": "far", "seq": far, "dedupe": "far",
                     "sequenced_at": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)})
    page = changes(api)
    assert [c["id"] for c in page["data"]] == [first["_id"]]
    assert int(page["next_cursor"]) == first["seq"] + feed_module.MAX_CLAIMS     # one read's claims, then stop
    again = changes(api, f"after={page['next_cursor']}")
    assert [c["id"] for c in again["data"]] == ["far"] and again["next_cursor"] == str(far)


def test_setup_db_makes_the_sequence_index_unique_over_an_earlier_non_unique_one(mongo):
    from acexport.live import changes as feed_module
    from pymongo.errors import DuplicateKeyError

    coll = mongo["upgrade_probe"]
    coll.create_index([("account_id", 1), ("owner", 1), ("seq", 1)], name=feed_module.SEQ_INDEX)
    feed_module.create_indexes(coll)
    coll.insert_one({"account_id": "a", "owner": "o", "seq": 1, "dedupe": "x"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"account_id": "a", "owner": "o", "seq": 1, "dedupe": "y"})
    coll.insert_many([{"account_id": "a", "owner": "o", "seq": None, "dedupe": d} for d in ("p", "q")])
