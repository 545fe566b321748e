"""Each nx-27017 quirk that acexport.compat works around, written the way production writes and read back
over the wire protocol from the suite's Mongo. On nx-27017 each test asserts the quirk is still there (so
a fixed nx-27017 shows which workaround can go); on MongoDB (`MONGODB_URI`, the CI run) that it is not.
Either way the compat reader must give back exactly what was written."""

import datetime as dt

import pytest
from acexport import compat
from acexport.jobs import store as job_store
from pymongo.errors import OperationFailure


@pytest.fixture
def nx(stack, mongo):
    answer = compat.is_nx27017(mongo)
    assert compat.is_nx27017(mongo.client) is answer is stack.mongo_is_nx27017   # a client or a database
    return answer


@pytest.fixture
def coll(mongo):
    name = compat.collection_name("compat-probe", nx27017=compat.is_nx27017(mongo))
    mongo[name].delete_many({})
    yield mongo[name]
    mongo[name].drop()


def moment() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=123000)   # BSON dates keep milliseconds


def test_quirk_1_a_date_set_through_set_comes_back_as_text_on_nx(coll, nx):
    at = moment()
    coll.insert_one({"_id": 1, "inserted": at})
    coll.update_one({"_id": 1}, {"$set": {"top": at, "nested.dotted": at, "inside": {"until": at}}})
    raw = coll.find_one({"_id": 1})
    if nx:
        assert isinstance(raw["top"], str) and isinstance(raw["nested"]["dotted"], str)
    else:
        assert isinstance(raw["top"], dt.datetime) and isinstance(raw["nested"]["dotted"], dt.datetime)
    # inserted dates and dates inside a document value stay dates on both: the ones queries use
    assert isinstance(raw["inserted"], dt.datetime) and isinstance(raw["inside"]["until"], dt.datetime)
    for value in (raw["top"], raw["nested"]["dotted"], raw["inserted"], raw["inside"]["until"]):
        assert compat.as_datetime(value) == at
    assert coll.count_documents({"inside.until": {"$lt": at + dt.timedelta(seconds=1)}}) == 1


def test_quirk_2_a_boolean_set_through_set_comes_back_as_a_number_on_nx(coll, nx):
    coll.insert_one({"_id": 1, "inserted": True, "handoff": {"seq": 0, "sent": False}})
    coll.update_one({"_id": 1}, {"$set": {"finalized": True, "handoff.sent": True, "off": False,
                                          "inside": {"final": True}}})
    raw = coll.find_one({"_id": 1})
    expected = (1, 1, 0) if nx else (True, True, False)
    assert (raw["finalized"], raw["handoff"]["sent"], raw["off"]) == expected
    assert all(type(v) is (int if nx else bool) for v in (raw["finalized"], raw["handoff"]["sent"], raw["off"]))
    assert raw["inserted"] is True and raw["inside"]["final"] is True
    assert [compat.as_flag(raw[k]) for k in ("finalized", "off")] == [True, False]
    assert compat.as_flag(raw["handoff"]["sent"]) is True
    assert coll.count_documents({"finalized": True}) == 1     # a query for True finds the stored 1 too


def test_quirk_3_collection_names_with_a_dash(mongo, nx):
    name = "compat-dash-probe"
    if nx:
        with pytest.raises(OperationFailure, match="Invalid identifier"):
            mongo[name].insert_one({"x": 1})
    else:
        mongo[name].insert_one({"x": 1})
        assert mongo[name].count_documents({}) == 1
        mongo[name].drop()
    local = compat.collection_name(name, nx27017=nx)
    mongo[local].insert_one({"x": 1})
    assert mongo[local].count_documents({}) == 1
    mongo[local].drop()


def test_no_quirk_lists_of_documents_survive_set(coll):
    """docs/decisions.md once said nx-27017 turns lists of documents into strings: 0.8.1 does not."""
    parts = [{"number": 1, "etag": '"a"', "size": 7}, {"number": 2, "etag": '"b"', "size": 9}]
    coll.insert_one({"_id": 1})
    coll.update_one({"_id": 1}, {"$set": {"parts": parts, "checkpoint.parts": parts, "cp": {"parts": parts}}})
    raw = coll.find_one({"_id": 1})
    assert raw["parts"] == raw["checkpoint"]["parts"] == raw["cp"]["parts"] == parts


def test_job_documents_keep_real_dates_where_the_ttl_index_looks(api, mongo):
    """The TTL index on expires_at only fires on a BSON date: the job store inserts it as one, on both."""
    _doc, created = job_store.create({"_id": "compat-job", "request_key": "compat:1", "account_id": "a",
                                      "owner": "o", "resource": "contacts", "format": "ndjson"}, slots=1)
    assert created
    raw = job_store.collection().find_one({"_id": "compat-job"})
    assert isinstance(raw["expires_at"], dt.datetime) and isinstance(raw["created_at"], dt.datetime)
    assert raw["handoff"] == {"seq": 0, "sent": False}
    job_store.mark_sent("compat-job", 0)
    job_store.set_fields("compat-job", {"started_at": job_store.now()})
    raw = job_store.get("compat-job")
    assert compat.as_flag(raw["handoff"]["sent"]) is True
    assert compat.as_datetime(raw["started_at"]) is not None
    assert compat.as_datetime(raw["updated_at"]) >= compat.as_datetime(raw["created_at"])


def test_a_rejected_connection_still_reports_its_dates(api):
    """mark_rejected sets rejected_at and updated_at through $set (text on nx-27017): GET /auth reads them
    as dates (before acexport.compat, `updated_at` came back null on nx-27017)."""
    from acexport.credentials import store
    from acexport.tenancy import Tenant

    api.connect()
    store.mark_rejected(Tenant(account_id="account-1", owner="user-1"))
    data = api.call("GET", "/auth").json()["data"]
    assert data["needs_reconnect"] is True
    assert data["updated_at"] and data["updated_at"] >= data["created_at"]
    assert data["updated_at"].endswith("Z")
