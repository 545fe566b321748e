"""GET /export/{contacts,deals,accounts} through the local API Gateway against the AC stand-in.
Expected values are computed from the stand-in's own data, never hard-coded."""

import pytest

from tests.integration.jobs_kit import expected_records


def ids(reply):
    return [r["id"] for r in reply.json()["data"]]


@pytest.fixture
def connected(api):
    api.connect()
    api.sandbox.requests.clear()
    return api


def test_pages_follow_ac_order_with_the_old_pagination_object(connected):
    sandbox = connected.sandbox
    reply = connected.export("contacts", "page=2&limit=50")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = [c["id"] for c in sorted(sandbox.contacts, key=lambda c: int(c["id"]))][50:100]
    assert ids(reply) == expected
    total = len(sandbox.contacts)
    assert body["pagination"] == {"page": "2", "limit": "50", "total": str(total),
                                  "next_page": 3 if total > 100 else None, "prev_page": 1}
    assert body["success"] is True and body["message"] == "SUCCESS"


def test_ac_fields_stay_and_custom_fields_are_added(connected):
    sandbox = connected.sandbox
    contact = connected.export("contacts", "limit=5").json()["data"][0]
    source = next(c for c in sandbox.contacts if c["id"] == contact["id"])
    for field, value in source.items():
        assert contact[field] == value            # AC's own fields untouched
    values = [v for v in sandbox.field_values if v["contact"] == contact["id"]]
    assert contact["fieldValues"] == values
    expected = next(r for r in expected_records(sandbox, "contacts") if r["id"] == contact["id"])  # multi-selects
    assert contact["customFields"] == expected["customFields"] and len(expected["customFields"]) == len(values)
    assert contact["customFieldsByTag"] == expected["customFieldsByTag"]


def test_one_ac_call_per_page_of_up_to_100_once_reference_data_is_cached(connected):
    sandbox = connected.sandbox
    # a cold contacts page is 4 AC calls (the complete-records round): no 429 retry in the count
    connected.lift_rate_limit()
    connected.export("contacts", "limit=100")
    sandbox.requests.clear()
    assert connected.export("contacts", "page=2&limit=100").status_code == 200
    assert sandbox.count() == 1 and sandbox.count("/contacts") == 1


@pytest.mark.slow  # >= 1 s of real waiting
def test_limit_250_is_three_ac_calls_of_at_most_100(connected):
    sandbox = connected.sandbox
    connected.lift_rate_limit()   # warming is 4 AC calls (the complete-records round): no 429 retry in the count
    connected.export("contacts", "limit=1")  # warm the field cache
    sandbox.requests.clear()
    reply = connected.export("contacts", "limit=250")
    assert reply.status_code == 200
    assert len(reply.json()["data"]) == min(250, len(sandbox.contacts))
    calls = [r for r in sandbox.requests if r.path == "/contacts"]
    assert len(calls) == 3
    assert sorted(dict(c.query)["offset"] for c in calls) == ["0", "100", "200"]
    assert all(int(dict(c.query)["limit"]) <= 100 for c in calls)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_seed_example_first_name_john_ordered_by_email(connected):
    sandbox = connected.sandbox
    reply = connected.export("contacts", "orders[email]=ASC&filters[firstName]=John")
    assert reply.status_code == 200, reply.text
    johns = sorted((c for c in sandbox.contacts if c["firstName"].casefold() == "john"),
                   key=lambda c: c["email"].casefold())
    assert len(johns) >= 3
    assert ids(reply) == [c["id"] for c in johns]
    assert reply.json()["pagination"]["total"] == str(len(johns))
    # paging over a filtered set: page 2 of size 2 is the next two, total unchanged
    page2 = connected.export("contacts", "orders[email]=ASC&filters[firstName]=John&page=2&limit=2")
    assert ids(page2) == [c["id"] for c in johns[2:4]]
    assert page2.json()["pagination"]["total"] == str(len(johns))
    assert page2.json()["pagination"]["prev_page"] == 1


