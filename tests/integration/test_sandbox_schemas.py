"""The stand-in's records held to public schemas of AC records that nobody here wrote, so the sandbox cannot
drift from AC's real shapes unnoticed. Field names and types are taken (not copied) from:

- [AB] Airbyte `airbytehq/airbyte` airbyte-integrations/connectors/source-activecampaign/manifest.yaml
  (commit 058c738): raw AC field names, `additionalProperties: true`; "S" = ["string"], "S?" = ["string",
  "null"], etc.; `required` lists as declared there.
- [SG] Singer `singer-io/tap-activecampaign` tap_activecampaign/schemas/<stream>.json (commit 0b311b6 unless
  noted): records after the tap's transform (camelCase -> snake_case, `links` dropped), every type nullable;
  its "integer" is a numeric string at AC (the tap coerces), so "I" accepts an int or a string of digits.
- [DOC] AC's own reference where it disagrees with a connector (noted at the field).
Summary and sources: /tmp/research/ac-records.md §13 (copied into docs/query.md's evidence table).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests

from devstack.ac_sandbox import ACSandbox

KEY = {"Api-Token": "sandbox-key"}


def _digits(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and v.lstrip("-").isdigit())


def _datetime(v) -> bool:
    try:
        dt.datetime.fromisoformat(str(v).replace(" ", "T"))
        return True
    except ValueError:
        return False


CHECKS = {
    "S": lambda v: isinstance(v, str), "S?": lambda v: v is None or isinstance(v, str),
    "B": lambda v: isinstance(v, bool), "B?": lambda v: v is None or isinstance(v, bool),
    "N": lambda v: v is None,                                   # [AB] contacts.organization: "null" only
    "I?": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    "O": lambda v: isinstance(v, dict), "O?": lambda v: v is None or isinstance(v, dict),
    "AS": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    # [SG] types (all nullable): I = integer (AC: numeric string), T = date-time, s = string
    "I": lambda v: v is None or _digits(v), "T": lambda v: v is None or _datetime(v),
    "s": lambda v: v is None or isinstance(v, str),
}


def decamelize(name: str) -> str:
    """humps.decamelize, as the Singer tap applies it to AC's names."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def check(record: dict, types: dict[str, str], *, required=(), singer=False) -> list[str]:
    names = {decamelize(k): v for k, v in record.items()} if singer else record
    problems = [f"missing {name}" for name in required if name not in names]
    for name, kind in types.items():
        if name in names and not CHECKS[kind](names[name]):
            problems.append(f"{name}={names[name]!r} is not {kind}")
    return problems


# ---- [AB] contacts: every field of the manifest's schema, all required there ----------------------------
AB_CONTACT = {**dict.fromkeys(
    ["id", "cdate", "udate", "email", "phone", "firstName", "lastName", "orgid", "orgname", "segmentio_id",
     "bounced_hard", "bounced_soft", "ip", "hash", "email_local", "email_domain", "sentcnt", "gravatar", "deleted",
     "anonymized", "mpp_tracking", "created_timestamp", "updated_timestamp", "created_utc_timestamp",
     "updated_utc_timestamp"], "S"),
    **dict.fromkeys(["adate", "bounced_date", "edate", "deleted_at", "rating_tstamp", "socialdata_lastcheck",
                     "ua", "created_by", "updated_by"], "S?"),
    "email_empty": "B", "organization": "N", "scoreValues": "AS", "accountContacts": "AS", "links": "O"}
AB_CONTACT_REQUIRED = [*AB_CONTACT]   # [AB] lists every one of them in `required`
AB_CONTACT_LINKS = ["bounceLogs", "contactAutomations", "contactData", "contactGoals", "contactLists", "contactLogs",
                    "contactTags", "contactDeals", "deals", "fieldValues", "geoIps", "notes", "organization",
                    "plusAppend", "trackingLogs", "scoreValues", "accountContacts", "automationEntryCounts"]

# ---- [AB] deals (required: id) ---------------------------------------------------------------------------
AB_DEAL = {**dict.fromkeys(
    ["account", "activitycount", "cdate", "contact", "currency", "customerAccount", "description", "edate", "group",
     "hash", "mdate", "nextTask", "nextdate", "nextdealid", "nexttaskid", "organization", "owner", "percent",
     "stage", "status", "title", "value", "winProbabilityMdate"], "S?"),
    "id": "S", "isDisabled": "B?", "winProbability": "I?", "links": "O"}
