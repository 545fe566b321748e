"""`python -m devstack invoke <function> -e events/<function>.json`: one function, one event, no Docker.

Like `sam local invoke`: the function (its directory under functions/ or its logical id in template.yaml)
runs in this process with the template's handler, layer, environment and timeout, on the event given, and
its answer is printed as JSON on stdout (logs go to stderr). What it needs comes from a running
`make dev` when one is reachable (the state file it writes, `.devstack/state.json`: its Mongo, moto and
AC sandbox), else from a local stack started for this one call (in-memory Mongo, seeded as make dev is).

So that every file in events/ succeeds as it is, the event's preconditions are put in place first, the
way a test arranges its fixture, and each is printed on stderr:
* the event's caller (its authorizer context) has a connection to the AC sandbox, except for save_auth,
  whose caller's connection is removed first (a second save is a 409); a save's `base_url` on loopback
  is pointed at the sandbox actually running;
* the job named by a job event (status, cancel, worker, dead letters) is a fresh queued job of that
  caller, so cancelling or working on it does what the event shows;
* the sample hook secret of hooks_receiver.json names the dev tenant's live subscription (docs/live.md).
`--as-is` skips all of it.

Against a running `make dev` the data is yours: only what adds (a connection for a caller that has none, the
sample job when it is missing) is put in place. What would replace or remove something (the save's caller's
connection, a finished sample job, the live subscription's secret) is left as it is and named on stderr, with
the flag that does it: `--arrange`. A stack started for the one call is thrown away after it, so there
everything is put in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devstack.apigw import LocalApiGateway, load_api
from devstack.stack import LAYER, REPO_ROOT, TEMPLATE, LocalStack

# Where `serve` says how to reach it (DEVSTACK_STATE_FILE moves it: e.g. tests running their own serve).
STATE_FILE = Path(os.environ.get("DEVSTACK_STATE_FILE") or REPO_ROOT / ".devstack" / "state.json")
JOB_FUNCTIONS = {"ExportJobStatusFunction", "ExportJobCancelFunction", "ExportWorkerFunction",
                 "ExportJobDeadLettersFunction"}


class InvokeError(Exception):
    """A usage error: unknown function, unreadable event."""


def function_ids(template: Path = TEMPLATE) -> dict[str, str]:
    """Every name `invoke` accepts -> the function's logical id: the logical id itself and the
    directory of its code (functions/<name>)."""
    names: dict[str, str] = {}
    for logical_id, function in load_api(template).functions.items():
        names[logical_id] = logical_id
        names[Path(function.code_uri).name] = logical_id
    return names


def resolve_function(name: str, template: Path = TEMPLATE) -> str:
    names = function_ids(template)
    if name in names:
        return names[name]
    folded = {key.lower(): value for key, value in names.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    known = sorted(n for n in names if n == n.lower())
    raise InvokeError(f"no function {name!r} in {template.name}; known: {', '.join(known)} "
                      "(or their logical ids)")


def load_event(path: str | None) -> Any:
    if path is None:
        return {}
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise InvokeError(f"cannot read the event {path}: {exc}") from None


# ---------------------------------------------------------------- a running make dev
def write_state(stack: LocalStack, path: Path = STATE_FILE) -> Path:
    """What `invoke` needs to use this running stack (written by `python -m devstack serve`). The JWT
    secret is left out unless it is the public dev one: `invoke` reads a secret of your own from your
    environment, as the stack did."""
    from devstack.stack import DEV_JWT_SECRET

    env = {k: v for k, v in stack.env.items() if not (k == "JWT_SECRET" and v != DEV_JWT_SECRET)}
    state = {"pid": os.getpid(), "api_url": stack.api_url, "mongo_uri": stack.mongo_uri,
             "aws_endpoint": stack.moto_url, "kms_key_id": stack.kms_key_id,
             "sandbox_url": stack.sandbox.base_url if stack.sandbox is not None else None,
             "event_bus": os.environ.get("EVENT_BUS_NAME") or "default", "env": env}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}")
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(path)   # atomic: a reader never sees half a file
    return path


def remove_state(path: Path = STATE_FILE) -> None:
    with contextlib.suppress(OSError):
        state = json.loads(path.read_text())
        if state.get("pid") == os.getpid():
            path.unlink()


def _reachable(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=0.5):
            return True
    except OSError:
        return False


def running_dev_stack(path: Path = STATE_FILE) -> dict | None:
    """The state of a running `make dev` when its API, Mongo and moto answer; else None."""
    try:
        state = json.loads(path.read_text())
        os.kill(int(state["pid"]), 0)   # the process that wrote it is alive (signal 0 only checks)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    mongo = state.get("mongo_uri") or ""
    mongo_url = "http://" + mongo.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].split(",")[0]
    if all(_reachable(u) for u in (state.get("api_url"), state.get("aws_endpoint"), mongo_url)):
        return state
    return None


@contextlib.contextmanager
def environment(*, use_running: bool = True, log=print) -> Iterator[tuple[LocalApiGateway, str | None, bool]]:
    """A gateway whose functions see the stack's environment, the AC sandbox's URL, and whether the data is a
    running make dev's (shared) rather than a stack's started for this call."""
    if str(LAYER) not in sys.path:   # the preconditions use the layer (as /opt/python in Lambda)
        sys.path.append(str(LAYER))
    state = running_dev_stack() if use_running else None
    if state is not None:
        log(f"devstack: using the running make dev ({state['api_url']}, state in {STATE_FILE})")
        env = dict(state["env"])
        if "JWT_SECRET" not in env and os.environ.get("JWT_SECRET"):
            env["JWT_SECRET"] = os.environ["JWT_SECRET"]
        gateway = LocalApiGateway(TEMPLATE, env=env).start()
        try:
            yield gateway, state.get("sandbox_url"), True
        finally:
            gateway.stop()
        return
    log("devstack: no running make dev found; starting a local stack for this call (in-memory Mongo)")
    contacts = int(os.environ.get("AC_SANDBOX_CONTACTS") or 0) or None   # as make dev
    with LocalStack(event_sources=False, seed=True, sandbox_contacts=contacts) as stack:
        assert stack.api is not None
        _create_bus(stack)
        yield stack.api, stack.sandbox.base_url if stack.sandbox is not None else None, False


def _create_bus(stack: LocalStack) -> None:
    """The service's own EventBridge bus, which the stack creates with its rules only when its event
    sources run (not here: nothing should poll behind the one call): the functions publish on it."""
    bus = os.environ.get("EVENT_BUS_NAME") or "default"
    if bus != "default":
        events = stack.events.client("events")
        with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
            events.create_event_bus(Name=bus)


# ---------------------------------------------------------------- preconditions of the sample events
def _caller(event: dict):
    from devstack import seed

    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    if not claims.get("uid") or not claims.get("account_id"):
        return None
    return seed.tenant(str(claims["account_id"]), str(claims["uid"]), claims.get("workspace_id"))


def _job_id(event: dict) -> str | None:
    job_id = (event.get("pathParameters") or {}).get("job_id")
    if job_id:
        return str(job_id)
    for record in event.get("Records") or []:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            return str(json.loads(record.get("body") or "")["job_id"])
    return None


def prepare(logical_id: str, event: Any, sandbox_url: str | None, log=print, *, replace: bool = True) -> Any:
    """Put the event's preconditions in place (see the module docstring); returns the event to send. Without
    `replace`, only what adds: each step that would replace or remove data is skipped and said on `log`."""
    from devstack import seed

    if not isinstance(event, dict) or sandbox_url is None:
        return event
    caller = _caller(event)
    if logical_id == "ExportJobEventsFunction":
        detail = event.get("detail") or {}
        if detail.get("account_id") and detail.get("owner"):
            caller = seed.tenant(str(detail["account_id"]), str(detail["owner"]), None)
    if logical_id == "SaveAuthFunction":
        event = _point_at_sandbox(event, sandbox_url, log)
        if caller is not None:
            from acexport.credentials import store

            if not replace:
                if store.exists(caller):
                    log(f"devstack: {caller.owner} on {caller.account_id} is connected in the running make dev, "
                        "so this save answers 409; --arrange removes that connection first")
            elif store.delete(caller):
                log(f"devstack: removed the connection of {caller.owner} on {caller.account_id} "
                    "so that this save is a new one")
        return event
    if caller is not None and seed.connection(caller, sandbox_url):
        log(f"devstack: connected {caller.owner} on {caller.account_id} to the AC sandbox {sandbox_url}")
    if logical_id == "HooksReceiverFunction" and (event.get("pathParameters") or {}).get("secret") \
            == seed.SAMPLE_HOOK_SECRET:
        seed.connection(seed.tenant(), sandbox_url)
        if replace:
            seed.live_subscription(seed.tenant())
            log("devstack: the sample hook secret names the live subscription of dev-user on dev-account")
        else:
            log("devstack: the running make dev's live subscription keeps its own secret, so the sample secret is "
                "answered 410; --arrange gives dev-user's subscription the sample secret (replacing its own)")
    if logical_id in JOB_FUNCTIONS:
        job_id = _job_id(event)
        if job_id == seed.SAMPLE_JOB_ID:
            owner = caller or seed.tenant()   # queue messages name no caller: the job is the dev tenant's
            if caller is None:
                seed.connection(owner, sandbox_url)
            doc = seed.sample_job(owner, sandbox_url, fresh=replace)
            if replace:
                log(f"devstack: job {job_id} is a fresh queued contacts export of {owner.owner} on "
                    f"{owner.account_id}")
            else:
                log(f"devstack: job {job_id} is {doc['status']} in the running make dev and is left so; "
                    "--arrange replaces it with a fresh queued one")
    return event


def _point_at_sandbox(event: dict, sandbox_url: str, log) -> dict:
    try:
        body = json.loads(event.get("body") or "")
    except ValueError:
        return event
    if not isinstance(body, dict) or not isinstance(body.get("base_url"), str):
        return event
    host = urlsplit(body["base_url"]).hostname or ""
    if host in ("127.0.0.1", "localhost") and body["base_url"].rstrip("/") != sandbox_url:
        log(f"devstack: base_url {body['base_url']} -> {sandbox_url} (the AC sandbox of this stack)")
        event = {**event, "body": json.dumps({**body, "base_url": sandbox_url})}
    return event


def invoke(name: str, event_path: str | None, *, as_is: bool = False, use_running: bool = True,
           arrange: bool = False, log=None) -> Any:
    """Invoke one function with one event; the function's answer (what Lambda would return). `arrange`:
    also replace or remove data of a running make dev to put the event's preconditions in place."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    logical_id = resolve_function(name)
    event = load_event(event_path)
    with environment(use_running=use_running, log=log) as (gateway, sandbox_url, shared):
        if not as_is:
            event = prepare(logical_id, event, sandbox_url, log, replace=arrange or not shared)
        return gateway.invoke(logical_id, event)
