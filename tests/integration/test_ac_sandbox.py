"""The ActiveCampaign sandbox behaves like AC v3 over real HTTP (paging, totals, auth, rate limit, faults)."""

import json

import pytest
import requests

from devstack.ac_sandbox import ACSandbox, RecordedRequest, deal_created

KEY = {"Api-Token": "sandbox-key"}


def get(sb, path, params=None, headers=KEY, timeout=5.0, **kwargs):
    url = f"{sb.base_url}/api/3{path}"
    return requests.get(url, params=params, headers=headers, timeout=timeout, **kwargs)


def ids(items):
    return [int(item["id"]) for item in items]


# ---------------------------------------------------------------- paging and envelopes

def test_paging_defaults_offset_and_clamp_to_100(sb):
    first = get(sb, "/contacts").json()
    assert ids(first["contacts"]) == list(range(1, 21))  # default limit 20, id order
    second = get(sb, "/contacts", {"limit": 10, "offset": 10}).json()
    assert ids(second["contacts"]) == list(range(11, 21))
    assert len(get(sb, "/contacts", {"limit": 500}).json()["contacts"]) == 100
    assert len(get(sb, "/contacts", {"limit": "lots", "offset": "x"}).json()["contacts"]) == 20
    tail = get(sb, "/contacts", {"limit": 100, "offset": 100}).json()
    assert ids(tail["contacts"]) == list(range(101, 121)) and tail["meta"]["total"] == "120"
    assert get(sb, "/contacts", {"offset": 500}).json()["contacts"] == []
    sb.fields.extend({**sb.fields[0], "id": str(n), "title": f"Extra {n}"} for n in range(8, 31))
    assert len(get(sb, "/fields").json()["fields"]) == 20   # /fields defaults to 20, as reported in practice
    assert len(get(sb, "/fields", {"limit": 100}).json()["fields"]) == 30


def test_meta_total_is_a_string_except_for_deals(sb):
    assert get(sb, "/contacts").json()["meta"]["total"] == "120"
    assert get(sb, "/accounts").json()["meta"]["total"] == "25"
    assert get(sb, "/fields").json()["meta"]["total"] == "7"
    assert isinstance(get(sb, "/fieldValues").json()["meta"]["total"], str)
    assert get(sb, "/dealGroups").json()["meta"]["total"] == "2"
    assert isinstance(get(sb, "/dealStages").json()["meta"]["total"], str)
    deals = get(sb, "/deals").json()
    assert deals["meta"]["total"] == 60 and "USD" in deals["meta"]["currencies"]


def test_unknown_params_are_ignored_and_unknown_paths_are_html_404(sb):
    plain = get(sb, "/contacts", {"limit": 5}).json()
    noisy = get(sb, "/contacts", {"limit": 5, "page": 3, "filters[email]": "x@y.z", "orders[udate]": "DESC"})
    assert noisy.json()["contacts"] == plain["contacts"]
    missing = get(sb, "/contactz")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "text/html"
    assert "could not be found" in missing.text


def test_users_me_and_shapes(sb):
    user = get(sb, "/users/me").json()["user"]
    assert user["username"] == "demo" and user["id"] == "1"
    contact = get(sb, "/contacts", {"limit": 1}).json()["contacts"][0]
    for key in ("cdate", "udate", "email", "phone", "firstName", "lastName", "orgid", "hash", "links"):
        assert key in contact
    assert contact["deleted"] == "0" and contact["organization"] is None and isinstance(contact["id"], str)
    stages = {s["id"]: s["group"] for s in get(sb, "/dealStages", {"limit": 100}).json()["dealStages"]}
    groups = {g["id"] for g in get(sb, "/dealGroups").json()["dealGroups"]}
    deals = get(sb, "/deals", {"limit": 100}).json()["deals"]
    stubs = [d for d in deals if d.get("isDisabled") == 1]
    assert len(stubs) >= 5 and all(set(d) == {"id", "isDisabled", "title"} for d in stubs)   # many stubs
    assert [d["title"] for d in stubs].count("Demo Requested") == 1
    for deal in deals:
        if deal not in stubs:
            assert stages[deal["stage"]] == deal["group"] and deal["group"] in groups
    second = get(sb, "/dealStages", {"filters[d_groupid]": 2}).json()["dealStages"]
    assert second and {s["group"] for s in second} == {"2"}