def test_two_orders_apply_in_query_order(connected):
    sandbox = connected.sandbox
    reply = connected.export("contacts", "orders[lastName]=ASC&orders[email]=DESC&limit=100")
    expected = sorted(sandbox.contacts, key=lambda c: c["email"].casefold(), reverse=True)
    expected = sorted(expected, key=lambda c: c["lastName"].casefold())
    assert ids(reply) == [c["id"] for c in expected][:100]


def test_exact_email_filter(connected):
    target = connected.sandbox.contacts[7]
    reply = connected.export("contacts", f"filters[email]={target['email']}")
    assert ids(reply) == [target["id"]]
    assert reply.json()["pagination"]["total"] == "1"


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_deals_carry_pipeline_and_stage_titles(connected):
    sandbox = connected.sandbox
    reply = connected.export("deals", "limit=100")
    assert reply.status_code == 200
    body = reply.json()
    assert body["pagination"]["total"] == str(len(sandbox.deals))   # AC's int total, as a string
    pipelines = {g["id"]: g["title"] for g in sandbox.deal_groups}
    stages = {s["id"]: s["title"] for s in sandbox.deal_stages}
    for deal in body["data"]:
        if deal.get("isDisabled") in (1, True):
            assert deal["pipelineTitle"] is None and deal["stageTitle"] is None
            continue
        assert deal["group"] in pipelines and deal["pipelineTitle"] == pipelines[deal["group"]]
        assert deal["stageTitle"] == stages[deal["stage"]]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_deal_filters_reach_ac(connected):
    sandbox = connected.sandbox
    pipeline = sandbox.deal_groups[1]["id"]
    reply = connected.export("deals", f"filters[pipeline]={pipeline}&orders[value]=DESC&limit=100")
    expected = [d for d in sandbox.deals if d.get("group") == pipeline]
    expected.sort(key=lambda d: int(d["value"]), reverse=True)
    assert ids(reply) == [d["id"] for d in expected]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_seed_examples_on_accounts(connected):
    sandbox = connected.sandbox
    exact = connected.export("accounts", "filters[name]=Acme Corporation")
    assert [a["name"] for a in exact.json()["data"]] == ["Acme Corporation"]
    assert exact.json()["pagination"]["total"] == "1"

    ordered = connected.export("accounts", "orders[name]=DESC&limit=100")
    names = [a["name"] for a in sandbox.accounts]
    assert [a["name"] for a in ordered.json()["data"]] == sorted(names, key=str.casefold, reverse=True)
    assert ordered.json()["pagination"]["total"] == str(len(names))

    paged = connected.export("accounts", "orders[name]=DESC&limit=10&page=2")
    assert [a["name"] for a in paged.json()["data"]] == sorted(names, key=str.casefold, reverse=True)[10:20]


@pytest.mark.parametrize(("resource", "query", "needle"), [
    ("contacts", "page=0", "page must be"),
    ("contacts", "limit=1000", "limit must be an integer from 1 to 250"),
    ("contacts", "limit=abc", "limit must be"),
    ("contacts", "orders[email]=SIDEWAYS", "ASC or DESC"),
    ("contacts", "filters[a][b]=x", "Malformed"),
    ("deals", "filters[status]=9", "a deal status"),
    ("deals", "filters[created_after]=yesterday&filters[Seats]=4", "must be a date"),
])
def test_bad_queries_are_400_before_any_ac_call(connected, resource, query, needle):
    reply = connected.export(resource, query)
    assert reply.status_code == 400
    assert needle in reply.json()["message"]
    assert connected.sandbox.count() == 0


def test_not_connected_is_404_unauthorised_access(api):
    for resource in ("contacts", "deals", "accounts"):
        reply = api.export(resource)
        assert reply.status_code == 404
        assert reply.json() == {"success": False, "errno": 404, "message": "Unauthorised Access"}


def test_scan_beyond_the_limit_is_refused_not_wrong(connected):
    connected.env(LOCAL_SCAN_LIMIT="10")
    reply = connected.export("accounts", "orders[name]=ASC")
    assert reply.status_code == 400
    assert "narrow it" in reply.json()["message"]
