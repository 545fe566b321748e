"""`python -m devstack invoke` (sam local invoke without Docker) and what `make dev` offers around it: every
events/*.json succeeds as shipped; a running `python -m devstack serve` is found and used; it seeds a
sub-account, sizes the sandbox from AC_SANDBOX_CONTACTS, logs published events, and names the busy port.

Each case runs devstack in its own process (as a developer does), so its stacks never touch the suite's."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted((ROOT / "events").glob("*.json"))
PYTHON = sys.executable

# Invokes every event with one local stack (devstack.invoke's own path: environment -> prepare -> invoke),
# then reads back what the job events did to the sample job.
EVERY_EVENT = r"""
import json, sys
from pathlib import Path
from devstack import invoke as inv
from devstack.seed import SAMPLE_JOB_ID

out = {}
with inv.environment(use_running=False, log=lambda line: print(line, file=sys.stderr)) as (gateway, sandbox, _):
    from acexport.jobs import store as jobs
    for path in sys.argv[1:]:
        name = Path(path).stem
        logical_id = inv.resolve_function(name)
        event = inv.prepare(logical_id, inv.load_event(path), sandbox, log=lambda line: print(line, file=sys.stderr))
        answer = gateway.invoke(logical_id, event)
        sample = jobs.get(SAMPLE_JOB_ID)
        out[name] = {"answer": answer, "sample_status": sample and sample["status"]}
        if name == "export_job_events":
            out[name]["started"] = jobs.get(answer["job_id"])["status"]