# ---------------------------------------------------------------- auth and rate limit

def test_bad_or_missing_key_is_403_without_content_type(sb):
    for headers in ({"Api-Token": "wrong"}, {}):
        response = get(sb, "/users/me", headers=headers)
        assert response.status_code == 403
        assert "Content-Type" not in response.headers
        assert response.json() == {"message": "Forbidden"}
    sb.add_key("fresh-key")
    sb.remove_key("sandbox-key")
    assert get(sb, "/users/me").status_code == 403
    assert get(sb, "/users/me", headers={"Api-Token": "fresh-key"}).status_code == 200
    assert [r.status for r in sb.requests] == [403, 403, 403, 200]
    assert sb.requests[0].api_key == "wrong" and sb.requests[1].api_key is None


def test_rate_limit_is_5_per_second_with_retry_after():
    with ACSandbox(rate_limit=5, contacts=5, deals=3, accounts=2) as limited:
        with requests.Session() as session:
            responses = [session.get(f"{limited.base_url}/api/3/users/me", headers=KEY, timeout=5)
                         for _ in range(7)]
        assert [r.status_code for r in responses[:5]] == [200] * 5
        assert [r.headers["RateLimit-Remaining"] for r in responses[:5]] == ["4", "3", "2", "1", "0"]
        assert responses[0].headers["RateLimit-Limit"] == "5"
        throttled = responses[5]
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
        assert throttled.json() == {"message": "Too Many Requests"}
        assert limited.count() == 7 and limited.requests[-1].status == 429


# ---------------------------------------------------------------- contacts

def test_include_field_values(sb):
    body = get(sb, "/contacts", {"limit": 10, "include": "fieldValues,contactTags"}).json()
    page_ids = {c["id"] for c in body["contacts"]}
    expected = [fv for fv in sb.field_values if fv["contact"] in page_ids]
    assert expected and body["fieldValues"] == expected
    assert "fieldValues" not in get(sb, "/contacts", {"limit": 10}).json()


def test_contact_search_email_and_filters(sb):
    johns = get(sb, "/contacts", {"search": "john"}).json()["contacts"]
    named_john = [c for c in johns if c["firstName"] == "John"]
    assert len(named_john) >= 3
    assert len({c["lastName"] for c in named_john}) == len(named_john)
    assert len({c["email"] for c in named_john}) == len(named_john)
    full = get(sb, "/contacts", {"search": f"John {named_john[0]['lastName']}"}).json()["contacts"]
    assert named_john[0]["id"] in {c["id"] for c in full}
    target = sb.contacts[41]
    exact = get(sb, "/contacts", {"email": target["email"].upper()}).json()
    assert exact["contacts"] == [target] and exact["meta"]["total"] == "1"
    assert get(sb, "/contacts", {"email": "nobody@example.com"}).json()["contacts"] == []
    keyset = get(sb, "/contacts", {"orders[id]": "ASC", "id_greater": 115}).json()
    assert ids(keyset["contacts"]) == [116, 117, 118, 119, 120]
    recent = get(sb, "/contacts", {"filters[updated_after]": "2025-01-01", "limit": 100}).json()["contacts"]
    assert recent and all(c["udate"][:10] >= "2025-01-01" for c in recent)
    assert int(get(sb, "/contacts", {"status": 1}).json()["meta"]["total"]) < 120


