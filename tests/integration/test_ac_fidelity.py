"""Against what public evidence shows of the real ActiveCampaign (docs/query.md, "AC behaviours relied on"):
permission refusals are not rejected keys, account counts are real, deals page in a documented order,
records carry tags, lists, multi-select lists, owner names and custom fields at one AC call per warm page.
Expected values come from the stand-in's data (jobs_kit.expected_records), never hard-coded."""

import datetime as dt

import pytest

from tests.integration.jobs_kit import expected_records


@pytest.fixture
def connected(api):
    api.lift_rate_limit()          # these tests count AC calls; a cold page now makes up to 5 at once
    api.connect()
    api.sandbox.requests.clear()
    return api


def queries(sandbox, path):
    return [dict(r.query) for r in sandbox.requests if r.path == path]


# ---- 1. a permission 403 is not a rejected key ----------------------------------------------------------

@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_permission_403_names_it_changes_nothing_and_other_resources_work(connected):
    sandbox = connected.sandbox
    sandbox.deny("/deals")                 # the key's user group lacks Deals (AC's documented 403 body)
    reply = connected.export("deals")
    assert reply.status_code == 403, reply.text
    body = reply.json()
    assert "permission" in body["message"] and "view deals" in body["message"] and "reconnect" not in body
    assert sandbox.count("/deals") == 1                              # not retried: AC will not change its mind
    status = connected.call("GET", "/auth").json()["data"]
    assert status["needs_reconnect"] is False                        # nothing stored changed
    assert connected.export("contacts", "limit=5").status_code == 200
    assert connected.export("accounts", "limit=5").status_code == 200


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_403_without_the_permission_body_is_still_a_rejected_key(connected):
    connected.sandbox.inject(403, times=2, path="/deals", body=b'{"message": "Forbidden"}', content_type=None)
    reply = connected.export("deals")
    assert reply.status_code == 403 and reply.json()["reconnect"] is True
    assert connected.call("GET", "/auth").json()["data"]["needs_reconnect"] is True


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_names_the_key_may_not_read_are_null_and_cost_one_call(connected):
    sandbox = connected.sandbox
    sandbox.deny("/users")
    first = connected.export("deals", "limit=10")
    second = connected.export("deals", "limit=10&page=2")
    assert first.status_code == second.status_code == 200
    assert all(d["ownerName"] is None for d in first.json()["data"] + second.json()["data"])
    assert sandbox.count("/users") == 1                              # the refusal is cached like the data


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_job_hitting_a_permission_fails_with_it_without_reconnect(kit):
    kit.sandbox.deny("/deals")
    done = kit.wait(kit.start("deals")["id"])
    assert done["status"] == "failed"
    assert "permission" in done["error"]["message"] and "reconnect" not in done["error"]
    assert kit.api.call("GET", "/auth").json()["data"]["needs_reconnect"] is False
    assert kit.run("accounts")[0]["status"] == "succeeded"


# ---- 2. accounts: real counts, same call -------------------------------------------------------------

def test_account_counts_are_real_in_the_same_call(connected):
    sandbox = connected.sandbox
    reply = connected.export("accounts", "limit=100")
    assert reply.status_code == 200
    assert reply.json()["data"] == expected_records(sandbox, "accounts")
    assert any(a["contactCount"] != "0" for a in reply.json()["data"])
    calls = queries(sandbox, "/accounts")
    assert len(calls) == 1 and calls[0]["count_deals"] == "true"


# ---- 3. deals: a documented order --------------------------------------------------------------------

def test_deal_pages_without_an_order_come_in_creation_order(connected):
    sandbox = connected.sandbox
    first = connected.export("deals", "limit=20")
    second = connected.export("deals", "limit=20&page=2")
    expected = expected_records(sandbox, "deals")
    assert first.json()["data"] + second.json()["data"] == expected[:40]
    assert all(q["orders[cdate]"] == "ASC" and "orders[id]" not in q for q in queries(sandbox, "/deals"))
    ordered = connected.export("deals", "orders[value]=DESC&limit=5")
    assert ordered.status_code == 200 and "orders[cdate]" not in queries(sandbox, "/deals")[-1]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_deals_job_walks_in_creation_order_with_many_stubs(kit):
    kit.sandbox.generate(deals=350)
    job, records = kit.run("deals")
    expected = expected_records(kit.sandbox, "deals")
    assert records == expected and job["total_expected"] == len(expected)
    assert sum(1 for r in records if r.get("isDisabled") == 1) >= 40            # many stubs, each once
    walks = queries(kit.sandbox, "/deals")
    assert all(q["orders[cdate]"] == "ASC" and "orders[id]" not in q for q in walks)


# ---- 4. small ones -----------------------------------------------------------------------------------

def test_before_is_exclusive_and_after_inclusive(connected):
    sandbox = connected.sandbox
    sandbox.generate(deals=60)                                      # one page of each holds all
    day = sorted(d["cdate"][:10] for d in sandbox.deals if "cdate" in d)[10]
    before = connected.export("deals", f"filters[created_before]={day}&limit=250").json()["data"]
    after = connected.export("deals", f"filters[created_after]={day}&limit=250").json()["data"]
    dated = [d for d in sandbox.deals if "cdate" in d]
    assert sorted(d["id"] for d in before) == sorted(d["id"] for d in dated if d["cdate"][:10] < day)
    assert sorted(d["id"] for d in after) == sorted(d["id"] for d in dated if d["cdate"][:10] >= day)


