"""The Protocols of acexport.ports are what the production code and the unit tests' fakes both provide: the AC
client and a FakeAC are `ACCaller`s, the credential store module and FakeCredentialStore `CredentialStore`s,
the job store module and FakeJobStore `JobStore`s. The fakes behave like what they stand for where a unit test
relies on it (tenancy, a repeated request key, AC's paging)."""

from __future__ import annotations

import time

import pytest
from acexport import ports
from acexport.ac.client import ACClient
from acexport.credentials import store as credential_store
from acexport.jobs import store as job_store
from acexport.jobs.store import NoFreeSlot
from acexport.tenancy import Tenant

from tests.fakes import FakeAC, FakeCredentialStore, FakeJobStore

ALICE, BOB = Tenant("account-1", "alice"), Tenant("account-2", "bob")


def reads(reader: ports.ACReader) -> dict:
    """Typed against the port: a type checker holds both the client and the fake to it."""
    return reader.get("/users", [("limit", "100")])


def test_the_ac_client_and_the_fake_are_ac_callers():
    client = ACClient("https://acme.api-us1.com", "k", deadline=time.monotonic() + 5)   # built, never called
    assert isinstance(client, ports.ACCaller) and isinstance(FakeAC(), ports.ACCaller)
    assert reads(FakeAC())["users"][0]["firstName"] == "Ada"


def test_something_without_get_is_not_an_ac_reader():
    class HostOnly:
        host, key_fingerprint = "h", "k"
    assert not isinstance(HostOnly(), ports.ACReader)


def test_the_stores_and_their_fakes_satisfy_the_store_ports():
    assert isinstance(credential_store, ports.CredentialStore)
    assert isinstance(FakeCredentialStore(), ports.CredentialStore)
    assert isinstance(job_store, ports.JobStore) and isinstance(FakeJobStore(), ports.JobStore)
    assert not isinstance(FakeAC(), ports.CredentialStore)


def test_fake_ac_pages_contacts_as_ac_does_and_fails_loud_on_an_unrecorded_path():
    ac = FakeAC()
    first = ac.get("/contacts", [("limit", "2"), ("offset", "0")])
    assert [c["id"] for c in first["contacts"]] == ["5", "6"] and first["meta"]["total"] == "3"
    assert {v["contact"] for v in first["fieldValues"]} == {"5", "6"}
    sliced = ac.get("/contacts", [("id_greater", "5"), ("orders[id]", "DESC"), ("limit", "100")])
    assert [c["id"] for c in sliced["contacts"]] == ["9", "6"] and sliced["meta"]["total"] == "2"
    with pytest.raises(AssertionError, match="no recorded answer for GET /fieldValues"):
        ac.get("/fieldValues")
    assert ac.calls == 3 and ac.paths() == ["/contacts", "/contacts", "/fieldValues"]


def test_the_fake_credential_store_keeps_tenants_apart():
    fake = FakeCredentialStore()
    ac = FakeAC()
    doc = fake.connect(ALICE, ac, api_key="alice-key")
    assert fake.find(BOB) is None and fake.find(ALICE)["_id"] == doc["_id"]
    assert fake.credentials(doc).api_key == "alice-key" and fake.client(doc, deadline=0) is ac
    fake.mark_rejected(ALICE)
    assert fake.find(ALICE)["rejected_at"] is not None


def test_the_fake_job_store_answers_a_repeated_request_key_and_hides_other_tenants_jobs():
    fake = FakeJobStore()
    job = {"_id": "j1", "account_id": "account-1", "owner": "alice", "request_key": "r1"}
    created, new = fake.create(job, slots=1)
    assert new and created["status"] == "queued"
    assert fake.create({**job, "_id": "j2"}, slots=1) == (created, False)
    with pytest.raises(NoFreeSlot):
        fake.create({**job, "_id": "j3", "request_key": "r3"}, slots=1)
    assert fake.get_for(BOB, "j1") is None and fake.cancel(BOB, "j1") is None
    assert fake.cancel(ALICE, "j1")["status"] == "cancelled" and fake.get("j1")["status"] == "cancelled"
