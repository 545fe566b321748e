"""The offset walk of deals in AC's documented orders[cdate] order: edits during the walk neither skip nor
repeat a deal, a cursor of an older release keeps its id order, and an order the walk cannot place is a
clear failure (OrderLost), never a silent skip or repeat; with pages requested ahead (the real-latency round) the same,
and a steady walk asks AC for nothing it does not use."""

import threading
import time

import pytest
from acexport.ac.client import UpstreamInvalidError
from acexport.jobs import spec as job_spec
from acexport.jobs.walk import OrderLost, OutOfTime, Walk

from tests.fakes import walk_ahead, walk_ids


class FakeDeals:
    """AC's /deals with limit/offset over a list kept in creation order, which a test may edit between calls."""

    host, key_fingerprint = "fake.api-us1.com", "k"

    def __init__(self, count: int, stubs: bool = False):
        self.deals = [{"id": str(n), "cdate": f"2024-01-{1 + n // 100:02d}T00:{(n // 60) % 60:02d}:{n % 60:02d}-05:00",
                       "group": "1", "stage": "1"} for n in range(1, count + 1)]
        if stubs:
            for deal in self.deals[::9]:
                for key in ("cdate", "group", "stage"):
                    deal.pop(key)
                deal["isDisabled"] = 1
        self.calls, self.params = 0, []
        self.before_call = lambda n: None
        self.lock = threading.Lock()      # pages requested ahead come from several threads
        self.delay, self.answering, self.most_at_once = 0.0, 0, 0
        self.first, self.stale = list(self.deals), set()     # offsets AC answers once from the data as it was

    def get(self, path, params):
        if path != "/deals":          # reference data: none here
            return {}
        if self.delay:
            with self.lock:
                self.answering += 1
                self.most_at_once = max(self.most_at_once, self.answering)
            time.sleep(self.delay)
            with self.lock:
                self.answering -= 1
        with self.lock:
            self.before_call(self.calls)
            self.calls += 1
            self.params.append(params)
            query = dict(params)
            offset, limit = int(query["offset"]), int(query["limit"])
            deals = self.first if offset in self.stale else self.deals
            self.stale.discard(offset)          # once: a second call at that offset reads the data as it is
            return {"deals": [dict(d) for d in deals[offset:offset + limit]], "meta": {"total": len(deals)}}


def walk_all(client, cursor=None) -> list[str]:
    return walk_ids(client, "deals", cursor)


def test_deals_are_walked_in_creation_order_once():
    client = FakeDeals(250)
    assert walk_all(client) == [str(n) for n in range(1, 251)]
    assert all(("orders[cdate]", "ASC") in p and not any(k == "orders[id]" for k, _ in p) for p in client.params)


def test_the_last_deal_written_deleted_with_others_before_it_neither_skips_nor_repeats():
    client = FakeDeals(350)

    def delete(call):
        if call == 2:       # after two pages (1..199 written): 150..199, 199 the last one written, are deleted
            del client.deals[149:199]
    client.before_call = delete
    assert walk_all(client) == [str(n) for n in range(1, 351)]


@pytest.mark.parametrize("in_flight", [1, 5])    # one page at a time, and pages requested ahead
def test_new_deals_come_last_and_are_written_once(in_flight):
    client = FakeDeals(300)

    def create(call):
        if call == 1:
            client.deals += [{"id": str(900 + n), "cdate": "2025-06-01T00:00:00-05:00", "group": "1"}
                             for n in range(3)]
    client.before_call = create
    seen, walk = walk_ahead(client, "deals", in_flight=in_flight)
    assert seen == [str(n) for n in range(1, 301)] + ["900", "901", "902"]
    assert walk.wasted == 0 and client.calls == 4


def test_stubs_are_walked_once_and_an_unplaceable_deletion_fails_clearly():
    client = FakeDeals(300, stubs=True)
    assert walk_all(client) == [str(n) for n in range(1, 301)]
    client = FakeDeals(300, stubs=True)

    def delete(call):
        if call == 2:
            del client.deals[190:200]        # the last one written goes, and stubs (no cdate) hide the order
    client.before_call = delete
    with pytest.raises(OrderLost, match="start the export again"):
        walk_all(client)


def test_a_cursor_of_an_older_release_continues_in_id_order():
    client = FakeDeals(250)
    seen = walk_all(client, {"offset": 100, "last_id": "100"})
    assert seen == [str(n) for n in range(101, 251)]
    assert all(("orders[id]", "ASC") in p and not any(k == "orders[cdate]" for k, _ in p) for p in client.params)


# ---- pages requested ahead (several in flight) -------------------------------------------------------------

def offsets(client) -> list[int]:
    return [int(dict(p)["offset"]) for p in client.params]