def test_contact_orders(sb):
    by_email = get(sb, "/contacts", {"orders[email]": "ASC", "limit": 100}).json()["contacts"]
    emails = [c["email"] for c in by_email]
    assert emails == sorted(emails, key=str.lower)
    assert ids(by_email) != sorted(ids(by_email))  # email order differs from id order

    def expected(*keys):
        rows = sorted(sb.contacts, key=lambda c: int(c["id"]))
        for key, desc in reversed(keys):
            rows.sort(key=lambda c, k=key: c[k].lower(), reverse=desc)
        return [c["id"] for c in rows][:100]

    first_then_email = get(sb, "/contacts?orders[first_name]=ASC&orders[email]=DESC&limit=100").json()
    assert [c["id"] for c in first_then_email["contacts"]] == expected(("firstName", False), ("email", True))
    email_then_first = get(sb, "/contacts?orders[email]=DESC&orders[first_name]=ASC&limit=100").json()
    assert [c["id"] for c in email_then_first["contacts"]] == expected(("email", True), ("firstName", False))
    assert first_then_email["contacts"] != email_then_first["contacts"]


# ---------------------------------------------------------------- deals and accounts

def test_deal_filters_and_int_total(sb):
    deals = get(sb, "/deals", {"limit": 100}).json()
    assert deals["meta"]["total"] == 60 == len(deals["deals"])
    stage = get(sb, "/deals", {"filters[stage]": 2, "limit": 100}).json()
    assert stage["deals"] and {d["stage"] for d in stage["deals"]} == {"2"}
    assert stage["meta"]["total"] == len(stage["deals"])
    won = get(sb, "/deals", {"filters[status]": 1, "filters[group]": 1, "limit": 100}).json()["deals"]
    assert all(d["status"] == "1" and d["group"] == "1" for d in won)
    rich = get(sb, "/deals", {"filters[minimum_value]": 50000, "limit": 100}).json()["deals"]
    assert rich and all(int(d["value"]) >= 5_000_000 for d in rich)
    by_value = get(sb, "/deals", {"orders[value]": "DESC", "limit": 5}).json()["deals"]
    assert [int(d["value"]) for d in by_value] == sorted((int(d["value"]) for d in by_value), reverse=True)
    demo = get(sb, "/deals", {"filters[title]": "demo requested"}).json()
    assert demo["meta"]["total"] == 1 and demo["deals"][0]["isDisabled"] == 1


def test_kept_deal_orders_and_counts_follow_edits(sb):
    """/deals in the walk's orders and /accounts' counts come from indexes kept until the data changes: an
    added, deleted or edited deal shows at once, as a scan per call would show it."""
    def walk_order(**params):
        body = get(sb, "/deals", {"limit": 100, "include": "dealCustomFieldData", **params}).json()
        return [d["id"] for d in body["deals"]], body["meta"], body["dealCustomFieldData"]

    def by_cdate_now():
        return [d["id"] for d in sorted(sb.deals, key=lambda d: (deal_created(d), int(d["id"])))]

    in_cdate, meta, data = walk_order(**{"orders[cdate]": "ASC"})
    assert in_cdate == by_cdate_now() and walk_order()[0] == [d["id"] for d in sb.deals]
    assert [v["id"] for v in data] == [v["id"] for v in sb.deal_custom_field_data]   # the data's own order
    usd = int(meta["currencies"]["USD"]["value"])
    deal = next(d for d in sb.deals if "group" in d)
    sb.update_deal(deal["id"], value=int(deal["value"]) + 100)                    # an edit inside a deal
    assert int(walk_order(**{"orders[cdate]": "ASC"})[1]["currencies"]["USD"]["value"]) == usd + 100
    gone = sb.deals.pop(3)["id"]
    late, _ = sb.add_deal("Late", value=5)
    again = walk_order(**{"orders[cdate]": "ASC"})[0]
    assert again == by_cdate_now() == [i for i in in_cdate if i != gone] + [late["id"]]
    won = get(sb, "/deals", {"orders[cdate]": "ASC", "filters[status]": 1, "limit": 100}).json()["deals"]
    status = {d["id"]: d.get("status") for d in sb.deals}
    assert won and [d["id"] for d in won] == [i for i in again if status[i] == "1"]    # filtered after the order
    counted = get(sb, "/accounts", {"count_deals": "true", "limit": 100}).json()["accounts"]
    assert sum(int(a["dealCount"]) for a in counted) == sum(1 for d in sb.deals if d.get("account"))