def test_search_field_says_where_deals_search_looks(connected):
    sandbox = connected.sandbox
    contacts = {c["id"]: c for c in sandbox.contacts}
    deal = next(d for d in sandbox.deals if d.get("contact") and contacts[d["contact"]]["lastName"])
    last = contacts[deal["contact"]]["lastName"]
    found = connected.export("deals", f"filters[search]={last}&filters[search_field]=contact&limit=100")
    assert deal["id"] in {d["id"] for d in found.json()["data"]}
    assert all(last.lower() in f"{contacts[d['contact']]['firstName']} {contacts[d['contact']]['lastName']}".lower()
               for d in found.json()["data"])
    assert queries(sandbox, "/deals")[-1]["filters[search_field]"] == "contact"
    assert connected.export("deals", "filters[search_field]=notes").status_code == 400


@pytest.mark.parametrize(("name", "links", "key"), [("listid", "contact_lists", "list"),
                                                    ("tagid", "contact_tags", "tag")])
def test_list_and_tag_filters_really_filter(connected, name, links, key):
    sandbox = connected.sandbox
    wanted = "2"
    members = {link["contact"] for link in getattr(sandbox, links) if link[key] == wanted}
    reply = connected.export("contacts", f"filters[{name}]={wanted}&limit=250")
    assert members and sorted(int(c["id"]) for c in reply.json()["data"]) == sorted(int(i) for i in members)


# ---- 5. complete records -----------------------------------------------------------------------------

def test_contacts_carry_tags_lists_and_multiselect_lists(connected):
    sandbox = connected.sandbox
    reply = connected.export("contacts", "limit=100")
    expected = expected_records(sandbox, "contacts")[:100]
    assert reply.json()["data"] == expected
    assert any(c["tags"] for c in expected) and any(len(c["lists"]) > 1 for c in expected)
    assert any(isinstance(v, list) and len(v) > 1 for c in expected for v in c["customFields"].values())
    raw = [v["value"] for c in reply.json()["data"] for v in c["fieldValues"] if str(v["value"]).startswith("||")]
    assert raw                                                    # fieldValues stay as AC sent them
    assert queries(sandbox, "/contacts")[0]["include"] == "fieldValues,contactTags,contactLists"


def test_deals_and_accounts_carry_custom_fields_and_owner_names(connected):
    sandbox = connected.sandbox
    deals = connected.export("deals", "limit=100").json()["data"]
    assert deals == expected_records(sandbox, "deals")[:100]
    assert any(d["customFields"] for d in deals) and any(d["ownerName"] for d in deals)
    accounts = connected.export("accounts", "limit=100").json()["data"]
    assert any(a["customFields"] for a in accounts)


def test_an_include_ac_ignores_gives_null_not_empty(connected, monkeypatch):
    sandbox = connected.sandbox
    for name, dropped in (("_contacts", ("contactTags", "contactLists")), ("_deals", ("dealCustomFieldData",))):
        real = getattr(sandbox, name)

        def serve(q, ql, real=real, dropped=dropped):
            return {k: v for k, v in real(q, ql).items() if k not in dropped}
        monkeypatch.setattr(sandbox, name, serve)
    contacts = connected.export("contacts", "limit=5").json()["data"]
    assert all(c["tags"] is None and c["lists"] is None and "customFields" in c for c in contacts)
    deals = connected.export("deals", "limit=20").json()["data"]
    # deals' custom fields are then read from /dealCustomFieldData (docs/query.md; null only when that is too
    # large: tests/integration/test_custom_field_queries.py)
    assert any(d["customFields"] for d in deals) and sandbox.count("/dealCustomFieldData")


# ---- 8. AC calls per page ----------------------------------------------------------------------------

@pytest.mark.parametrize(("resource", "cold"), [
    ("contacts", {"/contacts", "/fields", "/tags", "/lists"}),
    ("deals", {"/deals", "/dealGroups", "/dealStages", "/users", "/dealCustomFieldMeta"}),
    ("accounts", {"/accounts", "/accountCustomFieldMeta", "/accountCustomFieldData"}),
])
def test_ac_calls_per_page_cold_and_warm(connected, resource, cold):
    """A cold container's first page reads the reference data once (one call each here: < 100 items);
    a further page is one AC call."""
    sandbox = connected.sandbox
    assert connected.export(resource, "limit=100").status_code == 200
    assert sorted(r.path for r in sandbox.requests) == sorted(cold)
    sandbox.requests.clear()
    assert connected.export(resource, "limit=20&page=2").status_code == 200
    assert [r.path for r in sandbox.requests] == [f"/{resource}"]


def test_updated_after_still_selects_deals_by_mdate(kit):
    since = dt.date(2025, 3, 1).isoformat()
    _, records = kit.run("deals", {"updated_after": since})
    # the stand-in's AC filter skips stubs (they have no mdate); what real AC does with them is undocumented
    expected = [d for d in expected_records(kit.sandbox, "deals") if d.get("mdate", "")[:10] >= since]
    assert records == expected


def test_the_readmes_first_page_of_deals_is_real_deals_and_stubs_come_later(connected):
    """README: `/export/deals?page=1&limit=5` (AC's creation order) shows deals with titles and pipelines;
    the stubs AC sends for restricted pipelines are further on, each once."""
    first = connected.export("deals", "page=1&limit=5")
    assert first.status_code == 200
    deals = first.json()["data"]
    assert len(deals) == 5 and all(d["title"] and d["pipelineTitle"] and not d["isDisabled"] for d in deals)
    every = connected.export("deals", "limit=100").json()["data"]
    stubs = [d for d in every if d.get("isDisabled") == 1]
    assert stubs and len({d["id"] for d in stubs}) == len(stubs) == sum(
        1 for d in connected.sandbox.deals if d.get("isDisabled") == 1)
