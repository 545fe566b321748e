"""The offset walk of deals in AC's documented orders[cdate] order: edits during the walk neither skip nor
repeat a deal, a cursor of an older release keeps its id order, and an order the walk cannot place is a
clear failure (OrderLost), never a silent skip or repeat."""


import pytest
from acexport.jobs.walk import OrderLost

from tests.fakes import walk_ids


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

    def get(self, path, params):
        if path != "/deals":          # reference data: none here
            return {}
        self.before_call(self.calls)
        self.calls += 1
        self.params.append(params)
        query = dict(params)
        offset, limit = int(query["offset"]), int(query["limit"])
        return {"deals": [dict(d) for d in self.deals[offset:offset + limit]], "meta": {"total": len(self.deals)}}


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


def test_new_deals_come_last_and_are_written_once():
    client = FakeDeals(300)

    def create(call):
        if call == 1:
            client.deals += [{"id": str(900 + n), "cdate": "2025-06-01T00:00:00-05:00", "group": "1"}
                             for n in range(3)]
    client.before_call = create
    seen = walk_all(client)
    assert seen == [str(n) for n in range(1, 301)] + ["900", "901", "902"]


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