def test_accounts_search_returns_both_acme_accounts(sb):
    body = get(sb, "/accounts", {"search": "Acme Corporation"}).json()
    assert sorted(a["name"] for a in body["accounts"]) == ["Acme Corporation", "Acme Corporation Europe"]
    assert body["meta"]["total"] == "2" and body["accounts"][0]["dealCount"] == "0"
    counted = get(sb, "/accounts", {"count_deals": "true", "limit": 100}).json()["accounts"]
    assert sum(int(a["contactCount"]) for a in counted) > 0 and sum(int(a["dealCount"]) for a in counted) > 0
    ordered = get(sb, "/accounts", {"orders[name]": "ASC", "limit": 100}).json()["accounts"]
    names = [a["name"] for a in ordered]
    assert names != sorted(names)  # no ordering on accounts: id order, which is not name order


# ---------------------------------------------------------------- faults, log, reset

def test_injected_503_then_success(sb):
    sb.inject(503, times=2, path="/contacts", retry_after=2)
    assert get(sb, "/users/me").status_code == 200  # other paths unaffected
    first, second, third = (get(sb, "/contacts", {"limit": 1}) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["Retry-After"] == "2" and first.json() == {"message": "Service Unavailable"}
    assert sb.count("/contacts") == 3 and sb.count("/api/3/users/me") == 1 and sb.count() == 4
    assert [r.status for r in sb.requests] == [200, 503, 503, 200]
    assert isinstance(sb.requests[1], RecordedRequest) and sb.requests[1].query == [("limit", "1")]


def test_faults_apply_before_auth_and_in_fifo_order(sb):
    sb.inject(500)
    sb.inject(302, location="https://www.activecampaign.com/login/")
    assert get(sb, "/users/me", headers={}).status_code == 500
    redirect = get(sb, "/users/me", allow_redirects=False)
    assert redirect.status_code == 302 and redirect.headers["Location"].endswith("/login/")
    assert redirect.headers["Content-Type"] == "text/html"
    assert get(sb, "/users/me").status_code == 200


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_injected_delay_past_read_timeout(sb):
    sb.inject(delay=0.5, path="/deals")
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(sb, "/deals", timeout=0.15)
    assert get(sb, "/deals").status_code == 200
    sb.inject(delay=0.2)
    slow = get(sb, "/users/me")
    assert slow.status_code == 200 and slow.elapsed.total_seconds() >= 0.2


def test_injected_truncated_and_html_bodies(sb):
    sb.inject(body=b'{"contacts": [{"id": "1", "ema')
    truncated = get(sb, "/contacts")
    assert truncated.status_code == 200 and truncated.headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.text)
    sb.inject(200, body=b"<html>maintenance</html>", content_type="text/html")
    html = get(sb, "/contacts")
    assert html.status_code == 200 and html.text.startswith("<html>")
    sb.inject(200, body=b"", content_type=None)
    empty = get(sb, "/contacts")
    assert empty.content == b"" and "Content-Type" not in empty.headers


def test_reset_restores_data_and_generation_is_deterministic(sb):
    original = [dict(c) for c in sb.contacts]
    sb.contacts[0]["firstName"] = "Changed"
    del sb.deals[5:]
    assert get(sb, "/deals").json()["meta"]["total"] == 5
    sb.inject(503, times=10)
    sb.reset()
    assert sb.contacts == original and len(sb.deals) == 60 and sb.count() == 0
    assert get(sb, "/users/me").status_code == 200
    other = ACSandbox(contacts=120, deals=60, accounts=25)
    assert other.contacts == sb.contacts and other.deals == sb.deals and other.accounts == sb.accounts
    other.generate(contacts=7, deals=3)
    assert len(other.contacts) == 7 and len(other.deals) == 3 and len(other.accounts) == 25
    assert sum(c["firstName"] == "John" for c in other.contacts) >= 3
    other.reset()                     # a test's sizes do not outlive it (test_deal_filters_reach_ac met 350 deals)
    assert len(other.contacts) == 120 and len(other.deals) == 60


