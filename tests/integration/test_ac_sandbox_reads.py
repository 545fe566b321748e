"""Single-record reads, AC's tag, list and contact filters, and custom-field options, as AC's reference and
ActiveCampaign's own MCP server (`ac-mcp-server` 0.12.0) send and read them."""

import pytest
import requests

from devstack.ac_sandbox import SINGLE_READS

KEY = {"Api-Token": "sandbox-key"}


def call(sb, path, params=None, method="GET"):
    return requests.request(method, f"{sb.base_url}/api/3{path}", params=params, headers=KEY, timeout=5)


def get(sb, path, params=None):
    reply = call(sb, path, params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def names(items, key):
    return [item[key] for item in items]


# ---------------------------------------------------------------- single records

@pytest.mark.parametrize("collection", sorted(SINGLE_READS))
def test_every_collection_answers_one_record_and_a_json_404(sb, collection):
    data, singular, entity = SINGLE_READS[collection]
    record = getattr(sb, data)[-1]
    body = get(sb, f"{collection}/{record['id']}")
    assert body[singular] == record
    missing = call(sb, f"{collection}/999999")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/json"
    assert missing.json() == {"message": f"No Result found for {entity} with id 999999"}


def test_one_contact_comes_with_what_ac_sends_beside_it(sb):
    cid = next(v["contact"] for v in sb.field_values)
    body = get(sb, f"/contacts/{cid}")
    assert body["contact"]["id"] == cid
    assert body["fieldValues"] == [v for v in sb.field_values if v["contact"] == cid]
    assert body["contactLists"] == [m for m in sb.contact_lists if m["contact"] == cid]
    assert body["deals"] == [d for d in sb.deals if d.get("contact") == cid]
    assert body["contactAutomations"] == [] and body["geoIps"] == []


def test_one_field_comes_with_its_options_and_relations(sb):
    field = next(f for f in sb.fields if f["type"] == "dropdown")
    body = get(sb, f"/fields/{field['id']}")
    assert [o["id"] for o in body["fieldOptions"]] == field["options"] and body["fieldOptions"]
    assert [r["id"] for r in body["fieldRels"]] == field["relations"] == [body["fieldRels"][0]["id"]]


def test_single_reads_keep_permissions_methods_and_the_html_404(sb):
    sb.deny("/deals")
    refused = call(sb, "/deals/3")
    assert refused.status_code == 403 and "view deals" in refused.json()["errors"][0]["detail"]
    assert call(sb, "/contacts/3").status_code == 200
    assert call(sb, "/contacts/3", method="DELETE").status_code == 405
    assert call(sb, "/contactz/3").status_code == 404


@pytest.mark.parametrize("path", ["/campaigns", "/campaigns/1", "/automations", "/emailActivities", "/groups",
                                  "/contactAutomations/4", "/segments"])
def test_features_not_modelled_answer_an_honest_json_404(sb, path):
    reply = call(sb, path)
    assert reply.status_code == 404 and reply.headers["Content-Type"] == "application/json"
    assert "does not model" in reply.json()["message"]


def test_the_api_root_answers_200_as_singers_key_check_needs(sb):
    assert call(sb, "/").status_code == 200
    assert requests.get(f"{sb.base_url}/api/3/", timeout=5).status_code == 403   # still needs a key


# ---------------------------------------------------------------- tags

def test_tag_search_operators(sb):
    every = names(sb.tags, "tag")

    def found(op, value):
        return names(get(sb, "/tags", {f"filters[search][{op}]": value, "limit": 100})["tags"], "tag")

    assert found("eq", "vip") == ["VIP"]
    assert found("neq", "VIP") == [t for t in every if t != "VIP"]
    assert found("contains", "er") == [t for t in every if "er" in t.lower()]
    assert found("starts_with", "c") == [t for t in every if t.lower().startswith("c")]
    assert found("lt", "d") == [t for t in every if t.lower() < "d"]
    assert found("gte", "p") == [t for t in every if t.lower() >= "p"]
    assert found("lte", "lead") == [t for t in every if t.lower() <= "lead"]
    assert found("gt", "lead") == [t for t in every if t.lower() > "lead"]


def test_tag_orders(sb):
    every = names(sb.tags, "tag")
    assert names(get(sb, "/tags", {"orders[search]": "asc", "limit": 100})["tags"], "tag") == \
        sorted(every, key=str.lower)
    assert names(get(sb, "/tags", {"orders[search]": "desc", "limit": 100})["tags"], "tag") == \
        sorted(every, key=str.lower, reverse=True)
    sb.tags.extend([{**sb.tags[0], "id": "91", "tag": "Web"}, {**sb.tags[0], "id": "92", "tag": "A web fan"}])
    weighted = get(sb, "/tags", {"filters[search][contains]": "web", "orders[search]": "weight"})["tags"]
    assert names(weighted, "tag") == ["Web", "Webinar 2025", "A web fan"]   # exact, starts with, the rest


# ---------------------------------------------------------------- lists

def test_list_filters(sb):
    assert names(get(sb, "/lists", {"filters[name]": "news"})["lists"], "name") == ["Monthly Newsletter"]
    assert names(get(sb, "/lists", {"filters[id]": "3"})["lists"], "id") == ["3"]
    assert get(sb, "/lists", {"filters[channel]": "sms"})["lists"] == []
    assert len(get(sb, "/lists", {"filters[channel]": "all"})["lists"]) == len(sb.lists)
    sb.lists[1]["userid"] = "2"
    assert names(get(sb, "/lists", {"filters[userid]": "2"})["lists"], "id") == ["2"]
    both = get(sb, "/lists", [("filters[userid[]]", "1"), ("filters[userid[]]", "2")])["lists"]
    assert len(both) == len(sb.lists)
    sb.lists[2]["channel"] = "sms"
    assert names(get(sb, "/lists", {"filters[channel]": "sms"})["lists"], "id") == ["3"]
    assert "3" not in names(get(sb, "/lists")["lists"], "id")      # channel defaults to email


def test_list_orders(sb):
    by_name = sorted(sb.lists, key=lambda x: x["name"].lower())
    assert get(sb, "/lists", {"orders[name]": "DESC"})["lists"] == by_name[::-1]
    assert names(get(sb, "/lists", {"orders[id]": "DESC"})["lists"], "id") == ["5", "4", "3", "2", "1"]
    newest = get(sb, "/lists", {"orders[created_timestamp]": "DESC"})["lists"]
    assert names(newest, "id") == names(sorted(sb.lists, key=lambda x: (x["created_timestamp"], -int(x["id"])),
                                               reverse=True), "id")
    active = {}
    for m in sb.contact_lists:
        active[m["list"]] = active.get(m["list"], 0) + (m["status"] == "1")
    most = names(get(sb, "/lists", {"orders[active_subscribers]": "DESC"})["lists"], "id")
    assert [active[i] for i in most] == sorted(active.values(), reverse=True) and most[0] == "1"
    sb.lists.extend([{**sb.lists[0], "id": "8", "name": "Newsroom Alerts"}, {**sb.lists[0], "id": "9", "name": "News"}])
    weighted = get(sb, "/lists", {"filters[name]": "news", "orders[name]": "weight"})["lists"]
    assert names(weighted, "name") == ["News", "Newsroom Alerts", "Monthly Newsletter"]  # exact, starts with, rest


# ---------------------------------------------------------------- contacts

def test_contacts_by_form_and_unmodelled_memberships(sb):
    by_form = {m["contact"] for m in sb.contact_lists if m["form"] == "1"}
    body = get(sb, "/contacts", {"formid": 1, "limit": 100})
    assert by_form and {c["id"] for c in body["contacts"]} == by_form
    assert body["meta"]["page_input"]["formid"] == 1
    customers = {t["contact"] for t in sb.contact_tags if t["tag"] == "1"}
    segment = get(sb, "/contacts", {"segmentid": 1, "limit": 100})
    assert customers and {c["id"] for c in segment["contacts"]} == customers
    assert segment["meta"]["page_input"]["segmentid"] == 1
    for name in ("segmentid", "seriesid", "waitid"):
        none = get(sb, "/contacts", {name: 3})
        assert none["contacts"] == [] and none["meta"]["total"] == "0"
        assert none["meta"]["page_input"][name] == 3
    assert get(sb, "/contacts", {"segmentid": 0})["meta"]["total"] == str(len(sb.contacts))


def test_contacts_order_by_score_with_no_scores_keeps_the_next_order(sb):
    plain = get(sb, "/contacts?orders[email]=ASC&limit=100")["contacts"]
    scored = get(sb, "/contacts?orders[score]=DESC&orders[email]=ASC&limit=100")["contacts"]
    assert scored == plain


# ---------------------------------------------------------------- field options

def test_choice_fields_carry_options_and_every_field_a_relation(sb):
    body = get(sb, "/fields", {"limit": 100})
    options = {o["id"]: o for o in body["fieldOptions"]}
    for field in body["fields"]:
        assert [options[i]["field"] for i in field["options"]] == [field["id"]] * len(field["options"])
        assert len(field["relations"]) == 1
        if field["type"] in ("dropdown", "checkbox", "listbox", "radio"):
            assert field["options"], field["title"]
        else:
            assert field["options"] == [], field["title"]
    interests = next(f for f in body["fields"] if f["perstag"] == "INTERESTS")
    values = [options[i]["value"] for i in interests["options"]]
    assert values == ["Email", "Events", "Product News", "Offers"]
    assert [options[i]["orderid"] for i in interests["options"]] == ["1", "2", "3", "4"]
    assert {r["relid"] for r in body["fieldRels"]} == {"0"}
    # a page of fields carries the options and relations of that page only
    one = get(sb, "/fields", {"limit": 1})
    assert {o["field"] for o in one["fieldOptions"]} <= {one["fields"][0]["id"]}
    assert len(one["fieldRels"]) == 1


def test_a_records_links_answer_its_related_items_or_say_they_are_not_modelled(sb):
    contact = next(c for c in sb.contacts if any(t["contact"] == c["id"] for t in sb.contact_tags))
    tags = get(sb, f"/contacts/{contact['id']}/contactTags")
    assert tags == {"contactTags": [t for t in sb.contact_tags if t["contact"] == contact["id"]]}
    assert get(sb, f"/contacts/{contact['id']}/fieldValues")["fieldValues"] == \
        [v for v in sb.field_values if v["contact"] == contact["id"]]
    deal = next(d for d in sb.deals if "group" in d and any(v["dealId"] == int(d["id"])
                                                             for v in sb.deal_custom_field_data))
    values = get(sb, f"/deals/{deal['id']}/dealCustomFieldData")["dealCustomFieldData"]
    assert values and {v["dealId"] for v in values} == {int(deal["id"])}
    assert len(get(sb, "/dealGroups/2/stages")["dealStages"]) == 3
    assert get(sb, "/fields/5/options")["fieldOptions"] and get(sb, "/fields/3/options")["fieldOptions"] == []
    # every link a contact carries answers JSON: its items, or an honest "not modelled"
    for link in contact["links"].values():
        reply = requests.get(link.replace("https://sandbox.api-us1.com", sb.base_url), headers=KEY, timeout=5)
        assert reply.headers["Content-Type"] == "application/json", link
        assert reply.status_code == 200 or "does not model" in reply.json()["message"], link
    missing = call(sb, "/contacts/999999/contactTags")
    assert missing.status_code == 404 and missing.json()["message"].startswith("No Result found for Subscriber")
