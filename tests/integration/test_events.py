"""Each events/<function>.json (what `sam local invoke -e` would send) runs through its real handler,
invoked the way Lambda invokes it (no HTTP, no API Gateway in front)."""

import json
from pathlib import Path

import pytest

EVENTS = Path(__file__).resolve().parents[2] / "events"
FUNCTIONS = {
    "authorizer": "AuthorizerFunction", "save_auth": "SaveAuthFunction", "delete_auth": "DeleteAuthFunction",
    "auth_status": "AuthStatusFunction", "export_contacts": "ExportContactsFunction",
    "export_deals": "ExportDealsFunction", "export_accounts": "ExportAccountsFunction",
    # full exports: their events run through their handlers in test_jobs.py
    "export_job_start": "ExportJobStartFunction", "export_job_status": "ExportJobStatusFunction",
    "export_job_list": "ExportJobListFunction", "export_job_cancel": "ExportJobCancelFunction",
    "export_worker": "ExportWorkerFunction", "export_job_events": "ExportJobEventsFunction",
    "export_job_dead_letters": "ExportJobDeadLettersFunction",
    # live changes: their events run through their handlers in test_live.py
    "live_enable": "LiveEnableFunction", "live_status": "LiveStatusFunction",
    "live_disable": "LiveDisableFunction", "live_changes": "LiveChangesFunction",
    "hooks_receiver": "HooksReceiverFunction",
    # the database setup, invoked directly (sam remote invoke): tests/integration/test_setup_db_function.py
    "setup_db": "SetupDbFunction",
    # the reconcile: its events run through their handlers in test_reconcile.py
    "changes_reconcile": "ChangesReconcileFunction", "reconcile_schedule": "ReconcileScheduleFunction",
}


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def invoke(stack, name: str, payload: dict) -> dict:
    reply = stack.api.invoke(FUNCTIONS[name], payload)
    if "body" in reply:
        reply["json"] = json.loads(reply["body"])
    return reply


def test_every_function_has_an_event():
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(FUNCTIONS)


def test_authorizer_event(api):
    """The sample token is signed with the dev secret (what the local stack uses), so it authorizes."""
    payload = event("authorizer")
    caller = {"uid": "dev-user", "account_id": "dev-account", "workspace_id": "dev-workspace"}
    assert invoke(api.stack, "authorizer", payload) == {"isAuthorized": True, "context": caller}
    head, signature = payload["headers"]["authorization"].rsplit(".", 1)
    forged = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"   # one character of the signature
    payload["headers"]["authorization"] = forged
    payload["identitySource"] = [forged]
    assert invoke(api.stack, "authorizer", payload) == {"isAuthorized": False}


@pytest.mark.slow  # >= 1 s of real waiting
def test_connection_events_round_trip(api, mongo):
    save = event("save_auth")
    body = json.loads(save["body"])
    assert body["base_url"] == "http://127.0.0.1:8010"   # make dev's sandbox; here another port
    save["body"] = json.dumps({**body, "base_url": api.sandbox.base_url})   # the stand-in instead of AC
    saved = invoke(api.stack, "save_auth", save)
    assert saved["statusCode"] == 200, saved
    assert saved["json"]["data"]["connected"] is True

    status = invoke(api.stack, "auth_status", event("auth_status"))
    assert status["json"]["data"]["base_url"] == api.sandbox.base_url

    again = invoke(api.stack, "save_auth", save)
    assert again["statusCode"] == 409

    for name in ("export_contacts", "export_deals", "export_accounts"):
        reply = invoke(api.stack, name, event(name))
        assert reply["statusCode"] == 200, (name, reply)
        assert reply["json"]["success"] is True and reply["json"]["pagination"]["page"] == "1"

    contacts = invoke(api.stack, "export_contacts", event("export_contacts"))["json"]["data"]   # firstName=John
    assert contacts and all(c["firstName"].casefold() == "john" for c in contacts)
    accounts = invoke(api.stack, "export_accounts", event("export_accounts"))["json"]["data"]
    assert [a["name"] for a in accounts] == ["Acme Corporation"]

    assert invoke(api.stack, "delete_auth", event("delete_auth"))["statusCode"] == 200
    assert invoke(api.stack, "delete_auth", event("delete_auth"))["statusCode"] == 404


@pytest.mark.parametrize("name", ["save_auth", "auth_status", "export_contacts"])
def test_event_without_authorizer_context_is_refused(api, name):
    payload = event(name)
    payload["requestContext"].pop("authorizer")
    reply = invoke(api.stack, name, payload)
    assert reply["statusCode"] == 403 and reply["json"]["message"] == "Missing caller identity"


def test_setup_db_event(api):
    """`{}`: create every index (the deploy already did, so nothing changes) and say so."""
    reply = invoke(api.stack, "setup_db", event("setup_db"))
    assert (reply["ok"], reply["exit_code"], reply["check_only"]) == (True, 0, False)
    assert reply["report"][-1] == "Indexes ready."