print(json.dumps(out))
"""


def run(args, *, env=None, timeout=180, **kwargs):
    return subprocess.run([PYTHON, *args], cwd=ROOT, env=os.environ if env is None else env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def clean_env() -> dict:
    """The environment of a developer's shell: none of the variables the suite's stack exported."""
    drop = {"MONGODB_URI", "MONGODB_DATABASE", "JWT_SECRET", "KMS_KEY_ID", "CREDENTIALS_COLLECTION",
            "JOBS_COLLECTION", "EXPORT_QUEUE_URL", "EXPORT_BUCKET", "PORT", "AC_SANDBOX_PORT"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("AWS_")}


@pytest.mark.slow   # multi-process: devstack in its own process
def test_every_sample_event_succeeds_as_shipped():
    reply = subprocess.run([PYTHON, "-c", EVERY_EVENT, *map(str, EVENTS)], cwd=ROOT, env=clean_env(),
                           capture_output=True, text=True, timeout=300)
    assert reply.returncode == 0, reply.stderr[-3000:]
    results = json.loads(reply.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(p.stem for p in EVENTS)
    assert results["authorizer"]["answer"] == {"isAuthorized": True, "context": {
        "uid": "dev-user", "account_id": "dev-account", "workspace_id": "dev-workspace"}}
    for name, result in results.items():
        answer = result["answer"]
        if "statusCode" in answer:
            assert 200 <= answer["statusCode"] < 300, (name, answer)
            assert json.loads(answer["body"])["success"] is True, name
    assert results["export_job_start"]["answer"]["statusCode"] == 202
    assert json.loads(results["save_auth"]["answer"]["body"])["data"]["connected"] is True
    contacts = json.loads(results["export_contacts"]["answer"]["body"])["data"]
    assert contacts and all(c["firstName"].casefold() == "john" for c in contacts)
    # what the job events did to the job they name
    status = json.loads(results["export_job_status"]["answer"]["body"])["data"]
    assert status["id"] == "Zq3v0mX1bK7cR2dT9sW4yL6nH8pJ5fAe"
    assert results["export_job_cancel"]["sample_status"] == "cancelled"
    assert results["export_worker"]["answer"] == {"batchItemFailures": []}
    assert results["export_worker"]["sample_status"] == "succeeded"
    assert results["export_job_dead_letters"]["answer"] == {"batchItemFailures": []}
    assert results["export_job_dead_letters"]["sample_status"] == "failed"
    assert results["export_job_events"]["started"] == "queued"


@pytest.mark.slow   # multi-process: devstack in its own process
def test_the_command_prints_only_the_answer_on_stdout():
    reply = run(["-m", "devstack", "invoke", "authorizer", "-e", "events/authorizer.json", "--no-running"],
                env=clean_env())
    assert reply.returncode == 0, reply.stderr[-3000:]
    assert json.loads(reply.stdout)["isAuthorized"] is True
    assert "starting a local stack for this call" in reply.stderr
    unknown = run(["-m", "devstack", "invoke", "no_such_function"], env=clean_env())
    assert unknown.returncode == 2 and "known: auth_status, authorizer," in unknown.stderr


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited"
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.2)
    raise AssertionError("serve did not write its state file")


def _sandbox_get(url: str) -> dict:
    """A read of the sandbox as AC's clients do it: the stack's own start-up calls share its 5 req/s, so a
    429 is waited out (Retry-After) rather than read as the answer."""
    for _ in range(10):
        reply = requests.get(url, headers={"Api-Token": "sandbox-key"}, timeout=10)
        if reply.status_code != 429:
            assert reply.status_code == 200, reply.text
            return reply.json()
        time.sleep(float(reply.headers.get("Retry-After", "1")))
    raise AssertionError("the sandbox kept answering 429")


@pytest.mark.slow   # multi-process: devstack in its own process
def test_invoke_uses_a_running_make_dev(tmp_path):
    state_file = tmp_path / "state.json"
    log = tmp_path / "serve.log"
    env = {**clean_env(), "DEVSTACK_STATE_FILE": str(state_file), "AC_SANDBOX_CONTACTS": "300"}
    with open(log, "w") as out:
        serve = subprocess.Popen([PYTHON, "-m", "devstack", "serve", "--port", "0", "--sandbox-port", "0",
                                  "--mongo-port", "0", "--aws-port", "0"], cwd=ROOT, env=env, stdout=out,
                                 stderr=subprocess.STDOUT, text=True)
    try:
        state = _wait_for(state_file, serve)
        banner = log.read_text()
        assert "300 contacts" in banner and "put-event" in banner and "X-Sub-Account-Id: dev-sub-account" in banner
        total = _sandbox_get(f"{state['sandbox_url']}/api/3/contacts?limit=1")["meta"]["total"]
        assert total == "300"

        # the seeded sub-account, over HTTP with the banner's kind of token
        token = run(["-m", "devstack", "token", "--uid", "dev-user", "--account-id", "dev-account"],
                    env=env).stdout.strip()
        base = state["api_url"] + "/v1/integrations/activecampaign"
        sub = requests.get(f"{base}/auth", headers={"Authorization": f"Bearer {token}",
                                                    "X-Sub-Account-Id": "dev-sub-account"}, timeout=10)
        assert sub.status_code == 200 and sub.json()["data"]["connected"] is True
        other = requests.get(f"{base}/auth", headers={"Authorization": f"Bearer {token}",
                                                      "X-Sub-Account-Id": "someone-else"}, timeout=10)
        assert other.status_code == 403

        # --arrange: the running stack's own worker may hold the seeded job; a fresh queued one is this call's
        worker = run(["-m", "devstack", "invoke", "ExportWorkerFunction", "-e", "events/export_worker.json",
                      "--arrange"], env=env)
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert "using the running make dev" in worker.stderr
        assert json.loads(worker.stdout) == {"batchItemFailures": []}
        status = requests.get(f"{base}/export/jobs/Zq3v0mX1bK7cR2dT9sW4yL6nH8pJ5fAe",
                              headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["data"]
        assert status["status"] == "succeeded" and status["records_written"] == 300

        check_env_json_matches(state)

        # The running stack's data is the developer's: a save's caller keeps its connection unless asked
        save = run(["-m", "devstack", "invoke", "save_auth", "-e", "events/save_auth.json"], env=env)
        assert save.returncode == 0, save.stderr[-3000:]
        assert json.loads(save.stdout)["statusCode"] == 409 and "--arrange removes that connection" in save.stderr
        mine = requests.get(f"{base}/auth", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert mine.json()["data"]["connected"] is True
        arranged = run(["-m", "devstack", "invoke", "save_auth", "-e", "events/save_auth.json", "--arrange"],
                       env=env)
        assert json.loads(arranged.stdout)["statusCode"] == 200, arranged.stderr[-3000:]   # saved
        assert "removed the connection of dev-user on dev-account" in arranged.stderr

        put = run(["-m", "devstack", "put-event"], env=env)
        assert put.returncode == 0, put.stderr
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # the rule's function starts a deals job; the worker runs it
            finished = [line for line in log.read_text().splitlines()
                        if "published ActiveCampaign Export Job Finished" in line and '"deals"' in line]
            if finished:
                break
            time.sleep(0.5)
        assert finished and '"status": "succeeded"' in finished[0], log.read_text()[-3000:]
        assert "sandbox-key" not in log.read_text().split("Handler logs follow")[-1]   # no key in any log line
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert not state_file.exists()   # a stopped stack is not found again


@pytest.mark.slow   # multi-process
@pytest.mark.parametrize(("option", "what"), [("--port", "the local API"), ("--mongo-port", "MongoDB"),
                                              ("--aws-port", "moto"), ("--sandbox-port", "the AC sandbox")])
def test_a_busy_port_is_named(option, what):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = {"--port": "0", "--mongo-port": "0", "--aws-port": "0", "--sandbox-port": "0", option: str(port)}
        reply = run(["-m", "devstack", "serve", *[x for pair in ports.items() for x in pair]], env=clean_env(),
                    timeout=60)
    assert reply.returncode == 1
    assert f"port {port} ({what}" in reply.stderr and option in reply.stderr, reply.stderr


# ---- env.json: `sam local invoke --env-vars env.json` against make dev (Docker users)

def env_json() -> dict:
    return json.loads((ROOT / "env.json").read_text())["Parameters"]


def check_env_json_matches(state: dict) -> None:
    """env.json holds what a `make dev` on its default ports gives the functions (this one ran on free ports)."""
    from urllib.parse import urlsplit

    defaults = {urlsplit(state["aws_endpoint"]).port: 5005, urlsplit(state["mongo_uri"]).port: 27017}
    for name, value in env_json().items():
        if name == "KMS_KEY_ID":
            continue   # a fresh key per start; env.json names it by the alias the stack gives it
        actual = state["env"].get(name, "")
        for port, default in defaults.items():
            actual = re.sub(rf":{port}\b", f":{default}", actual)
        assert actual == value, (name, actual, value)


def test_env_json_sets_only_variables_the_template_declares():
    """sam local invoke --env-vars overrides only variables declared in the template (AWS SAM developer guide,
    "Locally invoke Lambda functions with AWS SAM", environment variable file)."""
    from devstack.apigw import load_api
    from devstack.stack import KMS_ALIAS

    functions = load_api(ROOT / "template.yaml").functions
    declared = {lid: set(fn.environment) | set(fn.skipped_environment) for lid, fn in functions.items()}
    for name in env_json():
        assert any(name in names for names in declared.values()), f"{name} is not declared in template.yaml"
    for lid, names in declared.items():   # where AWS reads a secret, a local value can be set instead
        if "MONGODB_URI_SECRET_ARN" in names:
            assert "MONGODB_URI" in names, lid
        if "JWT_SECRET_ARN" in names:
            assert "JWT_SECRET" in names, lid
        assert {"AWS_ENDPOINT_URL", "ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL"} <= names, lid
    assert env_json()["KMS_KEY_ID"] == KMS_ALIAS


def test_the_kms_alias_of_env_json_encrypts(api):
    """env.json names the local key by its alias (its id changes on every start): saves and exports work so."""
    from devstack.stack import KMS_ALIAS

    api.env(KMS_KEY_ID=KMS_ALIAS)
    api.connect()
    reply = api.export("contacts", "limit=2")
    assert reply.status_code == 200 and len(reply.json()["data"]) == 2


def test_a_port_left_in_time_wait_by_a_stopped_server_is_not_busy():
    """`make dev` right after stopping one: the old server's connections linger in TIME_WAIT, nothing listens."""
    from devstack.__main__ import _busy

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert _busy(port)                                   # listening: busy
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()                                     # the server closes first: its side waits in TIME_WAIT
        client.close()
    assert not _busy(port)


PRODUCTION_HOST_RULES = r"""
import json
from devstack.__main__ import _banner
from devstack.stack import LocalStack
from devstack import seed

with LocalStack(seed=True, event_sources=False, env={"ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL": "false"}) as stack:
    from acexport.credentials import store
    print(json.dumps({"refused": stack.seed_refused, "connected": store.exists(seed.tenant()),
                      "banner": _banner(stack, "TOKEN")}))
"""


@pytest.mark.slow   # multi-process
def test_make_dev_with_production_host_rules_starts_without_the_seeded_connection_and_says_why():
    reply = run(["-c", PRODUCTION_HOST_RULES], env=clean_env())
    assert reply.returncode == 0, reply.stderr[-3000:]
    out = json.loads(reply.stdout.strip().splitlines()[-1])
    assert out["connected"] is False
    assert "ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL=false" in out["refused"]
    assert "Not seeded: ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL=false" in out["banner"]
