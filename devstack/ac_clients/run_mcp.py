"""ActiveCampaign's own MCP server (`ac-mcp-server`), its read tools called as an agent would call them.

Runs inside the client's venv: python run_mcp.py BASE_URL API_KEY NOT_MODELLED_JSON. Unpatched: the tools read
AC_API_URL and AC_API_TOKEN at import, as the server does.
"""

import json
import os
import sys

BASE, KEY, NOT_MODELLED = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))
os.environ["AC_API_URL"], os.environ["AC_API_TOKEN"] = BASE, KEY

from ac_mcp_server import tools  # noqa: E402  (reads the environment at import)
from ac_mcp_server.types import (  # noqa: E402
    AutomationListParams,
    CampaignListParams,
    ContactAutomationListParams,
    ContactCustomFieldListParams,
    ContactFieldValueListParams,
    ContactListParams,
    EmailActivityListParams,
    GroupListParams,
    ListFilters,
    ListListParams,
    ListOrders,
    TagListParams,
)

CALLS = [
    ("list_contacts", "/contacts", lambda: tools.list_contacts(ContactListParams(limit=5))),
    ("list_contacts(orders score)", "/contacts",
     lambda: tools.list_contacts(ContactListParams(orders={"score": "DESC"}, limit=5))),
    ("list_contacts(segmentid)", "/contacts",
     lambda: tools.list_contacts(ContactListParams(segmentid=1, limit=5))),
    ("list_contacts(filters created_after)", "/contacts",
     lambda: tools.list_contacts(ContactListParams(filters={"created_after": "2024-01-01"}, limit=5))),
    ("get_contact", "/contacts", lambda: tools.get_contact(1)),
    ("list_tags(contains, weight)", "/tags",
     lambda: tools.list_tags(TagListParams(search_filters={"contains": "er"}, order_method="weight"))),
    ("get_tag", "/tags", lambda: tools.get_tag(1)),
    ("list_contact_custom_fields", "/fields",
     lambda: tools.list_contact_custom_fields(ContactCustomFieldListParams(limit=100))),
    ("get_contact_custom_field", "/fields", lambda: tools.get_contact_custom_field(1)),
    ("list_contact_field_values", "/fieldValues",
     lambda: tools.list_contact_field_values(ContactFieldValueListParams(filters={"fieldid": 1}))),
    ("get_contact_field_value", "/fieldValues", lambda: tools.get_contact_field_value(1)),
    ("list_lists(name, weight)", "/lists",
     lambda: tools.list_lists(ListListParams(filters=ListFilters(name="news"), orders=ListOrders(name="weight")))),
    ("get_list", "/lists", lambda: tools.get_list(1)),
    ("list_email_activities", "/emailActivities",
     lambda: tools.list_email_activities(EmailActivityListParams(limit=5))),
    ("list_campaigns", "/campaigns", lambda: tools.list_campaigns(CampaignListParams(limit=5))),
    ("get_campaign", "/campaigns", lambda: tools.get_campaign(1)),
    ("list_automations", "/automations", lambda: tools.list_automations(AutomationListParams(limit=5))),
    ("list_contact_automations", "/contactAutomations",
     lambda: tools.list_contact_automations(ContactAutomationListParams(limit=5))),
    ("list_groups", "/groups", lambda: tools.list_groups(GroupListParams(limit=5))),
]


def summary(out: dict) -> str:
    parts = [f"{k}: {len(v)}" if isinstance(v, list) else f"{k}: id {v.get('id')}" for k, v in out.items()
             if isinstance(v, list) or (isinstance(v, dict) and "id" in v)]
    return ", ".join(parts) or ", ".join(out)


rows = []
for name, path, call in CALLS:
    try:
        rows.append({"name": name, "path": path, "outcome": "ok", "detail": summary(call())})
    except Exception as exc:  # a ToolError carries the client's own wording
        outcome = "not modelled" if path.strip("/") in NOT_MODELLED and "not found" in str(exc) else "FAILED"
        rows.append({"name": name, "path": path, "outcome": outcome, "detail": str(exc)[:110]})
print(json.dumps(rows))
