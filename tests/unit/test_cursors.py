"""Checkpoint cursors: every shape a release has stored resumes the walk where it stopped (each written here as
the literal a checkpoint held), today's shape reads back as itself, and a shape from a newer release is refused
rather than guessed (the job fails instead of skipping or repeating records)."""

from __future__ import annotations

import time

import pytest
from acexport.jobs import spec as job_spec
from acexport.jobs.cursors import CursorUnreadable, IdRange, OffsetCursor, SliceCursor
from acexport.jobs.walk import Walk
from acexport.jobs.worker import Outcome, outcome_of

from tests.unit.test_walk_order import FakeDeals
from tests.unit.test_walk_slices import FakeContacts


def resume(client, resource: str, saved: dict, **options) -> tuple[list[int], dict]:
    """Walk to the end from a stored cursor, as a resumed step does: (ids written, the last page's cursor)."""
    with Walk(client, job_spec.parse(resource, {}), dict(saved), deadline=time.monotonic() + 30, patience=0,
              **options) as walk:
        ids = []
        while True:
            page = walk.next_page()
            ids += [int(r["id"]) for r in page.records]
            if page.last:
                return ids, page.cursor


# ---- contacts: one id walk, then id slices ------------------------------------------------------------------

@pytest.mark.parametrize("saved, pages", [
    ({"last_id": "1000"}, 0),                 # the first release: the last id as AC sends it, nothing else
    ({"last_id": "1000", "pages": 10}, 10),   # with the pages read (the page cap)
    ({"v": 2, "last_id": "1000", "pages": 10}, 10),
], ids=["first-release", "with-pages", "v2"])
def test_a_contacts_cursor_of_one_walk_resumes_after_its_last_id(saved, pages):
    client = FakeContacts(range(1, 2001))
    ids, cursor = resume(client, "contacts", saved)
    assert ids == list(range(1001, 2001))
    assert cursor == {"v": 2, "last_id": "2000", "pages": pages + 10}
    assert all(int(call["id_greater"]) >= 1000 for call in client.calls if "orders[id]" in call)


def test_a_contacts_cursor_of_id_slices_resumes_every_slice_where_it_stopped():
    # three slices had been reading: 1..1500 up to 1000, 1501..2500 up to 2000, 2501.. (open) up to 2600
    saved = {"after": [1000, 2000, 2600], "before": [1501, 2501, 0], "pages": 21}
    client = FakeContacts(range(1, 3001))
    ids, cursor = resume(client, "contacts", saved, in_flight=3)
    assert sorted(ids) == [*range(1001, 1501), *range(2001, 2501), *range(2601, 3001)]
    assert len(ids) == len(set(ids)) and cursor["pages"] >= 21 + 14
    assert SliceCursor.load(saved).slices == (IdRange("1000", 1501), IdRange("2000", 2501), IdRange("2600", None))


def test_a_slice_that_had_not_started_reads_from_its_start():
    saved = {"after": [0, 500], "before": [501, 0], "pages": 0}          # 0: from the first id / open
    ids, _ = resume(FakeContacts(range(1, 801)), "contacts", saved, in_flight=2)
    assert sorted(ids) == list(range(1, 801))


# ---- deals and accounts: by offset ---------------------------------------------------------------------------

@pytest.mark.parametrize("saved", [
    {"offset": 100, "last_id": 100},                                  # the first release: an int id, id order
    {"offset": 100, "last_id": "100", "pages": 1},                    # with the pages read, still id order
    {"offset": 100, "last_id": "100", "last_key": [100], "order": "id", "pages": 1},
], ids=["first-release", "with-pages", "id-order"])
def test_a_deals_cursor_in_id_order_goes_on_in_id_order(saved):
    client = FakeDeals(250)
    ids, cursor = resume(client, "deals", saved)
    assert ids == list(range(101, 251))
    assert all(("orders[id]", "ASC") in p and not any(k == "orders[cdate]" for k, _ in p) for p in client.params)
    assert cursor["order"] == "id" and cursor["v"] == 2 and cursor["last_id"] == "250"


def test_a_deals_cursor_in_creation_order_goes_on_in_creation_order():
    saved = {"offset": 100, "last_id": "100", "last_key": [1704171700.0, 100], "order": "cdate", "pages": 1}
    client = FakeDeals(250)
    ids, cursor = resume(client, "deals", saved)
    assert ids == list(range(101, 251))
    assert all(("orders[cdate]", "ASC") in p for p in client.params)
    assert cursor == {"v": 2, "offset": 250, "last_id": "250", "order": "cdate", "pages": 3,
                      "last_key": [OffsetCursor.load(cursor, natural_order="cdate").last_key[0], 250]}


def test_a_deal_stub_as_the_last_record_written_keeps_a_null_key():
    saved = {"offset": 100, "last_id": "100", "last_key": None, "order": "cdate", "pages": 1}
    cursor = OffsetCursor.load(saved, natural_order="cdate")
    assert (cursor.last_key, cursor.start, cursor.order) == (None, 99, "cdate")
    assert OffsetCursor.load(cursor.dump(), natural_order="cdate") == cursor


def test_a_new_deals_walk_pages_in_creation_order_and_a_new_accounts_walk_in_id_order():
    assert OffsetCursor.load({}, natural_order="cdate").order == "cdate"
    assert OffsetCursor.load({"offset": 0, "pages": 1}, natural_order="cdate").order == "cdate"   # an empty page
    assert OffsetCursor.load({}, natural_order="id").order == "id"


# ---- today's shape, and a newer one --------------------------------------------------------------------------

def test_todays_cursors_read_back_as_themselves():
    sliced = SliceCursor((IdRange("10", 501), IdRange("500", None)), 7)
    assert SliceCursor.load(sliced.dump()) == sliced
    single = SliceCursor((IdRange("10", None),), 3)
    assert single.dump() == {"v": 2, "last_id": "10", "pages": 3} and SliceCursor.load(single.dump()) == single
    offset = OffsetCursor(300, "300", (1.5, 300), "cdate", 4)
    assert OffsetCursor.load(offset.dump(), natural_order="id") == offset


def test_a_cursor_from_a_newer_release_is_refused_and_fails_the_job():
    with pytest.raises(CursorUnreadable):
        SliceCursor.load({"v": 3, "last_id": "5"})
    with pytest.raises(CursorUnreadable) as refused:
        OffsetCursor.load({"v": 3, "offset": 5}, natural_order="id")
    assert outcome_of(refused.value) is Outcome.FAIL
