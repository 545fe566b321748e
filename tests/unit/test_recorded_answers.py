"""The domain code on AC's recorded answers (tests/fixtures/ac_answers), in-process through the fakes of
tests/fakes.py: the records' enrichment (sideloads joined, reference names, custom fields by label and
personalisation tag, a disabled deal stub), custom-field resolution and ordering in a page export, and the
job's walk. The same behaviour over HTTP against the AC stand-in is in tests/integration."""

from __future__ import annotations

import time

import pytest
from acexport import caches, exports
from acexport.ac.records import enrich, keep_custom_matches, page_records
from acexport.ac.resources import ACCOUNTS, CONTACTS, DEALS
from acexport.errors import BadRequestError, NotConnectedError
from acexport.tenancy import Tenant

from tests.fakes import FakeAC, FakeCredentialStore, walk_ids

ALICE, BOB = Tenant("account-1", "alice"), Tenant("account-2", "bob")


@pytest.fixture(autouse=True)
def fresh_container():
    """Reference data is cached per container (by host and key): each test starts from none."""
    caches.reset()
    yield
    caches.reset()


def page(ac: FakeAC, resource) -> list[dict]:
    records = page_records(resource, ac.get(resource.path, [*resource.base_params, ("limit", "100")]))
    enrich(ac, resource, records)
    return records


def test_contacts_get_custom_fields_by_title_and_tag_tags_and_lists():
    by_id = {r["id"]: r for r in page(FakeAC(), CONTACTS)}
    adam = by_id["5"]
    assert adam["customFields"] == {"Favourite food": "Burger", "Colours": ["Red", "Blue"]}   # ||a||b|| a list
    assert adam["customFieldsByTag"] == {"FOOD": "Burger", "COLOURS": ["Red", "Blue"]}
    assert adam["tags"] == ["vip"] and adam["lists"] == [{"id": "1", "name": "Newsletter", "status": "1"}]
    assert by_id["6"]["tags"] == [] and by_id["6"]["lists"][0]["status"] == "2"
    assert by_id["9"]["customFields"] == {} and by_id["9"]["lists"] == []
    assert all("_sideloaded" not in r and "fieldValues" in r for r in by_id.values())


def test_deals_get_pipeline_stage_owner_and_custom_fields_and_a_stub_gets_nulls():
    by_id = {r["id"]: r for r in page(FakeAC(), DEALS)}
    assert {k: by_id["46"][k] for k in ("pipelineTitle", "stageTitle", "ownerName", "customFields")} == {
        "pipelineTitle": "Sales", "stageTitle": "Proposal", "ownerName": "Ada Admin",
        "customFields": {"Plan": "Enterprise"}}
    stub = by_id["2"]
    assert stub["title"] == "Demo Requested" and stub["pipelineTitle"] is None and stub["customFields"] is None


def test_accounts_get_their_custom_fields_read_whole_once():
    ac = FakeAC()
    by_id = {r["id"]: r for r in page(ac, ACCOUNTS)}
    assert by_id["1"]["customFields"] == {"Region": "EMEA"} and by_id["2"]["customFields"] == {}
    page(ac, ACCOUNTS)                                   # the reference data is cached: only /accounts again
    assert ac.paths().count("/accountCustomFieldData") == 1 and ac.paths().count("/accounts") == 2


def test_a_custom_filter_resolves_the_label_and_keeps_matches_whatever_their_case():
    ac = FakeAC()
    records = page_records(DEALS, ac.get("/deals", [*DEALS.base_params, ("limit", "100")]))
    assert [r["id"] for r in keep_custom_matches(ac, DEALS, records, [("plan", "Enterprise")])] == ["46"]
    assert [r["id"] for r in keep_custom_matches(ac, DEALS, records, [("Plan", " enterprise")])] == ["46"]
    assert keep_custom_matches(ac, DEALS, records, [("Plan", "Starter")]) == []
    with pytest.raises(BadRequestError) as unknown:
        keep_custom_matches(ac, DEALS, records, [("Plans", "x")])
    assert "Plan" in unknown.value.message and "customField:1" in unknown.value.message


@pytest.fixture
def connected(monkeypatch):
    """ALICE connected to the recorded account; BOB not connected. The page export reads the fake store."""
    store, ac = FakeCredentialStore(), FakeAC()
    store.connect(ALICE, ac)
    monkeypatch.setattr(exports, "store", store)
    return ac


def test_a_page_export_orders_by_a_custom_field_with_the_empty_last(connected):
    page = exports.export_page(ALICE, CONTACTS, "orders[Favourite food]=DESC", deadline=time.monotonic() + 10)
    assert [r["id"] for r in page["data"]] == ["6", "5", "9"]            # Pizza, Burger, then no value
    assert page["data"][0]["customFields"] == {"Favourite food": "Pizza"}
    assert page["pagination"]["total"] == "3"                            # a string, as the old module sent


def test_a_page_export_filters_deals_by_a_custom_field(connected):
    page = exports.export_page(ALICE, DEALS, "filters[Plan]=Enterprise", deadline=time.monotonic() + 10)
    assert [r["id"] for r in page["data"]] == ["46"] and page["data"][0]["ownerName"] == "Ada Admin"


def test_a_page_export_for_a_tenant_without_a_connection_asks_ac_nothing(connected):
    with pytest.raises(NotConnectedError):
        exports.export_page(BOB, CONTACTS, None, deadline=time.monotonic() + 10)
    assert connected.calls == 0


def test_the_walk_writes_each_recorded_contact_once_in_id_order():
    ac = FakeAC()
    assert walk_ids(ac, "contacts") == ["5", "6", "9"]
    assert all(path in ("/contacts", "/fields", "/tags", "/lists") for path in ac.paths())