AB_DEAL_LINKS = ["account", "contact", "contactDeals", "customerAccount", "dealActivities", "dealCustomFieldData",
                 "group", "nextTask", "notes", "organization", "owner", "scoreValues", "stage", "tasks"]

# ---- [AB] accounts and lists (required: id) ----------------------------------------------------------------
AB_ACCOUNT = {"id": "S", **dict.fromkeys(["name", "accountUrl", "createdTimestamp", "updatedTimestamp",
                                          "contactCount", "dealCount"], "S?"), "links": "O?"}
AB_LIST = {"id": "S", **dict.fromkeys(["stringid", "name", "userid", "user", "cdate", "udate", "p_use_tracking",
                                       "sender_name", "sender_addr1", "to_name", "optinoptout", "private"], "S?"),
           "links": "O"}

# ---- [SG] the sideloads and reference collections -----------------------------------------------------------
SG_CONTACT_TAG = {"contact": "I", "tag": "I", "cdate": "T", "created_timestamp": "T", "updated_timestamp": "T",
                  "created_by": "I", "updated_by": "I", "id": "I"}
SG_CONTACT_LIST = {"contact": "I", "list": "I", "form": "I", "seriesid": "I", "sdate": "T", "udate": "T",
                   "status": "I", "responder": "I", "sync": "I", "unsubreason": "s", "campaign": "I", "message": "I",
                   "first_name": "s", "last_name": "s", "sourceid": "I", "created_timestamp": "T",
                   "updated_timestamp": "T", "created_by": "I", "updated_by": "I", "id": "I", "automation": "I"}
SG_TAG = {"tag_type": "s", "tag": "s", "description": "s", "cdate": "T", "created_timestamp": "T",
          "updated_timestamp": "T", "created_by": "I", "updated_by": "I", "id": "I"}
SG_USER = {"username": "s", "first_name": "s", "last_name": "s", "email": "s", "phone": "s", "signature": "s",
           "id": "I"}                                                # [SG] users.json, commit d1bb8ac
SG_DEAL_VALUE = {"id": "I", "deal_custom_field_metum_id": "I", "deal_id": "I", "custom_field_id": "I",
                 "created_timestamp": "T", "updated_timestamp": "T", "field_value": "s"}
SG_ACCOUNT_VALUE = {"id": "I", "account_custom_field_metum_id": "I", "account_id": "I", "custom_field_id": "I",
                    "created_timestamp": "T", "updated_timestamp": "T", "field_value": "s"}
SG_CUSTOM_FIELD = {"id": "I", "field_label": "s", "field_type": "s", "personalization": "s", "display_order": "I",
                   "created_timestamp": "T", "updated_timestamp": "T"}  # [SG] account_custom_fields.json
SG_ACCOUNT_CONTACT = {"account": "I", "contact": "I", "id": "I", "job_title": "s", "created_timestamp": "T",
                      "updated_timestamp": "T"}
SG_ACCOUNT = {"name": "s", "account_url": "s", "created_timestamp": "T", "updated_timestamp": "T",
              "contact_count": "I", "deal_count": "I", "id": "I"}
SG_DEAL = {"owner": "I", "contact": "I", "organization": "I", "group": "I", "stage": "I", "title": "s",
           "description": "s", "cdate": "T", "mdate": "T", "nexttaskid": "I", "currency": "s", "status": "I",
           "activitycount": "I", "nextdealid": "I", "edate": "T", "id": "I", "account": "I",
           "customer_account": "I"}
SG_LIST = {"stringid": "s", "userid": "I", "name": "s", "cdate": "T", "udate": "T", "private": "I",
           "created_timestamp": "T", "updated_timestamp": "T", "created_by": "I", "updated_by": "I", "id": "I",
           "user": "I"}                                              # [SG] lists.json
SG_FIELD = {"title": "s", "descript": "s", "type": "s", "isrequired": "I", "perstag": "s", "defval": "s",
            "visible": "I", "ordernum": "I", "cdate": "s", "udate": "s", "id": "I"}   # contact_custom_fields.json
SG_FIELD_OPTION = {"field": "I", "orderid": "I", "value": "s", "label": "s", "isdefault": "I", "cdate": "s",
                   "udate": "s", "id": "I"}                          # [SG] contact_custom_field_options.json
