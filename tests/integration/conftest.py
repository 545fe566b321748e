"""The whole stack for integration tests, started once: the local API Gateway (routes, handlers and
authorizer read from template.yaml), a real Mongo wire server (nx-27017, or MongoDB: `MONGODB_URI`), moto's
server for KMS, and the AC stand-in over real HTTP on loopback. Each test starts from a clean store and a
reset stand-in."""

from __future__ import annotations

import os

import pytest
import requests

from devstack.stack import LocalStack, mint_token
from tests.openapi_check import check_response

BASE = "/v1/integrations/activecampaign"
DEMO_KEY = "sandbox-key"
# Api.lift_rate_limit: AC's 5 req/s (and the validation lane's 1/s) out of the way of fixtures that only wait on them
UNLIMITED = {"AC_RATE_LIMIT_PER_SECOND": "1000", "AC_VALIDATIONS_PER_SECOND": "1000", "AC_RATE_BUDGET": "local"}


@pytest.fixture(scope="session")
def stack():
    """nx-27017, or the MongoDB that MONGODB_URI names (CI's second run): then the production collection
    names (with dashes), in a database of its own (MONGODB_TEST_DATABASE, default acexport_test), because
    every test empties the collections of the database it uses."""
    env = {}
    if os.environ.get("MONGODB_URI", "").strip():
        env["MONGODB_DATABASE"] = os.environ.get("MONGODB_TEST_DATABASE") or "acexport_test"
    with LocalStack(env=env) as local:
        yield local


def _reset_layer_state():
    """A new container: every per-container cache of the layer forgotten (acexport.caches)."""
    from acexport import caches

    caches.reset()


@pytest.fixture
def sandbox(stack):
    stack.sandbox.reset()
    return stack.sandbox


@pytest.fixture
def mongo(stack):
    from pymongo import MongoClient

    client = MongoClient(stack.mongo_uri, serverSelectionTimeoutMS=3000)
    db = client[os.environ["MONGODB_DATABASE"]]
    for name in db.list_collection_names():
        db[name].delete_many({})
    yield db
    client.close()


@pytest.fixture
def api(stack, sandbox, mongo, monkeypatch):
    """An HTTP client of the local API; env changes made through `api.env` are undone after the test."""
    _reset_layer_state()
    stack.api.clear_authorizer_cache()
    client = Api(stack, sandbox, monkeypatch)
    yield client
    monkeypatch.undo()
    _reset_layer_state()


class Api:
    def __init__(self, stack, sandbox, monkeypatch):
        self.stack, self.sandbox, self._monkeypatch = stack, sandbox, monkeypatch
        self.http = requests.Session()

    def env(self, **values: str) -> None:
        """Change settings for this test (handlers run in this process, like one warm container)."""
        for name, value in values.items():
            self._monkeypatch.setenv(name, value)
        _reset_layer_state()

    def lift_rate_limit(self) -> None:
        """For tests that do not test AC's 5 req/s: the stand-in stops answering 429 (its limit is restored
        after the test) and the service's budget allows 1000 req/s in this process (AC_RATE_BUDGET=local)."""
        self._monkeypatch.setattr(self.sandbox, "rate_limit", None)
        self.env(**UNLIMITED)

    def token(self, uid="user-1", account_id="account-1", **claims) -> str:
        return mint_token(uid, account_id, **claims)

    def call(self, method: str, path: str, *, token: str | None = "default", headers=None, **kwargs):
        headers = dict(headers or {})
        if token == "default":
            token = self.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        reply = self.http.request(method, self.stack.api_url + BASE + path, headers=headers, timeout=60, **kwargs)
        check_response(reply)  # every response the suite sees must match docs/openapi.yaml
        return reply

    def connect(self, *, token: str | None = "default", api_key: str = DEMO_KEY, headers=None):
        reply = self.call("POST", "/auth", token=token, headers=headers,
                          json={"api_key": api_key, "base_url": self.sandbox.base_url})
        assert reply.status_code == 200, reply.text
        return reply

    def export(self, resource: str, query: str = "", **kwargs):
        return self.call("GET", f"/export/{resource}" + (f"?{query}" if query else ""), **kwargs)


@pytest.fixture
def kit(api, mongo, monkeypatch):
    """A connected caller plus the helpers of the export-job tests (tests/integration/jobs_kit.py)."""
    from tests.integration.jobs_kit import Kit

    kit = Kit(api, monkeypatch, mongo)
    api.connect()
    api.sandbox.requests.clear()
    yield kit
    kit.settle()


@pytest.fixture(scope="module")
def server():
    """The sandbox's own tests (test_ac_sandbox*.py): a sandbox of the module, without AC's rate limit."""
    from devstack.ac_sandbox import ACSandbox

    sandbox = ACSandbox(rate_limit=None).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sb(server):
    """`server`, reset to its seeded data for each test."""
    server.reset()
    return server
