"""The requests three real AC clients send (tests/fixtures/ac_clients/, each with the client's source), replayed
byte for byte against the sandbox: every one gets the answer AC gives it, in AC's shapes. `make ac-clients`
runs the clients themselves."""

import json
from pathlib import Path

import pytest
import requests

from devstack.ac_sandbox import ACSandbox

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ac_clients"
KEY = "sandbox-key"


def _recorded():
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        assert data["sources"] and data["requests"], path.name
        for request in data["requests"]:
            yield pytest.param(request, id=f"{path.stem}: {request['name']}")


@pytest.fixture(scope="module")
def sandbox():
    with ACSandbox(rate_limit=None, contacts=150, deals=40) as sb:
        yield sb


def _id(value) -> bool:
    return isinstance(value, str) and value.isdigit()


def _shape_problems(body: dict, expect: dict) -> list[str]:
    problems = []
    if key := expect.get("collection"):
        items = body.get(key)
        if not isinstance(items, list) or not (items or expect.get("may_be_empty")):
            return [f"{key} is empty or not a list"]
        total = body.get("meta", {}).get("total")
        # meta.total: an int on /deals, a string elsewhere (AC reference examples; docs/ac-behaviour.md)
        if not (isinstance(total, int) if key in ("deals", "webhookEvents") else isinstance(total, str)):
            problems.append(f"meta.total {total!r}")
        problems += [f"{key} item without a string id: {item}" for item in items
                     if not isinstance(item, dict) or not _id(item.get("id"))]
        problems += [f"{key} item without {name}" for name in expect.get("record_keys", ())
                     for item in items if not item.get(name)]
        problems += [f"no {name} beside {key}" for name in expect.get("also", ()) if not body.get(name)]
    if key := expect.get("record"):
        record = body.get(key)
        if not isinstance(record, dict) or not _id(record.get("id")):
            problems.append(f"{key} is not one record with a string id")
    return problems


@pytest.mark.parametrize("request_", list(_recorded()))
def test_a_recorded_client_request_gets_acs_answer(sandbox, request_):
    expect = request_["expect"]
    url = f"{sandbox.base_url}{request_['path']}" + (f"?{request_['query']}" if request_["query"] else "")
    reply = requests.request(request_["method"], url, timeout=10,
                             headers={"Api-Token": KEY, "Accept": "application/json"})
    assert reply.status_code == expect["status"], reply.text[:300]
    assert reply.headers["Content-Type"] == "application/json"
    body = reply.json()
    if expect.get("not_modelled"):
        assert "does not model" in body["message"]
    if "message" in expect:
        assert body == {"message": expect["message"]}
    assert _shape_problems(body, expect) == []


def test_the_replay_reaches_the_sandbox_as_recorded(sandbox):
    """The raw query strings arrive as the clients send them (Singer's unencoded brackets included)."""
    sandbox.requests.clear()
    requests.get(f"{sandbox.base_url}/api/3/contacts?offset=0&limit=100&filters[updated_after]=2019-01-01T00:00:00Z",
                 headers={"Api-Token": KEY}, timeout=10)
    assert sandbox.requests[-1].query == [("offset", "0"), ("limit", "100"),
                                          ("filters[updated_after]", "2019-01-01T00:00:00Z")]


def test_the_shape_check_catches_drift():
    assert _shape_problems({"lists": [{"id": 1}], "meta": {"total": "1"}}, {"collection": "lists"}) != []
    assert _shape_problems({"deals": [{"id": "1"}], "meta": {"total": "1"}}, {"collection": "deals"}) != []
    assert _shape_problems({"lists": [{"id": "1"}], "meta": {"total": "1"}},
                           {"collection": "lists", "record_keys": ["updated_timestamp"]}) != []
    assert _shape_problems({"tag": {"id": "2"}}, {"record": "tag"}) == []


def test_make_ac_clients_says_why_a_client_cannot_run(monkeypatch):
    from devstack import ac_clients
    from devstack.ac_clients import __main__ as runner

    assert "ac-clients" in ac_clients.__doc__ or "make ac-clients" in ac_clients.__doc__
    monkeypatch.setattr(runner, "find_python", lambda version: None)
    python, why = runner.install(runner.Client("nowhere", "no-such-client==0.0.1", "3.10", "run_none.py"))
    assert python is None and "no Python 3.10" in why and "no-such-client==0.0.1" in why
    rows = [{"name": "contacts", "outcome": "ok", "detail": "120 records"}]
    assert "contacts" in runner.table(runner.CLIENTS[0], rows) and "tap-activecampaign" in runner.table(
        runner.CLIENTS[0], rows)