SG_FIELD_REL = {"field": "I", "relid": "I", "dorder": "I", "cdate": "s", "id": "I"}   # contact_custom_field_rels


@pytest.fixture(scope="module")
def ac():
    sandbox = ACSandbox(rate_limit=None, contacts=150, deals=120, accounts=30).start()
    yield lambda path, **params: requests.get(f"{sandbox.base_url}/api/3{path}", params={"limit": 100, **params},
                                              headers=KEY, timeout=10).json()
    sandbox.stop()


def test_contacts_match_airbyte_and_their_sideloads_match_singer(ac):
    body = ac("/contacts", include="fieldValues,contactTags,contactLists")
    assert body["contacts"] and body["contactTags"] and body["contactLists"]
    for contact in body["contacts"]:
        assert check(contact, AB_CONTACT, required=AB_CONTACT_REQUIRED) == [], contact["id"]
        assert set(AB_CONTACT_LINKS) <= set(contact["links"])
    for item in body["contactTags"]:
        assert check(item, SG_CONTACT_TAG, singer=True) == []
    for item in body["contactLists"]:
        assert check(item, SG_CONTACT_LIST, singer=True) == []


def test_deals_match_airbyte_and_singer_and_stubs_are_the_documented_three_fields(ac):
    deals = ac("/deals", include="dealCustomFieldData")
    stubs = [d for d in deals["deals"] if d.get("isDisabled") == 1]
    assert len(stubs) >= 10
    for deal in deals["deals"]:
        if deal in stubs:
            # [DOC] list example {"id":"2","isDisabled":1,"title":"Demo Requested"}: int 1, where [AB] says
            # boolean and [SG] boolean; AC's single-deal example uses true. The stand-in follows the list doc.
            assert set(deal) == {"id", "isDisabled", "title"}
            continue
        assert check(deal, AB_DEAL, required=["id"]) == [], deal["id"]
        assert set(AB_DEAL_LINKS) <= set(deal["links"])
        assert check(deal, SG_DEAL, singer=True) == [], deal["id"]
    for item in deals["dealCustomFieldData"]:
        assert check(item, SG_DEAL_VALUE, singer=True) == []


def test_accounts_lists_and_reference_data_match(ac):
    for account in ac("/accounts", count_deals="true")["accounts"]:
        assert check(account, AB_ACCOUNT, required=["id"]) == []
        assert check(account, SG_ACCOUNT, singer=True) == []
    for item in ac("/lists")["lists"]:
        assert check(item, AB_LIST, required=["id"]) == []
        assert check(item, SG_LIST, singer=True, required=["created_timestamp", "updated_timestamp"]) == []
    fields = ac("/fields")
    assert fields["fieldOptions"] and fields["fieldRels"]
    for key, schema in (("fields", SG_FIELD), ("fieldOptions", SG_FIELD_OPTION), ("fieldRels", SG_FIELD_REL)):
        for item in fields[key]:
            assert check(item, schema, singer=True, required=[*schema]) == [], (key, item)
    checks = [("/tags", "tags", SG_TAG), ("/users", "users", SG_USER),
              ("/dealCustomFieldMeta", "dealCustomFieldMeta", SG_CUSTOM_FIELD),
              ("/accountCustomFieldMeta", "accountCustomFieldMeta", SG_CUSTOM_FIELD),
              ("/accountCustomFieldData", "accountCustomFieldData", SG_ACCOUNT_VALUE),
              ("/accountContacts", "accountContacts", SG_ACCOUNT_CONTACT)]
    for path, key, schema in checks:
        items = ac(path)[key]
        assert items, path
        for item in items:
            assert check(item, schema, singer=True) == [], (path, item)


def test_the_checker_catches_drift():
    """A wrong type, a missing required field and a camelCase slip are all reported."""
    assert check({"id": 3}, AB_ACCOUNT, required=["id"]) == ["id=3 is not S"]
    assert check({}, AB_ACCOUNT, required=["id"]) == ["missing id"]
    assert check({"dealId": "x"}, SG_DEAL_VALUE, singer=True) == ["deal_id='x' is not I"]
    assert check({"cdate": "yesterday"}, SG_CONTACT_TAG, singer=True) == ["cdate='yesterday' is not T"]
