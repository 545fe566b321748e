"""The AC rate budget shared through Mongo (acexport.ac.budget): every process and thread that calls one AC
account together stays within its 5 requests per second, queues instead of failing, fails at once when
its deadline cannot be met, honours AC's Retry-After everywhere, and a Mongo outage is a quick 503.

Runs against the real Mongo wire server of the integration stack (nx-27017). "Containers" are separate
processes, each with its own Mongo client and budget object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from acexport.ac.budget import MongoBudget
from acexport.ac.ratelimit import BudgetExhausted
from acexport.errors import ServiceUnavailableError
from pymongo import MongoClient

from devstack.ac_sandbox import most_in_any_window

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = "integrations_activecampaign_rate_budget"
RATE = 5
MARGIN = 0.05

# One "container": its own client and budget, `threads` threads taking slots for `host` from `start` (an
# epoch time, so every process begins together) until `seconds` later; prints the epoch time of each grant.
WORKER = """
import json, sys, threading, time
from pymongo import MongoClient
from acexport.ac.budget import MongoBudget
from acexport.ac.ratelimit import BudgetExhausted
uri, db, coll, host, start, seconds, threads = sys.argv[1:8]
start, seconds, threads = float(start), float(seconds), int(threads)
client = MongoClient(uri, serverSelectionTimeoutMS=3000)
budget = MongoBudget(5, collection=lambda: client[db][coll], margin=0.05, mongo_timeout=3.0)
client[db][coll].find_one({})  # connect before the start
grants, lock = [], threading.Lock()
def run():
    while time.time() < start + seconds:
        left = start + seconds - time.time()
        try:
            budget.acquire(host, time.monotonic() + left)
        except BudgetExhausted:
            break
        at = time.time()
        with lock:
            grants.append(at)
time.sleep(max(0.0, start - time.time()))
workers = [threading.Thread(target=run) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(json.dumps(grants))
"""


@pytest.fixture
def mongo_client(stack):
    client = MongoClient(stack.mongo_uri, serverSelectionTimeoutMS=3000)
    yield client
    client.close()


@pytest.fixture
def coll(mongo_client):
    collection = mongo_client[os.environ["MONGODB_DATABASE"]][COLLECTION]
    collection.delete_many({})
    yield collection
    collection.delete_many({})


def budget_on(client: MongoClient, **kwargs) -> MongoBudget:
    """A container's budget: its own Mongo client, the shared collection."""
    return MongoBudget(RATE, collection=lambda: client[os.environ["MONGODB_DATABASE"]][COLLECTION],
                       margin=MARGIN, mongo_timeout=3.0, **kwargs)


@pytest.mark.slow  # multi-process
def test_processes_and_threads_together_never_exceed_the_rate(stack, coll):
    seconds, host = 3.5, "hammered.api-us1.com"
    start = time.time() + 2.0   # time for the processes to import and connect
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "common")}
    args = [stack.mongo_uri, os.environ["MONGODB_DATABASE"], COLLECTION, host, str(start), str(seconds), "3"]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    # ...and this process as a fourth container, with three threads of its own.
    client = MongoClient(stack.mongo_uri, serverSelectionTimeoutMS=3000)
    budget, mine, lock = budget_on(client), [], threading.Lock()

    def run():
        while time.time() < start + seconds:
            try:
                budget.acquire(host, time.monotonic() + (start + seconds - time.time()))
            except BudgetExhausted:
                break
            with lock:
                mine.append(time.time())

    time.sleep(max(0.0, start - time.time()))
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    client.close()
    per_process = [mine]
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        per_process.append(json.loads(out))

    grants = sorted(t for times in per_process for t in times)
    assert most_in_any_window(grants) <= RATE, grants
    # Close to the ceiling: 5 at once, then 5 more every 1.05 s -> 20 in 3.5 s; every container got some.
    assert len(grants) >= 18, len(grants)
    assert sum(1 for times in per_process if times) >= 3
    assert coll.count_documents({}) == RATE  # five tiny slot documents for the host, however many requests


@pytest.mark.slow  # >= 1 s of real waiting
def test_hosts_are_independent_and_a_deadline_is_refused_at_once(mongo_client, coll):
    budget = budget_on(mongo_client)
    for _ in range(RATE):
        budget.acquire("a.api-us1.com", time.monotonic() + 1)
    started = time.monotonic()
    budget.acquire("b.api-us1.com", time.monotonic() + 0.2)   # another AC account: no wait
    with pytest.raises(BudgetExhausted) as err:
        budget.acquire("a.api-us1.com", time.monotonic() + 0.5)
    assert time.monotonic() - started < 0.3          # refused at once, not after sleeping to the deadline
    assert 0.8 < err.value.wait <= 1.0 + MARGIN + 0.01
    budget.acquire("a.api-us1.com", time.monotonic() + 2)   # and it waits when the deadline allows
    assert time.monotonic() - started >= 0.8


@pytest.mark.slow  # >= 1 s of real waiting
def test_a_retry_after_holds_every_container(mongo_client, stack, coll):
    other_client = MongoClient(stack.mongo_uri, serverSelectionTimeoutMS=3000)
    try:
        told, other = budget_on(mongo_client), budget_on(other_client)
        told.acquire("acme.api-us1.com", time.monotonic() + 1)
        told.penalise("acme.api-us1.com", 2.0)        # AC answered 429, Retry-After: 2
        started = time.monotonic()
        with pytest.raises(BudgetExhausted) as err:
            other.acquire("acme.api-us1.com", time.monotonic() + 0.5)
        assert 1.8 < err.value.wait <= 2.05
        assert time.monotonic() - started < 0.3
        other.acquire("acme.api-us1.com", time.monotonic() + 5)
        assert 1.85 <= time.monotonic() - started < 2.6
    finally:
        other_client.close()


