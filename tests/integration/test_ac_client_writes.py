"""ACClient.request for the calls that change something at AC (webhooks: docs/live.md), against the AC
sandbox over real HTTP: a create is never sent twice after an answer that may mean AC acted, a 429 is
waited out, and a 404 for something already gone can be an answer rather than an error."""

from __future__ import annotations

import pytest
from acexport import caches
from acexport.ac import client as ac_client
from acexport.ac.client import ACClient
from acexport.ac.ratelimit import SlidingWindowLimiter
from acexport.errors import UpstreamUnavailableError

from devstack.ac_sandbox import ACSandbox

HOOK = {"webhook": {"name": "n", "url": "https://hooks.example/x", "events": ["update"], "sources": ["admin"]}}


@pytest.fixture(autouse=True)
def limiter(monkeypatch, clock):
    # the sandbox is on loopback: the local switch lets the client connect there (the second security round's address
    # check)
    monkeypatch.setenv("ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL", "true")
    caches.reset()
    monkeypatch.setattr(ac_client, "_limiter", SlidingWindowLimiter(5, clock=clock, sleep=clock.sleep))
    yield
    caches.reset()


@pytest.fixture(scope="module")
def ac():
    with ACSandbox(rate_limit=None, contacts=3, deals=2, accounts=1) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(ac):
    ac.reset()
    return ac


def client(clock, sandbox) -> ACClient:
    return ACClient(sandbox.base_url, "sandbox-key", deadline=clock() + 30, clock=clock, sleep=clock.sleep)


def test_a_create_is_not_sent_again_after_a_5xx(clock, sandbox):
    sandbox.inject(502, path="/webhooks")
    with pytest.raises(UpstreamUnavailableError):
        client(clock, sandbox).request("POST", "/webhooks", json=HOOK, idempotent=False)
    assert sandbox.count("/webhooks") == 1 and sandbox.webhooks == {}


def test_a_create_waits_out_a_429_and_is_sent_once_more(clock, sandbox):
    sandbox.inject(429, path="/webhooks", retry_after=1)
    created = client(clock, sandbox).request("POST", "/webhooks", json=HOOK, idempotent=False)
    assert created["webhook"]["id"] == "1" and sandbox.count("/webhooks") == 2 and len(sandbox.webhooks) == 1


def test_reads_are_still_retried(clock, sandbox):
    sandbox.inject(502, path="/webhook/events")
    assert "update" in client(clock, sandbox).request("GET", "/webhook/events")["webhookEvents"]
    assert sandbox.count("/webhook/events") == 2


def test_missing_ok_reads_acs_json_404_as_none(clock, sandbox):
    ac = client(clock, sandbox)
    assert ac.request("DELETE", "/webhooks/99", missing_ok=True) is None
    with pytest.raises(UpstreamUnavailableError, match="404"):
        ac.request("DELETE", "/webhooks/99")
    created = ac.request("POST", "/webhooks", json=HOOK, idempotent=False)["webhook"]
    assert ac.request("DELETE", f"/webhooks/{created['id']}", missing_ok=True) == {}
    assert sandbox.webhooks == {}
