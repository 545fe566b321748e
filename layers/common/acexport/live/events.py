"""Each stored change as an `ActiveCampaign Change` event on the service's EventBridge bus, so other
services subscribe instead of polling the feed.

`detail`: account_id, owner, workspace_id (and agency_account_id when an agency enabled it for a
sub-account), type, resource, record_id, change_id, cursor, occurred_at. Never the record itself (the feed
has it), never a secret. Consumers filter on `detail.account_id`: the bus is the platform's, the
tenancy is in the detail (docs/live.md).
"""

from __future__ import annotations

from acexport.jobs.messages import emit

CHANGE = "ActiveCampaign Change"


def detail(subscription: dict, change: dict) -> dict:
    out = {"account_id": change["account_id"], "owner": change["owner"],
           "workspace_id": change.get("workspace_id"), "type": change["type"], "resource": change["resource"],
           "record_id": change["record_id"], "change_id": change["_id"], "cursor": str(change["seq"]),
           "occurred_at": change["occurred_at"].isoformat(timespec="seconds").replace("+00:00", "Z")}
    if subscription.get("agency_account_id"):
        out["agency_account_id"] = subscription["agency_account_id"]
    return out


def publish(subscription: dict, change: dict) -> None:
    emit(CHANGE, detail(subscription, change))
