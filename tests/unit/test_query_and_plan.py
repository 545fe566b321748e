"""Query parsing and how each resource's filters/orders become AC parameters or local steps."""

import pytest
from acexport import query
from acexport.ac.resources import ACCOUNTS, CONTACTS, DEALS, plan, sort_locally
from acexport.errors import BadRequestError
from acexport.exports import pagination, parse_total


def parse(raw, resource=CONTACTS):
    return query.parse(raw, filters=resource.filters.keys(), orders=resource.orders.keys(), resource=resource.name)


def test_defaults_and_order_kept():
    q = parse("orders[email]=asc&filters[firstName]=John&orders[id]=DESC&_=123")
    assert (q.page, q.limit) == (1, 20)
    assert q.filters == (("firstName", "John"),)
    assert q.orders == (("email", "ASC"), ("id", "DESC"))


@pytest.mark.parametrize(("raw", "needle"), [
    ("page=0", "page must be an integer from 1"),
    ("page=-1", "page must be"),
    ("page=abc", "page must be"),
    ("limit=0", "limit must be an integer from 1 to 250"),
    ("limit=251", "limit must be"),
    ("limit=1000", "limit must be"),
    ("limit=abc", "limit must be"),
    ("limit=1.5", "limit must be"),
    ("page=1&page=2", "more than once"),
    ("orders[email]=SIDEWAYS", "must be ASC or DESC"),
    ("orders[udate]=ASC", "Unsupported order 'udate' for contacts. Supported: cdate, email"),
    ("filters[favouriteColour]=red", "Unsupported filter 'favouriteColour' for contacts"),
    ("filters[email]=", "needs a value"),
    ("filters=x", "Malformed"),
    ("filters[]=x", "Malformed"),
    ("filters[a][b]=x", "Malformed"),
])
def test_bad_queries_name_what_is_allowed(raw, needle):
    with pytest.raises(BadRequestError) as err:
        parse(raw)
    assert needle in err.value.message
    assert err.value.status == 400


def test_contacts_first_name_narrows_at_ac_then_checks_here():
    q = parse("filters[firstName]=John&orders[email]=ASC")
    steps = plan(CONTACTS, q.filters, q.orders)
    assert ("search", "John") in steps.params
    assert ("orders[email]", "ASC") in steps.params
    assert ("include", "fieldValues,contactTags,contactLists") in steps.params   # one call: values, tags, lists
    assert steps.scans and not steps.local_orders
    spec, value = steps.local_filters[0]
    assert spec.matches({"firstName": "john"}, value)
    assert not spec.matches({"firstName": "Johnny"}, value)


def test_exact_ac_parameter_wins_over_narrowing_one():
    q = parse("filters[firstName]=John&filters[search]=acme")
    steps = plan(CONTACTS, q.filters, q.orders)
    assert [p for p in steps.params if p[0] == "search"] == [("search", "acme")]
    assert len(steps.local_filters) == 1


def test_contacts_orders_translate_to_ac_names():
    q = parse("orders[lastName]=DESC&orders[firstName]=ASC")
    steps = plan(CONTACTS, q.filters, q.orders)
    assert steps.params[-2:] == [("orders[last_name]", "DESC"), ("orders[first_name]", "ASC")]
    assert not steps.scans


def test_deal_filters_are_ac_filters_and_values_checked():
    q = parse("filters[pipeline]=2&filters[status]=1&orders[value]=DESC", DEALS)
    steps = plan(DEALS, q.filters, q.orders)
    assert steps.params == [("include", "dealCustomFieldData"), ("filters[group]", "2"), ("filters[status]", "1"),
                            ("orders[value]", "DESC")]
    # no order given: AC's documented orders[cdate] keeps offsets stable (AC documents no id order for deals)
    assert plan(DEALS, parse("filters[status]=1", DEALS).filters, ()).params[-1] == ("orders[cdate]", "ASC")
    q = parse("filters[search]=acme&filters[search_field]=ORG&filters[minimum_value]=1500", DEALS)
    assert ("filters[search_field]", "org") in plan(DEALS, q.filters, q.orders).params
    for raw in ("filters[status]=7", "filters[stage]=x", "filters[created_after]=yesterday",
                "filters[search_field]=notes", "filters[minimum_value]=1500.50", "filters[maximum_value]=1e3"):
        q = parse(raw, DEALS)
        with pytest.raises(BadRequestError):
            plan(DEALS, q.filters, q.orders)


def test_accounts_name_and_orders_are_applied_here():
    q = parse("filters[name]=Acme Corporation&orders[name]=DESC", ACCOUNTS)
    steps = plan(ACCOUNTS, q.filters, q.orders)
    assert steps.params == [("count_deals", "true"), ("search", "Acme Corporation")]   # real counts
    assert steps.local_orders and steps.scans
    records = [{"name": "b"}, {"name": None}, {"name": "C"}, {"name": "a"}]
    sort_locally(records, steps.local_orders)
    assert [r["name"] for r in records] == ["C", "b", "a", None]     # without a value: last, DESC too


def test_several_local_orders_first_is_primary():
    q = parse("orders[updatedTimestamp]=DESC&orders[id]=ASC", ACCOUNTS)
    steps = plan(ACCOUNTS, q.filters, q.orders)
    records = [{"id": "3", "updatedTimestamp": "2024-01-01T00:00:00-05:00"},
               {"id": "10", "updatedTimestamp": "2024-01-01T05:00:00+00:00"},
               {"id": "2", "updatedTimestamp": "2024-01-01T04:59:00Z"}]
    sort_locally(records, steps.local_orders)
    # 3 and 10 are the same instant (05:00 UTC): ordered by id ascending, numerically.
    assert [r["id"] for r in records] == ["3", "10", "2"]


def test_pagination_object_and_total_types():
    assert pagination(1, 50, 150) == {"page": "1", "limit": "50", "total": "150", "next_page": 2, "prev_page": None}
    assert pagination(3, 50, 150)["next_page"] is None
    assert pagination(2, 50, 150)["prev_page"] == 1
    assert pagination(1, 20, 0)["next_page"] is None
    assert parse_total({"meta": {"total": "6"}}) == 6
    assert parse_total({"meta": {"total": 3}}) == 3
    assert parse_total({"meta": {}}) is None
    assert parse_total({}) is None
