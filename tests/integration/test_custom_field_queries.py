"""filters[<custom field>] and orders[<custom field>] on the three page exports, against the AC stand-in.
Expected records are computed from the stand-in's own data (its fields, values and records), never hard-coded."""

from __future__ import annotations

import datetime as dt
import math
from urllib.parse import quote

import pytest


def ids(reply):
    return [r["id"] for r in reply.json()["data"]]


def calls(sandbox, path):
    return [dict(r.query) | {"_ids": [v for k, v in r.query if k == "ids[]"]}
            for r in sandbox.requests if r.path == path]


def options(value):
    if value.startswith("||") and value.endswith("||"):
        return [part for part in value[2:-2].split("||") if part]
    return [value]


def contact_values(sandbox, title):
    field = next(f for f in sandbox.fields if f["title"] == title)
    return {v["contact"]: v["value"] for v in sandbox.field_values if v["field"] == field["id"]}, field


def by_id(records):
    return sorted(records, key=lambda r: int(r["id"]))


@pytest.fixture
def connected(api):
    api.connect()
    api.lift_rate_limit()     # cold pages are several AC calls: no 429 retry in the counts
    api.sandbox.requests.clear()
    return api


# ---- contacts: AC narrows by /fieldValues, then reads the contacts by id ---------------------------------

def test_contact_filter_by_title_with_a_space_is_asked_of_ac_then_read_by_id(connected):
    sandbox = connected.sandbox
    values, field = contact_values(sandbox, "Lead Source")
    wanted = {cid for cid, value in values.items() if value.casefold() == "referral"}
    assert wanted
    reply = connected.export("contacts", "filters[Lead Source]=referral&limit=100")   # any case
    assert reply.status_code == 200, reply.text
    assert ids(reply) == sorted(wanted, key=int)
    assert reply.json()["pagination"]["total"] == str(len(wanted))
    assert all(r["customFields"]["Lead Source"] == "Referral" for r in reply.json()["data"])
    asked = calls(sandbox, "/fieldValues")
    assert [(q["filters[fieldid]"], q["filters[val]"]) for q in asked] == [(field["id"], "referral")]
    read = calls(sandbox, "/contacts")
    assert len(read) == math.ceil(len(wanted) / 100)           # by id, not a scan of every contact
    assert sorted((i for q in read for i in q["_ids"]), key=int) == sorted(wanted, key=int)


def test_warm_custom_filter_costs_the_lookup_and_the_read(connected):
    connected.export("contacts", "filters[Lead Source]=Webinar")
    connected.sandbox.requests.clear()
    reply = connected.export("contacts", "filters[Lead Source]=Webinar&limit=5&page=2")
    assert reply.status_code == 200
    assert [r.path for r in connected.sandbox.requests] == ["/fieldValues", "/contacts"]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_personalisation_tag_and_id_form_name_the_same_field(connected):
    sandbox = connected.sandbox
    _, field = contact_values(sandbox, "Lead Source")
    expected = ids(connected.export("contacts", "filters[lead source]=Website&limit=100"))
    assert expected
    for name in ("LEAD_SOURCE", "%LEAD_SOURCE%", f"customField:{field['id']}", "  LEAD   source "):
        reply = connected.export("contacts", f"filters[{quote(name)}]=website&limit=100")
        assert reply.status_code == 200, (name, reply.text)
        assert ids(reply) == expected, name


def test_multi_select_matches_when_it_holds_the_option(connected):
    sandbox = connected.sandbox
    values, _ = contact_values(sandbox, "Interests")
    wanted = [cid for cid, value in values.items() if "events" in [o.casefold() for o in options(value)]]
    assert wanted and any(len(options(values[c])) > 1 for c in wanted)
    reply = connected.export("contacts", "filters[Interests]=EVENTS&limit=100")
    assert ids(reply) == sorted(wanted, key=int)
    assert reply.json()["pagination"]["total"] == str(len(wanted))
    assert not calls(sandbox, "/fieldValues")    # `||a||Events||` never equals "Events" at AC: read and check here


def test_dropdown_asks_both_stored_forms(connected):
    sandbox = connected.sandbox
    values, field = contact_values(sandbox, "Industry")
    first = next(cid for cid, value in values.items() if value == "Retail")
    sandbox.field_values[:] = [{**v, "value": "||Retail||"} if v["contact"] == first and v["field"] == field["id"]
                               else v for v in sandbox.field_values]
    wanted = sorted([cid for cid, value in values.items() if value == "Retail"], key=int)
    reply = connected.export("contacts", "filters[Industry]=retail&limit=100")
    assert ids(reply) == wanted
    assert {q["filters[val]"] for q in calls(sandbox, "/fieldValues")} == {"retail", "||retail||"}


