"""The 17 published real AC deliveries (tests/fixtures/ac_webhooks/) read by the receiver's parser and mapping,
and the limits that keep any body cheap and bounded (docs/live.md "Limits")."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import quote, urlencode

import pytest
from acexport.errors import BadRequestError
from acexport.live import fields, form, mapping

from tests import ac_webhooks

FORM = "application/x-www-form-urlencoded"
RECEIVED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
SAMPLES = ac_webhooks.load()


def change(body: bytes | str, catalogue=None) -> mapping.Change:
    raw = body.encode() if isinstance(body, str) else body
    return mapping.change(form.parse(raw, FORM), received_at=RECEIVED, catalogue=catalogue)


def test_the_seventeen_samples_are_there_each_with_its_source():
    assert len(SAMPLES) == 17
    for name, sample in SAMPLES.items():
        assert sample["source"] and sample["date"] and sample["form"], name
        assert sample["expect"]["status"] in (200, 400), name


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_maps_as_expected_or_is_a_400(name):
    sample = SAMPLES[name]
    expect = sample["expect"]
    if expect["status"] == 400:
        with pytest.raises(BadRequestError):
            change(ac_webhooks.body(sample))
        return
    c = change(ac_webhooks.body(sample))
    assert (c.type, c.resource, c.record_id) == (expect["type"], expect["resource"], expect["record_id"])
    assert ac_webhooks.subset(expect["record"], c.record), c.record
    for key in ("list_id", "tag", "updated_fields"):
        if key in expect:
            assert c.details[key] == expect[key]
    assert "truncated" not in c.details


def test_multi_value_fields_five_levels_deep_are_lists():
    """Activepieces' account_update: `account[fields][18][value][0]` (400 'Malformed form body' before)."""
    c = change(ac_webhooks.body(SAMPLES["activepieces-2024-02-28-account-update"]))
    assert c.record["customFields"]["List box"] == ["Option 1", "Option 2"]
    assert c.record["customFields"]["Check Box"] == ["Option 1", "Option 2"]
    assert c.record["customFields"]["Phone Number"] == ""          # a field sent without an id
    deal = change(urlencode({"type": "deal_update", "date_time": "2024-02-28T04:45:41-06:00", "deal[id]": "4",
                             "deal[fields][0][id]": "3", "deal[fields][0][key]": "Regions",
                             "deal[fields][0][value][0]": "EMEA", "deal[fields][0][value][1]": "APAC"}))
    assert deal.record["customFields"] == {"Regions": ["EMEA", "APAC"]}
    contact = change("type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=5"
                     "&contact[fields][7][0]=a&contact[fields][7][1]=b")
    assert contact.record["fieldValues"] == [{"field": "7", "value": ["a", "b"]}]


def test_a_public_unsubscribe_keeps_its_lists():
    """`list[][id]` (AC's webhook description; api-evangelist's AsyncAPI copy, UnsubscribePayload): lost before."""
    one = change(f"type=unsubscribe&date_time=2024-02-28T04:45:41-06:00&contact[id]=5&{quote('list[][id]')}=4"
                 "&initiated_from=public&initiated_by=public")
    assert (one.type, one.details["list_id"]) == ("contact.unsubscribed", "4") and "list_ids" not in one.details
    two = change("type=unsubscribe&date_time=2024-02-28T04:45:41-06:00&contact[id]=5&list[][id]=4&list[][id]=9")
    assert (two.details["list_id"], two.details["list_ids"]) == ("4", ["4", "9"])


def test_orgid_zero_is_no_account():
    c = change(ac_webhooks.body(SAMPLES["gearplug-2017-11-24-deal-add"]))
    assert c.record["account"] is None
    assert change(ac_webhooks.body(SAMPLES["activepieces-2024-02-28-deal-update"])).record["account"] == "1"


CATALOGUE = fields.compact([
    {"id": "27", "title": "Member ID", "perstag": "MEMBER_ID", "type": "text"},
    {"id": "3", "title": "Interests", "perstag": "INTERESTS", "type": "checkbox"},
    {"id": "4", "title": "Date of birth", "perstag": "DATE_OF_BIRTH", "type": "date"},
])


def test_contact_custom_fields_by_id_or_personalisation_tag_are_named_as_the_export_names_them():
    by_id = change("type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=5&contact[fields][27]=m-1"
                   "&contact[fields][3]=||Email||Offers||&contact[fields][99]=kept", CATALOGUE)
    by_tag = change("type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=5&contact[fields][member_id]=m-1"
                    "&contact[fields][interests]=||Email||Offers||&contact[fields][99]=kept", CATALOGUE)
    for c in (by_id, by_tag):
        # the export: customFields {title: value}, customFieldsByTag {perstag: value}, multi-select as a list
        assert c.record["customFields"] == {"Member ID": "m-1", "Interests": ["Email", "Offers"], "99": "kept"}
        assert c.record["customFieldsByTag"] == {"MEMBER_ID": "m-1", "INTERESTS": ["Email", "Offers"]}
        assert sorted(v["field"] for v in c.record["fieldValues"]) == ["27", "3", "99"]   # ids; unknown as sent


