"""The sandbox answers the queries a custom-field filter is built on, as AC documents them: `/fieldValues`
by field and value, `/contacts` by `ids[]`, lists with their timestamps, and an AC that ignores
`include=dealCustomFieldData` (with `/dealCustomFieldData` to fall back on)."""

import requests

from devstack.ac_sandbox import ACSandbox

KEY = {"Api-Token": "sandbox-key"}


def get(sb, path, params=None):
    reply = requests.get(f"{sb.base_url}/api/3{path}", params=params, headers=KEY, timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_field_values_filter_by_field_and_value_case_insensitively(sb):
    industry = next(f for f in sb.fields if f["perstag"] == "INDUSTRY")
    wanted = [v for v in sb.field_values if v["field"] == industry["id"] and v["value"] == "Retail"]
    body = get(sb, "/fieldValues", {"filters[fieldid]": industry["id"], "filters[val]": "retail", "limit": 100})
    assert wanted and body["fieldValues"] == wanted and body["meta"]["total"] == str(len(wanted))
    # the value alone matches it in every field; another field's "Retail" would count too
    everywhere = get(sb, "/fieldValues", {"filters[val]": "Retail", "limit": 100})
    assert {v["value"] for v in everywhere["fieldValues"]} == {"Retail"}
    assert get(sb, "/fieldValues", {"filters[val]": "no such value"})["fieldValues"] == []


def test_contacts_by_repeated_ids(sb):
    body = get(sb, "/contacts?ids[]=7&ids[]=3&ids[]=99999&ids[]=12")
    assert [c["id"] for c in body["contacts"]] == ["3", "7", "12"] and body["meta"]["total"] == "3"
    # the documented form combines with the other filters and with paging
    listed = {m["contact"] for m in sb.contact_lists if m["list"] == "1"}
    some = sorted(listed, key=int)[:3] + [c["id"] for c in sb.contacts if c["id"] not in listed][:2]
    both = get(sb, "/contacts", [("ids[]", i) for i in some] + [("listid", "1")])
    assert {c["id"] for c in both["contacts"]} == set(some) & listed
    paged = get(sb, "/contacts", [("ids[]", str(i)) for i in range(1, 31)] + [("limit", "10"), ("offset", "20")])
    assert [c["id"] for c in paged["contacts"]] == [str(i) for i in range(21, 31)] and paged["meta"]["total"] == "30"


def test_lists_carry_created_and_updated_timestamps(sb):
    lists = get(sb, "/lists")["lists"]
    assert all(x["created_timestamp"] and x["updated_timestamp"] >= x["created_timestamp"] for x in lists)
    assert len({x["updated_timestamp"] for x in lists}) > 1     # some were edited since: an incremental read sees it
    assert all("created_by" in x and "updated_by" in x for x in lists)


def test_deals_can_ignore_include_deal_custom_field_data(sb):
    asked = {"limit": 20, "include": "dealCustomFieldData"}
    honoured = get(sb, "/deals", asked)
    assert honoured["dealCustomFieldData"] and "dealCustomFieldData" in honoured["deals"][0]
    sb.ignore_include("/deals", "dealCustomFieldData")
    ignored = get(sb, "/deals", asked)
    assert "dealCustomFieldData" not in ignored
    assert all(not isinstance(d.get("dealCustomFieldData"), list) for d in ignored["deals"])
    assert [d["id"] for d in ignored["deals"]] == [d["id"] for d in honoured["deals"]]
    # contacts' includes are untouched by the deal switch; reset() lifts it
    assert "fieldValues" in get(sb, "/contacts", {"include": "fieldValues"})
    sb.reset()
    assert "dealCustomFieldData" in get(sb, "/deals", asked)


def test_ignored_include_from_the_constructor_survives_reset():
    with ACSandbox(rate_limit=None, ignored_includes=(("/api/3/deals", "dealCustomFieldData"),)) as sandbox:
        sandbox.reset()
        assert "dealCustomFieldData" not in get(sandbox, "/deals", {"include": "dealCustomFieldData"})


def test_deal_custom_field_data_pages_up_to_100_by_deal(sb):
    total = len(sb.deal_custom_field_data)
    assert total > 100
    first = get(sb, "/dealCustomFieldData", {"limit": 100})
    assert len(first["dealCustomFieldData"]) == 100 and first["meta"]["total"] == str(total)
    assert len(get(sb, "/dealCustomFieldData", {"limit": 500})["dealCustomFieldData"]) == 100
    assert len(get(sb, "/dealCustomFieldData")["dealCustomFieldData"]) == 20
    rest = get(sb, "/dealCustomFieldData", {"limit": 100, "offset": 100})["dealCustomFieldData"]
    seen = [v["id"] for v in first["dealCustomFieldData"] + rest]
    assert seen == [v["id"] for v in sb.deal_custom_field_data][:len(seen)]
    deal = sb.deal_custom_field_data[0]["dealId"]
    one = get(sb, "/dealCustomFieldData", {"filters[dealId]": deal})["dealCustomFieldData"]
    assert one and all(v["dealId"] == deal for v in one)
    item = one[0]
    for key in ("id", "dealCustomFieldMetumId", "dealId", "customFieldId", "createdTimestamp", "updatedTimestamp",
                "fieldValue"):
        assert key in item