def test_custom_filter_combines_with_standard_filters_and_orders(connected):
    sandbox = connected.sandbox
    values, _ = contact_values(sandbox, "Company Size")
    size = "11-50"
    matching = [c for c in sandbox.contacts if values.get(c["id"]) == size]
    expected = sorted(matching, key=lambda c: c["email"].casefold(), reverse=True)
    reply = connected.export("contacts", f"filters[Company Size]={size}&orders[email]=DESC&limit=3&page=2")
    assert ids(reply) == [c["id"] for c in expected[3:6]]
    assert reply.json()["pagination"]["total"] == str(len(matching))
    status = connected.export("contacts", f"filters[Company Size]={size}&filters[status]=1&limit=100")
    assert status.status_code == 200
    assert all(q.get("status") == "1" for q in calls(sandbox, "/contacts")[-1:])
    assert set(ids(status)) <= {c["id"] for c in matching}


def test_two_custom_filters_intersect(connected):
    sandbox = connected.sandbox
    industry, _ = contact_values(sandbox, "Industry")
    source, _ = contact_values(sandbox, "Lead Source")
    wanted = sorted((c for c in industry if industry[c] == "Software" and source.get(c) == "Website"), key=int)
    reply = connected.export("contacts", "filters[Industry]=Software&filters[Lead Source]=Website&limit=100")
    assert ids(reply) == wanted


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_order_by_a_date_field_puts_contacts_without_one_last_both_ways(connected):
    sandbox = connected.sandbox
    values, _ = contact_values(sandbox, "Birthday")
    dated = [c["id"] for c in by_id(sandbox.contacts) if c["id"] in values]
    undated = [c["id"] for c in by_id(sandbox.contacts) if c["id"] not in values]
    assert dated and undated
    for direction in ("ASC", "DESC"):
        reply = connected.export("contacts", f"orders[Birthday]={direction}&limit=250")
        expected = sorted(dated, key=lambda c: dt.date.fromisoformat(values[c]), reverse=direction == "DESC")
        assert ids(reply) == expected + undated, direction


def test_order_by_custom_field_then_standard_one(connected):
    sandbox = connected.sandbox
    values, _ = contact_values(sandbox, "Industry")
    contacts = sorted(sandbox.contacts, key=lambda c: int(c["id"]), reverse=True)
    present = sorted((c for c in contacts if c["id"] in values), key=lambda c: values[c["id"]].casefold())
    missing = [c for c in contacts if c["id"] not in values]
    reply = connected.export("contacts", "orders[industry]=ASC&orders[id]=DESC&limit=250")
    assert ids(reply) == [c["id"] for c in present + missing]


# ---- names: unknown, ambiguous, standard ------------------------------------------------------------

def test_unknown_name_is_a_400_that_names_it_and_the_candidates(connected):
    reply = connected.export("contacts", "filters[Lead Sorce]=x")
    assert reply.status_code == 400
    message = reply.json()["message"]
    assert "'Lead Sorce'" in message and "'Lead Source' (customField:" in message
    reply = connected.export("accounts", "orders[Colour]=ASC")
    assert reply.status_code == 400
    assert "Unsupported order 'Colour' for accounts" in reply.json()["message"]
    assert "Custom fields:" in reply.json()["message"] and reply.json()["supported"]
    assert connected.export("deals", "filters[customField:999]=x").status_code == 400


def test_ambiguous_name_is_a_400_and_the_id_form_resolves_it(connected):
    sandbox = connected.sandbox
    original = next(f for f in sandbox.fields if f["title"] == "Lead Source")
    twin = {**original, "id": str(len(sandbox.fields) + 1), "title": "lead source", "perstag": "LEAD_SOURCE_2"}
    sandbox.fields.append(twin)
    sandbox.field_values.append({**sandbox.field_values[0], "id": "99999", "field": twin["id"], "value": "Twin",
                                 "contact": sandbox.contacts[0]["id"]})
    reply = connected.export("contacts", "filters[Lead Source]=Website")
    assert reply.status_code == 400
    message = reply.json()["message"]
    assert "ambiguous" in message
    assert f"customField:{original['id']}" in message and f"customField:{twin['id']}" in message
    by_twin = connected.export("contacts", f"filters[customField:{twin['id']}]=twin")
    assert ids(by_twin) == [sandbox.contacts[0]["id"]]