@pytest.mark.parametrize("body", [
    "type=deal_add&date_time=2024-02-28T04:45:41-06:00&deal[id]=1&deal[value_raw]=1e200000",
    "type=deal_add&date_time=2024-02-28T04:45:41-06:00&deal[id]=1&deal[value_raw]=" + "9" * 100_000,
    "type=deal_add&date_time=2024-02-28T04:45:41-06:00&deal[id]=1&deal[value]=" + "1" * 100_000 + ".00",
])
def test_numbers_are_read_from_a_few_digits_only(body):
    """1e200000 cost about a second of CPU (Decimal -> int) before; now it is no value, at once."""
    started = time.process_time()
    c = change(body)
    assert time.process_time() - started < 0.05
    assert "value" not in c.record


@pytest.mark.parametrize("date_time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                       "2024-02-30T00:00:00Z", "x" * 10_000, "2024-02-28T04:45:41+25:00"])
def test_unrepresentable_dates_are_a_400(date_time):
    """0001-01-01T00:00:00+01:00 was an OverflowError: a 500."""
    with pytest.raises(BadRequestError):
        change(urlencode({"type": "update", "date_time": date_time, "contact[id]": "1"}))


def test_big_fields_are_cut_and_named_in_truncated():
    long = "\x01" * 60_000          # 3 bytes on the wire, 6 as stored: the feed jam
    body = urlencode({"type": "update", "date_time": "2024-02-28T04:45:41-06:00", "contact[id]": "1",
                      "contact[first_name]": long, "contact[fields][5]": long,
                      **{f"contact[fields][{i}]": "v" * 3000 for i in range(10, 30)}})
    c = change(body)
    stored = json.dumps(c.record, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(stored) <= mapping.MAX_RECORD_BYTES
    assert mapping.size(c.record["firstName"]) <= mapping.MAX_TEXT_BYTES
    assert "record.firstName" in c.details["truncated"] and "record.customFields.5" in c.details["truncated"]
    kept = c.record["customFields"]
    assert 0 < len(kept) < 21 and all(mapping.size(v) <= mapping.MAX_VALUE_BYTES for v in kept.values())
    dropped = [name for name in c.details["truncated"] if name.startswith("record.customFields.")]
    assert len(dropped) >= 21 - len(kept)


def test_counts_are_capped():
    many = {f"account[fields][{i}][key]": f"F{i}" for i in range(mapping.MAX_CUSTOM_FIELDS + 10)}
    c = change(urlencode({"type": "account_add", "date_time": "2024-02-28T04:45:41-06:00", "account[id]": "2",
                          **many, **{f"updated_fields[{i}]": "x" for i in range(150)}}))
    assert len(c.record["customFields"]) == mapping.MAX_CUSTOM_FIELDS
    assert len(c.details["updated_fields"]) == mapping.MAX_LIST_ITEMS
    assert {"record.customFields", "updated_fields"} <= set(c.details["truncated"])


@pytest.mark.parametrize("body", [
    b"type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=1&" + b"a" + b"[x]" * 100_000 + b"=1",
    b"type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=1&" + b"[" * 100_000 + b"=1",
    b"type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=1&contact[" + b"x" * 100_000 + b"]=1",
    b"type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=1&x=%ED%A0%80",     # an encoded surrogate
    b"type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=1&x=\xc3",           # invalid UTF-8
    b"type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=1&x=%ff",
    b"a[b][c][d][e][f]=1",
])
def test_hostile_forms_are_a_400_quickly(body):
    started = time.process_time()
    with pytest.raises(BadRequestError):
        change(body)
    assert time.process_time() - started < 0.2


def test_control_characters_and_odd_shapes_are_stored_not_refused():
    c = change("type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=1&contact[first_name]=a%00b%01"
               "&contact[tags]=x&contact[tags][0]=y&contact[fields]=flat&list=abc&updated_fields=name")
    assert c.record["firstName"] == "a\x00b\x01"
    assert "tags" not in c.record and "fieldValues" not in c.record     # not the shapes AC sends: left out
    assert "list_id" not in c.details and "updated_fields" not in c.details


@pytest.mark.parametrize("char", ["é", "😀", "\x01", "a", '"'])
def test_texts_are_cut_to_their_limit_in_stored_bytes_whatever_the_characters(char):
    c = change(urlencode({"type": "update", "date_time": "2024-02-28T04:45:41-06:00", "contact[id]": "1",
                          "contact[last_name]": char * 5000, "contact[fields][9]": char * 9000}))
    assert mapping.MAX_TEXT_BYTES - 12 <= mapping.size(c.record["lastName"]) <= mapping.MAX_TEXT_BYTES
    assert mapping.size(c.record["customFields"]["9"]) <= mapping.MAX_VALUE_BYTES
    assert set(c.record["lastName"]) == {char}
    assert {"record.lastName", "record.customFields.9"} <= set(c.details["truncated"])
