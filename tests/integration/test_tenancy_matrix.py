"""Users x accounts x sub-accounts x routes: each caller reaches exactly its own connection, and AC is
only ever called with that connection's key."""

import os

import pytest

ROUTES = [("GET", "/export/contacts"), ("GET", "/export/deals"), ("GET", "/export/accounts"), ("GET", "/auth")]

# (uid, token account, X-Sub-Account-Id) → the tenant (account, owner) it must act as, or None (403).
PRINCIPALS = {
    ("u1", "A", None): ("A", "u1"),
    ("u2", "A", None): ("A", "u2"),
    ("u1", "B", None): ("B", "u1"),
    ("u1", "A", "A1"): ("A1", "u1"),      # agency acting on its sub-account
    ("u1", "A1", None): ("A1", "u1"),     # the sub-account's own session: the same connection
    ("u2", "A", "A2"): ("A2", "u2"),
    ("u1", "B", "B1"): ("B1", "u1"),
    ("u1", "B", "A1"): None,              # another agency's sub-account
    ("u1", "A1", "A2"): None,             # a sibling sub-account
    ("u2", "A", "B1"): None,
    ("u1", "A1", "A"): None,              # a sub-account naming its parent
}
TENANTS = sorted({t for t in PRINCIPALS.values() if t})


def key_of(tenant):
    return f"key-{tenant[0]}-{tenant[1]}"


@pytest.fixture
def world(api, mongo):
    api.lift_rate_limit()  # the matrix checks who reaches which connection, not AC's 5 req/s
    mongo[os.environ.get("ACCOUNTS_COLLECTION", "accounts")].insert_many([
        {"_id": "A1", "parent_account": "A"}, {"_id": "A2", "parent_account": "A"},
        {"_id": "B1", "parent_account": "B"}])
    for tenant in TENANTS:
        api.sandbox.add_key(key_of(tenant))
    for principal, tenant in PRINCIPALS.items():
        if tenant and principal == next(p for p, t in PRINCIPALS.items() if t == tenant):
            reply = call(api, principal, "POST", "/auth",
                         json={"api_key": key_of(tenant), "base_url": api.sandbox.base_url})
            assert reply.status_code == 200, (principal, reply.text)
    return api


def call(api, principal, method, path, **kwargs):
    uid, account, sub = principal
    headers = {"X-Sub-Account-Id": sub} if sub else {}
    return api.call(method, path, token=api.token(uid, account), headers=headers, **kwargs)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
@pytest.mark.parametrize("principal", list(PRINCIPALS), ids=lambda p: "-".join(x or "_" for x in p))
def test_each_caller_reaches_only_its_own(world, mongo, principal):
    tenant = PRINCIPALS[principal]
    for method, path in ROUTES:
        world.sandbox.requests.clear()
        reply = call(world, principal, method, path)
        if tenant is None:
            assert reply.status_code == 403, (method, path, reply.text)
            assert world.sandbox.count() == 0
            continue
        assert reply.status_code == 200, (method, path, reply.text)
        used = {r.api_key for r in world.sandbox.requests}
        assert used <= {key_of(tenant)}, f"{principal} reached AC with {used}"
        if path == "/auth":
            assert reply.json()["data"]["connected"] is True

    collection = mongo[os.environ["CREDENTIALS_COLLECTION"]]
    before = {(d["account_id"], d["owner"]) for d in collection.find({})}
    reply = call(world, principal, "DELETE", "/auth")
    after = {(d["account_id"], d["owner"]) for d in collection.find({})}
    if tenant is None:
        assert reply.status_code == 403 and after == before
    else:
        assert reply.status_code == 200 and before - after == {tenant}