def test_a_standard_field_keeps_its_meaning(connected):
    sandbox = connected.sandbox
    sandbox.fields.append({**sandbox.fields[0], "id": str(len(sandbox.fields) + 1), "title": "email", "perstag": "X"})
    target = sandbox.contacts[3]
    reply = connected.export("contacts", f"filters[email]={quote(target['email'])}")
    assert ids(reply) == [target["id"]]
    assert not calls(sandbox, "/fieldValues")


def test_beyond_the_scan_limit_is_a_400_that_says_to_narrow(connected):
    connected.env(LOCAL_SCAN_LIMIT="10", **{"AC_RATE_LIMIT_PER_SECOND": "1000", "AC_RATE_BUDGET": "local"})
    for resource, query in (("contacts", "filters[Lead Source]=Website"), ("contacts", "orders[Birthday]=ASC"),
                            ("deals", "filters[Competitor]=Globex"), ("accounts", "orders[Employees]=ASC")):
        reply = connected.export(resource, query)
        assert reply.status_code == 400, (resource, query)
        assert "narrow it" in reply.json()["message"]


def test_an_ac_order_on_what_the_record_lacks_cannot_join_a_custom_order(connected):
    reply = connected.export("deals", "orders[contact_name]=ASC&orders[Seats]=DESC")
    assert reply.status_code == 400
    assert "orders[contact_name]" in reply.json()["message"]


# ---- deals and accounts: read the AC-narrowed set and filter/order here --------------------------------

def deal_values(sandbox, label):
    field = next(f for f in sandbox.deal_custom_field_meta if f["fieldLabel"] == label)
    return {str(v["dealId"]): v["fieldValue"] for v in sandbox.deal_custom_field_data
            if v["customFieldId"] == int(field["id"])}


def ignore_deal_include(sandbox):
    """The stand-in answering /deals as AC would if it ignored include=dealCustomFieldData (reset() undoes it)."""
    sandbox.ignore_include("/deals", "dealCustomFieldData")


@pytest.mark.parametrize("include", ["honoured", "ignored"])
def test_deal_custom_filter_and_numeric_order(connected, include):
    sandbox = connected.sandbox
    if include == "ignored":
        ignore_deal_include(sandbox)
    length, seats = deal_values(sandbox, "Contract Length"), deal_values(sandbox, "Seats")
    matching = [d for d in sandbox.deals if length.get(d["id"]) == "24 months"]
    cdate = sorted(matching, key=lambda d: d["cdate"])
    expected = sorted((d for d in cdate if d["id"] in seats), key=lambda d: int(seats[d["id"]]), reverse=True)
    expected += [d for d in cdate if d["id"] not in seats]
    reply = connected.export("deals", "filters[contract length]=24 MONTHS&orders[Seats]=DESC&limit=100")
    assert reply.status_code == 200, reply.text
    assert ids(reply) == [d["id"] for d in expected]
    assert reply.json()["pagination"]["total"] == str(len(matching))
    assert all(r["customFields"]["Contract Length"] == "24 months" for r in reply.json()["data"])
    assert bool(calls(sandbox, "/dealCustomFieldData")) == (include == "ignored")


def test_deals_carry_custom_fields_when_ac_ignores_the_include(connected):
    sandbox = connected.sandbox
    ignore_deal_include(sandbox)
    reply = connected.export("deals", "limit=100")
    labels = {f["id"]: f["fieldLabel"] for f in sandbox.deal_custom_field_meta}
    for deal in reply.json()["data"]:
        if "group" not in deal:
            assert deal["customFields"] is None
            continue
        expected = {labels[str(v["customFieldId"])]: v["fieldValue"] for v in sandbox.deal_custom_field_data
                    if str(v["dealId"]) == deal["id"]}
        assert deal["customFields"] == expected
    read = calls(sandbox, "/dealCustomFieldData")
    assert len(read) == math.ceil((len(sandbox.deal_custom_field_data) + 1) / 100)   # whole, 100 a call
    sandbox.requests.clear()
    connected.export("deals", "page=2&limit=10")
    assert not calls(sandbox, "/dealCustomFieldData")        # cached like account values


