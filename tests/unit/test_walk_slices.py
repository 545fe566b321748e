"""The contacts walk in id slices (several pages in flight): every contact exactly once, whatever the
slicing, across hand-ons (a walk resumed from any page's cursor) and a crash (pages read after the last
saved cursor are read again, never written twice), in a fixed order; and AC's own calls stay few."""

from __future__ import annotations

import threading
import time

import pytest
from acexport.ac.client import AC_PAGE
from acexport.jobs import spec as job_spec
from acexport.jobs.walk import OutOfTime, Walk


class FakeContacts:
    """AC's /contacts as the reference documents it: orders[id], id_greater, id_less, limit, meta.total
    (a string) counting what the filters match."""

    host, key_fingerprint = "fake.api-us1.com", "k"

    def __init__(self, ids):
        self.ids = sorted(ids)
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        self.delay = 0.0

    def get(self, path, params):
        query = dict(params)
        with self.lock:
            self.calls.append(query)
        if self.delay:
            time.sleep(self.delay)
        ids = [i for i in self.ids if i > int(query.get("id_greater", -1))
               and ("id_less" not in query or i < int(query["id_less"]))]
        if query.get("orders[id]") == "DESC":
            ids.reverse()
        page = ids[int(query.get("offset", 0)):][:int(query["limit"])]
        return {"contacts": [{"id": str(i), "email": f"c{i}@example.com"} for i in page],
                "meta": {"total": str(len(ids))}}


def walk(client, *, in_flight=5, slice_pages=2, stop_after=None, cursor=None):
    """Walk to the end (or `stop_after` pages), as the worker does: (ids written, cursor after the last)."""
    spec = job_spec.parse("contacts", {})
    seen, cursor = [], dict(cursor or {})
    with Walk(client, spec, cursor, deadline=time.monotonic() + 30, patience=0, in_flight=in_flight,
              slice_pages=slice_pages) as w:
        while True:
            page = w.next_page()
            seen += [int(r["id"]) for r in page.records]
            cursor = page.cursor
            if page.last or (stop_after is not None and len(seen) >= stop_after):
                return seen, cursor, page.last


@pytest.mark.parametrize("ids", [range(1, 5001), range(1, 20001, 7),
                                 [*range(1, 300), *range(100_000, 104_000)]],    # dense, sparse, lopsided
                         ids=["dense", "sparse", "lopsided"])
def test_every_contact_once_with_several_slices(ids):
    client = FakeContacts(ids)
    seen, _, _ = walk(client)
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    slices = {(c.get("id_less")) for c in client.calls if c.get("orders[id]") == "ASC"}
    assert len(slices) >= 3                                  # walked in several slices at once
    pages = -(-len(client.ids) // AC_PAGE)
    assert len(client.calls) <= pages * 1.1 + 6              # a partial page per slice, one probe for the top


def test_the_order_is_fixed_whatever_acs_answer_times():
    first, _, _ = walk(FakeContacts(range(1, 3001)))
    slow = FakeContacts(range(1, 3001))
    slow.delay = 0.002
    again, _, _ = walk(slow)
    assert first == again and first != sorted(first)       # slices take turns: not one id order, but the same


def test_hand_ons_and_a_crash_write_each_contact_once():
    client = FakeContacts(range(1, 4001))
    written, cursor, last = [], {}, False
    hand_ons, saved = 0, []
    while not last:
        seen, cursor_after, last = walk(client, cursor=cursor, stop_after=350)
        saved.append(cursor_after)
        if hand_ons == 2:
            # a crash: the pages of this step were read (some maybe uploaded), the checkpoint never saved
            hand_ons += 1
            continue
        written += seen
        cursor = cursor_after
        hand_ons += 1
    assert hand_ons >= 6 and sum(len(c.get("after", [])) > 1 for c in saved) >= 3   # resumed from slices
    assert sorted(written) == list(range(1, 4001)) and len(written) == len(set(written))


def test_a_small_walk_is_one_slice_and_asks_nothing_more():
    client = FakeContacts(range(1, 451))
    seen, cursor, _ = walk(client, slice_pages=10)
    assert seen == list(range(1, 451)) and len(client.calls) == 5
    assert cursor == {"v": 2, "last_id": "450", "pages": 5}    # the cursor of a walk in one slice, as before


def test_a_saved_single_cursor_resumes_and_may_be_sliced():
    client = FakeContacts(range(1, 3001))
    seen, _, _ = walk(client, cursor={"last_id": "1000"})
    assert sorted(seen) == list(range(1001, 3001))


def test_out_of_time_returns_the_pages_already_requested_then_stops():
    client = FakeContacts(range(1, 3001))
    spec = job_spec.parse("contacts", {})
    got, pages = [], 0
    with Walk(client, spec, {}, deadline=time.monotonic() + 30, patience=0, in_flight=5, slice_pages=2) as w:
        for _ in range(4):
            got += w.next_page().records
            pages += 1
        while w.pending:
            page = w.next_page(prefetch=False)
            got += page.records
            pages += 1
        with pytest.raises(OutOfTime):
            w.next_page(prefetch=False)
    asked = sum(1 for call in client.calls if call["orders[id]"] == "ASC")
    assert asked == pages > 5                              # every page requested was returned: none wasted
    seen, _, _ = walk(client, cursor=page.cursor)
    ids = [int(r["id"]) for r in got] + seen
    assert sorted(ids) == list(range(1, 3001)) and len(ids) == len(set(ids))


@pytest.mark.parametrize("in_flight", [3, 5])
def test_slices_of_dense_ids_are_whole_pages_and_cost_no_request(in_flight):
    """Slices cut to hold whole pages end on a full page: a walk of 5,000 dense ids asks AC for 50 pages, as one
    walk would, however many slices it is cut into (cut into equal id widths, each slice ended on a partly
    filled page of its own)."""
    client = FakeContacts(range(1, 5001))
    seen, _, _ = walk(client, in_flight=in_flight)
    pages = [call for call in client.calls if call.get("orders[id]") == "ASC"]
    assert sorted(seen) == list(range(1, 5001)) and len(seen) == 5000
    assert len({call.get("id_less") for call in pages}) >= in_flight       # walked in slices
    assert len(pages) == 50


def test_the_fake_is_an_ac_reader():
    """It stands where the walk takes an acexport.ports.ACReader (the AC client in production)."""
    from acexport.ports import ACReader

    assert isinstance(FakeContacts([1]), ACReader)