def test_keep_alive_and_a_stopped_sandbox_answers_no_kept_connection():
    """HTTP/1.1 keep-alive as AC's API: one connection carries a client's calls; after stop() a kept
    connection is closed unanswered, never served by the stopped stand-in."""
    sandbox = ACSandbox(contacts=5, deals=1, accounts=1).start()
    session = requests.Session()
    url = f"{sandbox.base_url}/api/3/users/me"
    headers = {"Api-Token": "sandbox-key"}
    try:
        first = session.get(url, headers=headers, timeout=5)
        second = session.get(url, headers=headers, timeout=5)
        assert first.status_code == second.status_code == 200 and first.raw.version == 11
        assert len(session.get_adapter(url).poolmanager.pools) == 1
        pool = next(iter(session.get_adapter(url).poolmanager.pools._container.values()))
        assert pool.num_connections == 1              # the second call reused the first's connection
    finally:
        sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url, headers=headers, timeout=5)


# ---------------------------------------------------------------- the complete-records round: what public evidence
# shows

def test_retry_after_can_be_larger_than_one_second():
    with ACSandbox(rate_limit=2, contacts=2, deals=1, accounts=1, retry_after=30) as limited:
        codes = [get(limited, "/users/me") for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429] and codes[2].headers["Retry-After"] == "30"


def test_permission_403_body_for_one_key_or_all(sb):
    sb.add_key("limited-key")
    sb.deny("/deals", "limited-key")
    refused = get(sb, "/deals", headers={"Api-Token": "limited-key"})
    assert refused.status_code == 403 and refused.headers["Content-Type"] == "text/plain"
    assert refused.json() == {"errors": [{"status": 403, "title": "Forbidden",
                                          "detail": "You do not have permission to view deals."}]}
    assert get(sb, "/deals").status_code == 200                          # another key's group has Deals
    assert get(sb, "/contacts", headers={"Api-Token": "limited-key"}).status_code == 200
    sb.reset()
    assert get(sb, "/deals").status_code == 200


def test_sideloads_link_items_to_records(sb):
    body = get(sb, "/contacts", {"limit": 30, "include": "fieldValues,contactTags,contactLists"}).json()
    for name in ("contactTags", "contactLists"):
        by_contact = {}
        for item in body[name]:
            by_contact.setdefault(item["contact"], []).append(item["id"])
        assert all(c[name] == by_contact.get(c["id"], []) for c in body["contacts"])
    plain = get(sb, "/contacts", {"limit": 30}).json()
    assert "contactTags" not in plain and "contactTags" not in plain["contacts"][0]
    deals = get(sb, "/deals", {"limit": 100, "include": "dealCustomFieldData"}).json()
    assert deals["dealCustomFieldData"] and all(isinstance(v["dealId"], int) for v in deals["dealCustomFieldData"])


def test_list_tag_and_before_filters_really_filter(sb):
    on_list = {m["contact"] for m in sb.contact_lists if m["list"] == "3"}
    listed = get(sb, "/contacts", {"listid": 3, "limit": 100}).json()["contacts"]
    assert listed and {c["id"] for c in listed} == on_list
    tagged = {t["contact"] for t in sb.contact_tags if t["tag"] == "1"}
    assert {c["id"] for c in get(sb, "/contacts", {"tagid": 1, "limit": 100}).json()["contacts"]} == tagged
    day = sb.deals[10]["cdate"][:10]
    before = get(sb, "/deals", {"filters[created_before]": day, "limit": 100}).json()["deals"]
    assert before and all(d["cdate"][:10] < day for d in before)         # "less than": exclusive