def test_account_custom_filter_and_order(connected):
    sandbox = connected.sandbox
    field = {f["fieldLabel"]: f["id"] for f in sandbox.account_custom_field_meta}
    data = sandbox.account_custom_field_data
    industry = {str(v["accountId"]): v["fieldValue"] for v in data if v["customFieldId"] == int(field["Industry"])}
    employees = {str(v["accountId"]): int(v["fieldValue"]) for v in data
                 if v["customFieldId"] == int(field["Employees"])}
    matching = [a for a in sandbox.accounts if industry.get(a["id"]) == "Software"]
    expected = sorted((a for a in matching if a["id"] in employees), key=lambda a: employees[a["id"]])
    expected += [a for a in matching if a["id"] not in employees]
    reply = connected.export("accounts", "filters[industry]=software&orders[Employees]=ASC&limit=100")
    assert reply.status_code == 200, reply.text
    assert ids(reply) == [a["id"] for a in expected]
    assert reply.json()["pagination"]["total"] == str(len(matching))


def test_unknown_name_costs_only_the_definitions_and_a_bad_standard_value_nothing(connected):
    sandbox = connected.sandbox
    reply = connected.export("deals", "orders[mdate]=ASC")       # not a deal order, nor a custom field
    assert reply.status_code == 400 and "Supported: cdate" in reply.json()["message"]
    assert [r.path for r in sandbox.requests] == ["/dealCustomFieldMeta"]
    sandbox.requests.clear()
    assert connected.export("deals", "orders[mdate]=ASC").status_code == 400
    assert sandbox.count() == 0                                   # the definitions are cached


def test_deal_custom_fields_are_null_when_the_values_are_too_many_to_read(connected):
    sandbox = connected.sandbox
    ignore_deal_include(sandbox)
    connected.env(LOCAL_SCAN_LIMIT="10", **{"AC_RATE_LIMIT_PER_SECOND": "1000", "AC_RATE_BUDGET": "local"})
    deals = connected.export("deals", "limit=20").json()["data"]
    assert deals and all(d["customFields"] is None for d in deals)


# ---- full-export jobs: the same custom-field filters, applied to each page the walk reads -----------------

@pytest.mark.slow   # jobs: a few seconds
def test_jobs_accept_custom_field_filters(kit):
    from tests.integration.jobs_kit import ids as job_ids

    sandbox = kit.sandbox
    values, _ = contact_values(sandbox, "Interests")
    industry, _ = contact_values(sandbox, "Industry")
    wanted = [c["id"] for c in sandbox.contacts
              if "offers" in [o.casefold() for o in options(values.get(c["id"], "||"))]
              and industry.get(c["id"]) == "Finance"]
    assert wanted
    _, records = kit.run("contacts", {"filters": {"interests": "Offers", "INDUSTRY": "finance"}})
    assert job_ids(records) == wanted
    kit.sandbox.ignore_include("/deals", "dealCustomFieldData")
    seats = deal_values(sandbox, "Competitor")
    _, deals = kit.run("deals", {"filters": {"Competitor": "globex"}})
    assert sorted(job_ids(deals), key=int) == sorted((d for d, v in seats.items() if v == "Globex"), key=int)
    assert all(d["customFields"]["Competitor"] == "Globex" for d in deals)


def test_a_job_with_an_unknown_custom_field_is_refused_at_the_start_naming_it(kit):
    reply = kit.post("accounts", {"filters": {"Colour": "red"}})
    assert reply.status_code == 400, reply.text
    assert "Unsupported filter 'Colour' for accounts" in reply.json()["message"]
    assert "Custom fields: " in reply.json()["message"]
    assert kit.api.call("GET", "/export/jobs").json()["data"] == []        # nothing stored, nothing queued


def test_an_ac_that_ignores_ids_or_val_gives_the_same_answer(connected):
    sandbox = connected.sandbox
    expected = ids(connected.export("contacts", "filters[Lead Source]=Trade Show&limit=100"))
    assert expected
    for path, dropped in (("_contacts", "ids[]"), ("_field_values", "filters[val]")):
        real = getattr(sandbox, path)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sandbox, path, lambda q, ql, real=real, dropped=dropped: real(
                {k: v for k, v in q.items() if k != dropped}, [p for p in ql if p[0] != dropped]))
            sandbox.requests.clear()
            reply = connected.export("contacts", "filters[Lead Source]=Trade Show&limit=100")
        assert ids(reply) == expected, dropped
        assert reply.json()["pagination"]["total"] == str(len(expected))
        if dropped == "ids[]":     # the answer held contacts not asked for: every contact read instead
            assert any("ids[]" not in dict(q) for q in (r.query for r in sandbox.requests if r.path == "/contacts"))