def test_slots_deleted_by_hand_or_ttl_are_recreated(mongo_client, coll):
    budget = budget_on(mongo_client)
    budget.acquire("x.api-us1.com", time.monotonic() + 1)
    # nx-27017 names indexes its own way (idx_<collection>_<field>); MongoDB keeps TTL_INDEX
    ttl = [i for i in coll.index_information().values() if i["key"] == [("expires", 1)]]
    assert len(ttl) == 1 and ttl[0]["expireAfterSeconds"] == 0
    coll.delete_many({})
    started = time.monotonic()
    budget.acquire("x.api-us1.com", time.monotonic() + 1)
    assert time.monotonic() - started < 0.2
    assert coll.count_documents({}) == RATE


@pytest.mark.slow  # >= 1 s of real waiting
def test_mongo_down_is_a_503_within_the_mongo_timeout():
    dead = MongoClient("mongodb://127.0.0.1:9/?directConnection=true", serverSelectionTimeoutMS=30000)
    budget = MongoBudget(RATE, collection=lambda: dead.platform[COLLECTION], mongo_timeout=0.5)
    # Bounded by MONGODB_TIMEOUT_MS (here 0.5 s) and by the caller's deadline when sooner, not by the
    # client's own 30 s; pymongo re-checks an unreachable server every 0.5 s, hence the slack.
    for deadline in (30.0, 0.2):
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError):
            budget.acquire("down.api-us1.com", time.monotonic() + deadline)
        assert time.monotonic() - started < 1.6
    budget.penalise("down.api-us1.com", 5)   # best effort: never raises
    dead.close()


@pytest.mark.slow  # >= 1 s of real waiting
def test_through_the_client_mongo_down_is_a_503_and_ac_is_not_called(api, monkeypatch):
    """The default budget (AC_RATE_BUDGET=shared) goes through acexport.db like every Mongo call."""
    from acexport.ac.client import ACClient

    api.env(MONGODB_URI="mongodb://127.0.0.1:9/?directConnection=true", MONGODB_TIMEOUT_MS="800")
    api.sandbox.requests.clear()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as err:
        ACClient(api.sandbox.base_url, "sandbox-key", deadline=time.monotonic() + 20).get("/contacts")
    assert time.monotonic() - started < 2.5
    assert err.value.status == 503 and api.sandbox.count() == 0


# ---------------------------------------------------------------- two containers, one AC account

def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_servers(stack, budget: str, count: int = 2) -> list[tuple[str, subprocess.Popen]]:
    """`python -m devstack serve` processes: each its own "container", all on the stack's Mongo and KMS."""
    env = {**os.environ, "AC_RATE_BUDGET": budget, "AC_RATE_LIMIT_PER_SECOND": "5"}
    servers = []
    for _ in range(count):
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "devstack", "serve", "--port", str(port), "--no-sandbox",
                                 "--mongo-uri", stack.mongo_uri, "--aws-endpoint", stack.moto_url,
                                 "--kms-key-id", stack.kms_key_id], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append((f"http://127.0.0.1:{port}", proc))
    import requests

    deadline = time.monotonic() + 30
    for url, proc in servers:
        while True:
            assert proc.poll() is None, "a server process exited"
            try:
                if requests.get(url + "/v1/integrations/activecampaign/auth", timeout=1).status_code == 401:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "servers not ready"
            time.sleep(0.1)
    return servers


def _stop(servers) -> None:
    for _, proc in servers:
        proc.terminate()
    for _, proc in servers:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.slow  # multi-process
@pytest.mark.parametrize("budget", ["shared", "local"])
def test_two_containers_exporting_from_one_ac_account(stack, sandbox, mongo, budget):
    """Two server processes (two warm containers) export from one AC account (the 5/s stand-in) at once:
    with the shared budget AC never sees more than 5 requests in a second and never answers 429; with a
    budget per container (the control) the same load collects 429s."""
    import requests

    from devstack.stack import mint_token

    servers = _start_servers(stack, budget)
    try:
        tokens = [mint_token(f"user-{i}", f"account-{i}") for i in range(4)]   # four tenants, one AC account
        for i, token in enumerate(tokens):
            reply = requests.post(servers[i % 2][0] + "/v1/integrations/activecampaign/auth", timeout=30,
                                  headers={"Authorization": f"Bearer {token}"},
                                  json={"api_key": "sandbox-key", "base_url": sandbox.base_url})
            assert reply.status_code == 200, reply.text
        replies, lock, stop_at = [], threading.Lock(), time.monotonic() + 3.0

        def user(n: int) -> None:
            http = requests.Session()
            paths = ["contacts?limit=100", "deals?limit=20", "accounts?limit=10", "contacts?page=2&limit=50"]
            k = 0
            while time.monotonic() < stop_at:
                url = servers[(n + k) % 2][0] + "/v1/integrations/activecampaign/export/" + paths[(n + k) % 4]
                reply = http.get(url, headers={"Authorization": f"Bearer {tokens[n % 4]}"}, timeout=60)
                with lock:
                    replies.append(reply.status_code)
                k += 1

        users = [threading.Thread(target=user, args=(n,)) for n in range(8)]
        for t in users:
            t.start()
        for t in users:
            t.join(timeout=60)
    finally:
        _stop(servers)

    arrivals = [r.at for r in sandbox.requests]
    throttled = sum(1 for r in sandbox.requests if r.status == 429)
    if budget == "shared":
        assert throttled == 0 and most_in_any_window(arrivals) <= RATE
        assert set(replies) == {200}
        assert len(arrivals) >= 4 + 3 * 4   # the connects, then close to 4.5/s: the account's budget was used
    else:
        assert throttled > 0   # the control: per-container budgets together exceed the account's limit
