"""acexport.compat: the readers that accept both what MongoDB stores and what nx-27017 stores, and the
job fields written before flags were booleans (a job started before the change still resumes)."""

import datetime as dt

import pytest
from acexport import compat
from acexport.jobs import worker

MOMENT = dt.datetime(2026, 12, 1, 11, 19, 12, 123000, tzinfo=dt.UTC)


@pytest.mark.parametrize("stored", [
    MOMENT,                                   # MongoDB, tz_aware client
    MOMENT.replace(tzinfo=None),              # MongoDB, naive client: UTC
    "2026-12-01 11:19:12.123000",             # nx-27017: a date set through $set (quirk 1)
    "2026-12-01T11:19:12.123000+00:00",
])
def test_as_datetime_reads_every_stored_form_as_the_same_instant(stored):
    value = compat.as_datetime(stored)
    assert value == MOMENT and value.tzinfo is not None


@pytest.mark.parametrize("stored", [None, "", "yesterday", 17, b"2026-12-01"])
def test_as_datetime_refuses_what_is_not_a_date(stored):
    assert compat.as_datetime(stored) is None


def test_with_dates_converts_only_the_named_fields():
    doc = {"created_at": "2026-12-01 11:19:12.123000", "rejected_at": None, "note": "2026-12-01 11:19:12"}
    assert compat.with_dates(doc, ("created_at", "rejected_at", "missing")) == {
        "created_at": MOMENT, "rejected_at": None, "note": "2026-12-01 11:19:12"}
    assert compat.with_dates(None, ("created_at",)) is None


@pytest.mark.parametrize(("stored", "flag"), [(True, True), (1, True), (False, False), (0, False), (None, False)])
def test_as_flag_reads_booleans_and_nx_numbers(stored, flag):
    assert compat.as_flag(stored) is flag


def test_collection_names_keep_dashes_on_mongodb_only():
    name = "integrations-activecampaign-export-jobs"
    assert compat.collection_name(name, nx27017=False) == name
    assert compat.collection_name(name, nx27017=True) == "integrations_activecampaign_export_jobs"


def test_a_checkpoint_written_with_0_1_flags_resumes_like_a_new_one():
    old = {"cursor": {"last_id": "40"}, "read": 40, "written": 40, "etags": ['"a"'], "sizes": [7],
           "buffer": b"", "final": 1}
    state = worker._State.load(old)
    assert state.final is True and state.cursor == {"last_id": "40"} and state.read == 40
    assert worker._State.load({**old, "final": 0}).final is False
    file = {"etags": ['"a"'], "sizes": [7], "buffer": b""}
    assert state.dump(file)["final"] is True            # written back as a boolean


def test_a_handoff_marked_sent_with_1_still_supersedes_older_messages():
    assert worker._superseded({"handoff": {"seq": 3, "sent": 1}}, 2) is True
    assert worker._superseded({"handoff": {"seq": 3, "sent": True}}, 2) is True
    assert worker._superseded({"handoff": {"seq": 3, "sent": 0}}, 2) is False