@pytest.mark.parametrize("count", [1, 99, 100, 101, 250, 1000])
def test_a_steady_walk_ahead_reads_each_deal_once_and_wastes_no_request(count):
    client = FakeDeals(count)
    seen, walk = walk_ahead(client, "deals", in_flight=5)
    assert seen == [str(n) for n in range(1, count + 1)]
    pages = max(1, -(-(count - 1) // 99))            # a page of 100, then 99 new records per page
    assert walk.wasted == 0 and client.calls == pages and sorted(offsets(client)) == [0, *range(99, count - 1, 99)]


@pytest.mark.parametrize("in_flight", [1, 4])
def test_pages_ahead_are_in_flight_together(in_flight):
    client = FakeDeals(400)             # pages at 0, then 99, 198, 297 and 396 at once
    client.delay = 0.04
    seen, walk = walk_ahead(client, "deals", in_flight=in_flight)
    assert seen == [str(n) for n in range(1, 401)] and walk.wasted == 0 and client.calls == 5
    expected = {1} if in_flight == 1 else {3, 4}       # never more than in_flight; together (a slow thread: 3)
    assert client.most_at_once in expected


def test_pages_ahead_after_deletions_before_the_cursor_are_dropped_and_nothing_is_skipped_or_repeated():
    client = FakeDeals(600)

    def delete(call):
        if call == 1:       # page 1 (1..100) was read; every page ahead is read after 11..40 went
            del client.deals[10:40]
    client.before_call = delete
    seen, walk = walk_ahead(client, "deals", in_flight=4)
    assert seen == [str(n) for n in range(1, 601)]
    # the first page ahead did not hold deal 100: read again (wasted), then stepped back one page (one more
    # call); the pages predicted after it were dropped (wasted unless cancelled before they started)
    assert 1 <= walk.wasted <= 4 and client.calls == walk.pages + 1 + walk.wasted


def test_a_page_ahead_answered_before_the_page_before_it_is_read_again():
    """AC answered the page ahead at 198 before 150 deals went (the pages before it, after): the last deal
    written (349) lies past that answer's window, where the recovery would take it for gone and step back
    onto deals already written. The walk reads that start again instead."""
    client = FakeDeals(1000)
    client.stale = {198}

    def delete(call):
        if call == 1:       # after page 1 (1..100): deals 101..250 go, before any page ahead is answered
            del client.deals[100:250]
    client.before_call = delete
    seen, walk = walk_ahead(client, "deals", in_flight=4)
    assert seen == [str(n) for n in [*range(1, 101), *range(251, 1001)]]
    assert walk.wasted >= 1 and offsets(client).count(198) == 2


@pytest.mark.parametrize("run", range(10))      # thread timings vary: the outcome may not
def test_deletions_racing_pages_ahead_neither_skip_nor_repeat_a_deal_that_stays(run):
    client = FakeDeals(700)
    gone = set()

    def delete(call):
        if call in (2, 5):
            for deal in client.deals[150 * call // 2:150 * call // 2 + 40]:
                gone.add(deal["id"])
            del client.deals[150 * call // 2:150 * call // 2 + 40]
    client.before_call = delete
    seen, _ = walk_ahead(client, "deals", in_flight=5)
    assert len(seen) == len(set(seen)) and seen == sorted(seen, key=int)          # once each, in order
    assert set(seen) >= {str(n) for n in range(1, 701)} - gone                   # every deal that stayed


def test_stubs_walked_ahead_once():
    client = FakeDeals(800, stubs=True)
    seen, walk = walk_ahead(client, "deals", in_flight=5)
    assert seen == [str(n) for n in range(1, 801)] and walk.wasted == 0


def test_an_older_cursor_resumes_with_pages_ahead_in_id_order():
    client = FakeDeals(650)
    seen, walk = walk_ahead(client, "deals", {"offset": 100, "last_id": "100"}, in_flight=5)
    assert seen == [str(n) for n in range(101, 651)] and walk.wasted == 0
    assert all(("orders[id]", "ASC") in p and not any(k == "orders[cdate]" for k, _ in p) for p in client.params)
    assert sorted(offsets(client)) == list(range(99, 649, 99))       # from the record before the cursor


def test_a_checkpoint_mid_walk_resumes_where_the_pages_written_end():
    """A step ends (time up): the pages requested ahead are returned, then the walk resumes from the last
    page's cursor in a new step, as the worker does across hand-ons."""
    client = FakeDeals(1000)
    spec = job_spec.parse("deals", {})
    got = []
    with Walk(client, spec, {}, deadline=time.monotonic() + 30, patience=0, in_flight=4) as walk:
        for _ in range(3):
            got += walk.next_page().records
        while walk.pending:
            page = walk.next_page(prefetch=False)
            got += page.records
        with pytest.raises(OutOfTime):
            walk.next_page(prefetch=False)
    assert walk.wasted == 0 and client.calls == page.cursor["pages"] > 3      # every page requested was used
    seen, again = walk_ahead(client, "deals", page.cursor, in_flight=4)
    assert [r["id"] for r in got] + seen == [str(n) for n in range(1, 1001)] and again.wasted == 0


def test_the_page_cap_is_checked_before_any_call_ahead():
    client = FakeDeals(1000)
    spec = job_spec.parse("deals", {})
    with Walk(client, spec, {}, deadline=time.monotonic() + 30, patience=0, in_flight=5, max_pages=3) as walk:
        for _ in range(3):
            walk.next_page()
        with pytest.raises(UpstreamInvalidError, match="EXPORT_MAX_RECORDS"):
            walk.next_page()
    assert client.calls == 3


@pytest.mark.parametrize("resource", ["deals", "contacts"])
def test_a_page_not_arrived_in_time_is_none_and_asked_again(resource):
    """The walk never calls back into the worker: next_page(timeout=...) says the page has not arrived (None),
    the worker does its own work (renews its lease), and the same page comes when asked again."""
    from tests.unit.test_walk_slices import FakeContacts

    client = FakeDeals(150) if resource == "deals" else FakeContacts(range(1, 151))
    client.delay = 0.1
    with Walk(client, job_spec.parse(resource, {}), {}, deadline=time.monotonic() + 30, patience=0) as walk:
        assert walk.next_page(timeout=0.01) is None and walk.pending
        first = walk.next_page()
        second = walk.next_page()
    assert [r["id"] for r in first.records + second.records] == [str(n) for n in range(1, 151)] and second.last


def test_the_fake_is_an_ac_reader():
    """It stands where the walk takes an acexport.ports.ACReader (the AC client in production)."""
    from acexport.ports import ACReader

    assert isinstance(FakeDeals(1), ACReader)
