"""Custom-field names, filters and orders (acexport.ac.custom_fields) and how plan() runs them."""

import dataclasses

import pytest
from acexport import query
from acexport.ac import custom_fields as cf
from acexport.ac.resources import ACCOUNTS, CONTACTS, DEALS, Filter, Order, plan, sort_locally
from acexport.errors import BadRequestError

FIELDS = (cf.CustomField("1", "Favorite Color", "text", "FAVORITE_COLOR"),
          cf.CustomField("2", "Interests", "checkbox", "INTERESTS"),
          cf.CustomField("3", "Birthday", "date", "BIRTHDAY"),
          cf.CustomField("4", "Region", "dropdown", "REGION"),
          cf.CustomField("5", "region", "text", "REGION_2"),
          cf.CustomField("6", "Seats", "number"),
          cf.CustomField("7", "Café Größe", "text", "CAFE"))


def test_names_compare_case_insensitively_with_spaces_and_tags():
    for name in ("favorite color", "FAVORITE  COLOR ", "favorite_color", "%FAVORITE_COLOR%", "customField:1",
                 "CUSTOMFIELD:1"):
        assert cf.resolve(FIELDS, CONTACTS, "filter", name).id == "1", name
    assert cf.resolve(FIELDS, CONTACTS, "filter", "CAFÉ GRÖSSE").id == "7"     # casefold: ß = ss


@pytest.mark.parametrize(("name", "needles"), [
    ("Favourite Colour", ["Unsupported filter 'Favourite Colour' for contacts", "'Favorite Color' (customField:1)",
                          "Supported: created_after"]),
    ("Region", ["ambiguous", "customField:4", "customField:5", "filters[customField:<id>]"]),
    ("customField:99", ["no custom field with id 99"]),
])
def test_unknown_and_ambiguous_names_are_400s_that_name_the_candidates(name, needles):
    with pytest.raises(BadRequestError) as err:
        cf.resolve(FIELDS, CONTACTS, "filter", name)
    assert err.value.status == 400
    for needle in needles:
        assert needle in err.value.message


def test_no_custom_fields_says_so():
    with pytest.raises(BadRequestError) as err:
        cf.resolve((), ACCOUNTS, "order", "Colour")
    assert "accounts has no custom fields" in err.value.message


def test_filter_matches_exported_value_exactly_and_multi_select_options():
    text, multi = cf.matcher(FIELDS[0]), cf.matcher(FIELDS[1])
    assert text({cf.VALUES: {"1": "Red "}}, "red")
    assert not text({cf.VALUES: {"1": "Dark red"}}, "red")
    assert not text({cf.VALUES: {}}, "red") and not text({cf.VALUES: None}, "red")
    assert multi({cf.VALUES: {"2": ["Golf", "Tennis"]}}, "golf")
    assert not multi({cf.VALUES: {"2": ["Golfing"]}}, "golf")


def test_orders_by_type_and_without_a_value_last_both_ways():
    def ordered(field, values, direction):
        records = [{"id": str(i), cf.VALUES: {field.id: v} if v is not None else {}} for i, v in enumerate(values)]
        sort_locally(records, ((Order(key=cf.sort_key(field)), direction),))
        return [values[int(r["id"])] for r in records]
    seats = FIELDS[5]
    assert ordered(seats, ["10", None, "9", "1,200", "n/a", "2.5"], "ASC") == ["2.5", "9", "10", "1,200", None, "n/a"]
    assert ordered(seats, ["10", None, "9", "n/a"], "DESC") == ["10", "9", None, "n/a"]
    birthday = FIELDS[2]
    dates = ["2020-01-02", "2019-12-31T23:00:00-05:00", "", "2020-01-01"]
    assert ordered(birthday, dates, "ASC") == ["2020-01-01", "2019-12-31T23:00:00-05:00", "2020-01-02", ""]
    assert ordered(birthday, dates, "DESC") == ["2020-01-02", "2019-12-31T23:00:00-05:00", "2020-01-01", ""]
    color = FIELDS[0]
    assert ordered(color, ["b", "A", None, "c"], "DESC") == ["c", "b", "A", None]


def test_contact_single_value_fields_are_asked_of_ac_multi_select_are_not():
    assert cf.at_ac(FIELDS[0])("Red ") == [("1", "Red")]
    assert cf.at_ac(FIELDS[3])("EMEA") == [("4", "EMEA"), ("4", "||EMEA||")]
    assert cf.at_ac(FIELDS[1]) is None


def _extended(resource, filters=(), orders=()):
    extra_f = {n: Filter(lambda v: [], cf.matcher(f), field_value=cf.at_ac(f) if resource is CONTACTS else None)
               for n, f in filters}
    extra_o = {n: Order(key=cf.sort_key(f)) for n, f in orders}
    return dataclasses.replace(resource, filters={**resource.filters, **extra_f},
                               orders={**resource.orders, **extra_o})


def test_plan_with_a_contact_custom_filter_orders_here_and_looks_up():
    contacts = _extended(CONTACTS, [("Favorite Color", FIELDS[0])])
    steps = plan(contacts, [("Favorite Color", "Red"), ("status", "1")], [("email", "DESC")])
    assert steps.lookups == ((("1", "Red"),),)
    assert steps.scans and len(steps.local_filters) == 1
    assert [o for o, _ in steps.local_orders] == [CONTACTS.orders["email"]]     # by ids: ordered here
    assert ("status", "1") in steps.params and not any(k.startswith("orders[") for k, _ in steps.params)


def test_plan_refuses_an_ac_only_order_with_a_custom_one():
    deals = _extended(DEALS, orders=[("Seats", FIELDS[5])])
    with pytest.raises(BadRequestError, match=r"orders\[contact_name\]"):
        plan(deals, [], [("contact_name", "ASC"), ("Seats", "DESC")])
    steps = plan(deals, [], [("Seats", "DESC"), ("value", "ASC")])
    assert len(steps.local_orders) == 2 and steps.params[-1] == ("orders[cdate]", "ASC")


def test_query_keeps_custom_names_with_spaces_and_refuses_nested_or_control_characters():
    def parse(raw):
        return query.parse(raw, filters=CONTACTS.filters.keys(), orders=CONTACTS.orders.keys(),
                           resource="contacts", custom=True)
    q = parse("filters%5BFavorite%20Color%5D=Red&orders[Size (cm)]=DESC&filters[a/b: c?]=1")
    assert q.filters == (("Favorite Color", "Red"), ("a/b: c?", "1"))
    assert q.orders == (("Size (cm)", "DESC"),)
    for raw in ("filters[a][b]=x", "filters[%0A]=x", "filters[ ]=x", f"filters[{'x' * 256}]=1"):
        with pytest.raises(BadRequestError, match="Malformed"):
            parse(raw)
