"""AC's webhook deliveries read into changes: the raw form bodies public sources show (GearPlug's 2017
fixtures, as quoted in docs/live.md), the mapping onto the export's field names, and what is refused."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import pytest
from acexport.errors import BadRequestError
from acexport.live import form, mapping

FORM = "application/x-www-form-urlencoded"
RECEIVED = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

# GearPlug's raw `subscribe` fixture (contact added by an admin, no list).
SUBSCRIBE = ("type=subscribe&date_time=2017-11-27T12:51:37-06:00&initiated_by=admin&initiated_from=admin&list=0"
             "&contact[id]=119&contact[email]=daysy@grplug.com&contact[first_name]=&contact[last_name]="
             "&contact[phone]=&contact[tags]=&contact[ip]=0.0.0.0&contact[orgname]=&orgname=")
# GearPlug's raw `deal_update` fixture.
DEAL_UPDATE = (
    "type=deal_update&date_time=2017-11-28T09:03:08-06:00&initiated_by=admin&initiated_from=admin&list=0"
    "&deal[id]=2&deal[title]=deal5&deal[create_date]=2017-11-24 14:18:04"
    "&deal[create_date_iso]=2017-11-24T14:18:04-06:00"
    "&deal[orgid]=0&deal[orgname]=&deal[stageid]=1&deal[stage_title]=To Contact&deal[pipelineid]=1"
    "&deal[pipeline_title]=my_pipeline&deal[value]=100.00&deal[value_raw]=100&deal[currency]=usd"
    "&deal[currency_symbol]=$&deal[owner]=1&deal[owner_firstname]=TestGearplug&deal[owner_lastname]="
    "&deal[contactid]=27&deal[contact_email]=diego@gmail.com&deal[contact_firstname]=diego@gmail.com"
    "&deal[contact_lastname]=&deal[status]=0"
    "&updated_fields[0]=title&updated_fields[1]=mdate&updated_fields[2]=nextdate&updated_fields[3]=stage"
    "&updated_fields[4]=contact"
    "&contact[id]=27&contact[email]=diego@gmail.com&contact[first_name]=diego@gmail.com&contact[last_name]="
    "&contact[phone]=&contact[tags]=&contact[ip]=0.0.0.0&contact[orgname]=&contact[fields][1]=field1"
    "&contact[fields][2]=field2&orgname=")


def change(body: str) -> mapping.Change:
    return mapping.change(form.parse(body.encode(), FORM), received_at=RECEIVED)


def test_the_raw_subscribe_fixture_is_a_new_contact():
    c = change(SUBSCRIBE)
    assert (c.type, c.resource, c.record_id, c.initiated_by) == ("contact.created", "contact", "119", "admin")
    assert c.occurred_at == dt.datetime(2017, 11, 27, 18, 51, 37, tzinfo=dt.UTC)   # -06:00 read, kept as UTC
    assert c.record == {"id": "119", "email": "daysy@grplug.com", "firstName": "", "lastName": "", "phone": "",
                        "orgname": "", "ip": "0.0.0.0", "tags": []}


def test_the_raw_deal_update_fixture_in_export_names():
    c = change(DEAL_UPDATE)
    assert (c.type, c.resource, c.record_id) == ("deal.updated", "deal", "2")
    assert c.record == {"id": "2", "title": "deal5", "cdate": "2017-11-24T14:18:04-06:00", "account": None,
                        "stage": "1", "stageTitle": "To Contact", "group": "1", "pipelineTitle": "my_pipeline",
                        "currency": "usd", "owner": "1", "contact": "27", "status": "0", "value": "10000",
                        "ownerName": "TestGearplug"}
    assert c.details == {"updated_fields": ["title", "mdate", "nextdate", "stage", "contact"]}


@pytest.mark.parametrize(("display", "raw", "cents"), [
    ("1,044,055.00", "1044055", "104405500"),     # Activepieces' sample: whole units in value_raw
    ("100.50", "100", "10050"),                   # the display string carries the cents when it agrees
    ("100,50", "100", "10000"),                   # a display format not read: value_raw x 100
    ("", "7", "700"),
    ("9.99", "", "999"),
])
def test_deal_value_becomes_cents_as_the_export_gives_it(display, raw, cents):
    body = urlencode({"type": "deal_add", "date_time": "2024-02-28T04:45:41-06:00", "deal[id]": "9",
                      "deal[value]": display, "deal[value_raw]": raw})
    assert change(body).record["value"] == cents


def test_tags_custom_fields_and_tag_events():
    body = urlencode({"type": "contact_tag_added", "date_time": "2024-02-28T04:45:41-06:00", "tag": "vip",
                      "contact[id]": "5", "contact[tags]": "customer, vip", "contact[fields][27]": "blue",
                      "contact[fields][3]": "||a||b||"})
    c = change(body)
    assert c.type == "contact.tag_added" and c.details == {"tag": "vip"}
    assert c.record["tags"] == ["customer", "vip"]
    # no field catalogue here: the keys are kept as sent, in index order
    assert c.record["fieldValues"] == [{"field": "3", "value": "||a||b||"}, {"field": "27", "value": "blue"}]
    assert c.record["customFields"] == {"3": "||a||b||", "27": "blue"} and c.record["customFieldsByTag"] == {}


def test_deal_and_account_custom_fields_by_label():
    body = urlencode({"type": "account_update", "date_time": "2024-02-28T06:44:32-06:00", "account[id]": "4",
                      "account[name]": "Acme", "account[fields][0][id]": "1",
                      "account[fields][0][key]": "Region", "account[fields][0][value]": "EMEA",
                      "updated_fields[0]": "name"})
    c = change(body)
    assert (c.type, c.record) == ("account.updated", {"id": "4", "name": "Acme", "customFields": {"Region": "EMEA"}})


def test_list_subscription_and_unsubscribe_carry_the_list():
    base = {"date_time": "2017-11-27T12:51:37-06:00", "contact[id]": "1", "list": "3"}
    assert (change(urlencode({**base, "type": "subscribe"})).type, change(urlencode({**base, "type": "subscribe"}))
            .details) == ("contact.subscribed", {"list_id": "3"})
    assert change(urlencode({**base, "type": "unsubscribe"})).type == "contact.unsubscribed"


def test_a_date_without_offset_is_the_receive_time():
    body = urlencode({"type": "update", "date_time": "2024-02-28T04:45:41", "contact[id]": "1"})
    assert change(body).occurred_at == RECEIVED


@pytest.mark.parametrize("body", [
    "",                                                                       # empty
    "type=update&contact[id]=1",                                              # no date_time
    "type=update&date_time=yesterday&contact[id]=1",                          # not a date
    "type=sent&date_time=2024-02-28T04:45:41-06:00&campaign[id]=1",           # not an event we map
    "date_time=2024-02-28T04:45:41-06:00&contact[id]=1",                      # no type
    "type=update&date_time=2024-02-28T04:45:41-06:00",                        # no record
    "type=update&date_time=2024-02-28T04:45:41-06:00&contact[id]=x1",         # not an id
    "type=deal_add&date_time=2024-02-28T04:45:41-06:00&contact[id]=1",        # the wrong block
    "type=update&date_time=2024-02-28T04:45:41-06:00&contact=1",              # a block that is not one
    "type=update&&&=&date_time",                                              # not a form
    "type=update&date_time=2024-02-28&contact[id]=1&a[b][c][d][e][f]=1",      # nested deeper than AC's five
])
def test_malformed_deliveries_are_400(body):
    with pytest.raises(BadRequestError):
        change(body)


def test_only_form_bodies_are_read():
    with pytest.raises(BadRequestError):
        form.parse(b'{"type": "update"}', "application/json")
    with pytest.raises(BadRequestError):
        form.parse(b"type=update&x=\xff", FORM)
    assert form.parse(b"a[b]=1&a[c][0]=2", "application/x-www-form-urlencoded; charset=utf-8") == \
        {"a": {"b": "1", "c": {"0": "2"}}}


def test_too_many_fields_are_refused():
    with pytest.raises(BadRequestError):
        form.parse("&".join(f"f{i}=1" for i in range(form.MAX_FIELDS + 1)).encode(), FORM)
