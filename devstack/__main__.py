"""`python -m devstack` (what `make dev` runs): the whole service locally, no AWS account, no Docker.

    python -m devstack [serve] [--port 3000] [--data-dir .devstack] [--no-sandbox]
                       [--mongo-uri URI | --mongo-port 27017] [--aws-endpoint URL [--kms-key-id ID] | --aws-port 5005]
                       [--sandbox-port 8010] [--sandbox-contacts N]
        Start LocalStack (API on $PORT, default 3000), seed the dev tenant (devstack/seed.py), print the
        URLs, a dev token and ready-to-paste curl commands, then serve until Ctrl-C / SIGTERM, logging the
        events the service publishes. Writes .devstack/state.json so `invoke` and `put-event` use it
        (not with --no-sandbox or --aws-endpoint: a server sharing another stack's services).
        AC_SANDBOX_CONTACTS=5000 gives the sandbox 5,000 contacts (a job long enough to watch and cancel).

    python -m devstack invoke <function> [-e events/<function>.json] [--as-is] [--arrange] [--no-running]
        Invoke one function with one event, like `sam local invoke`, without Docker (devstack/invoke.py);
        prints the function's answer as JSON. <function>: its directory under functions/ or its logical id.

    python -m devstack put-event [events/export_job_events.json]
        Put an event on the running make dev's EventBridge bus (moto), as another platform service would:
        the rule's function starts a job, which the local worker runs.

    python -m devstack token --uid U --account-id A [--workspace-id W] [--parent-account P] [--ttl S]
        Print a token signed with $JWT_SECRET, or the dev secret the local stack uses by default.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Sequence

from devstack import invoke as local_invoke
from devstack.seed import DEV_ACCOUNT, DEV_SUB_ACCOUNT, DEV_UID, DEV_WORKSPACE, SAMPLE_JOB_ID
from devstack.stack import DEV_JWT_SECRET, LocalStack, mint_token

BASE = "/v1/integrations/activecampaign"
DEMO_API_KEY = "sandbox-key"
DEV_TOKEN_TTL = 12 * 3600
SAMPLE_EVENT = "events/export_job_events.json"
# Fixed ports of `make dev` (env.json and the sample save event point at them); 0 lets the OS pick.
PORTS = {  # option -> (environment variable, default, what listens there)
    "port": ("PORT", 3000, "the local API"),
    "sandbox_port": ("AC_SANDBOX_PORT", 8010, "the AC sandbox"),
    "mongo_port": ("MONGO_PORT", 27017, "MongoDB (nx-27017)"),
    "aws_port": ("AWS_PORT", 5005, "moto (KMS, S3, SQS, EventBridge)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the local stack (the default)")
    for p, default, flag_default in ((parser, None, False), (serve, argparse.SUPPRESS, argparse.SUPPRESS)):
        # The subcommand's copies only set what is given, so `--port 1 serve` keeps the 1.
        p.add_argument("--port", type=int, default=default,
                       help="API port (default: $PORT, else 3000; 0 picks a free one)")
        p.add_argument("--data-dir", default=default,
                       help="keep Mongo data (and the local KMS key) in this directory, e.g. .devstack")
        p.add_argument("--no-sandbox", action="store_true", default=flag_default,
                       help="do not start the ActiveCampaign sandbox")
        p.add_argument("--sandbox-port", type=int, default=default,
                       help="AC sandbox port (default: $AC_SANDBOX_PORT, else 8010; 0 picks a free one)")
        p.add_argument("--mongo-uri", default=default,
                       help="use this MongoDB instead of starting nx-27017 (e.g. one shared by several servers)")
        p.add_argument("--aws-endpoint", default=default,
                       help="use this AWS endpoint (a running moto server) instead of starting moto here")
        p.add_argument("--kms-key-id", default=default,
                       help="with --aws-endpoint: the KMS key to use (default: create one there)")
        p.add_argument("--mongo-port", type=int, default=default,
                       help="nx-27017's port (default: $MONGO_PORT, else 27017; 0 picks a free one)")
        p.add_argument("--aws-port", type=int, default=default,
                       help="moto's port (default: $AWS_PORT, else 5005; 0 picks a free one)")
        p.add_argument("--sandbox-contacts", type=int, default=default,
                       help="contacts in the AC sandbox (default: $AC_SANDBOX_CONTACTS, else 120)")
    token = sub.add_parser("token", help="print a platform JWT for local calls")
    token.add_argument("--uid", required=True)
    token.add_argument("--account-id", required=True)
    token.add_argument("--workspace-id")
    token.add_argument("--parent-account")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)")
    run = sub.add_parser("invoke", help="invoke one function with one event (like sam local invoke)")
    run.add_argument("function", help="directory under functions/ (e.g. export_contacts) or logical id")
    run.add_argument("-e", "--event", help="event file (JSON; '-' reads stdin); default: an empty event")
    run.add_argument("--as-is", action="store_true",
                     help="send the event unchanged: no connection, job or base_url is put in place for it")
    run.add_argument("--arrange", action="store_true",
                     help="against a running make dev, also replace or remove its data to put the event's "
                          "preconditions in place (the save's connection, the sample job, the live secret)")
    run.add_argument("--no-running", action="store_true",
                     help="start a stack for this call even when a make dev is running")
    put = sub.add_parser("put-event", help="put an event on the running make dev's EventBridge bus")
    put.add_argument("event", nargs="?", default=SAMPLE_EVENT, help=f"event file (default {SAMPLE_EVENT})")
    return parser


def _port(args: argparse.Namespace, option: str) -> int:
    value = getattr(args, option, None)
    if value is not None:
        return int(value)
    variable, default, _ = PORTS[option]
    return int(os.environ.get(variable) or default)


def _busy(port: int) -> bool:
    """Whether something listens on `port`. SO_REUSEADDR, as the servers themselves bind: the connections of a
    `make dev` stopped a moment ago linger in TIME_WAIT for a minute and must not count as a running server."""
    if not port:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _busy_port_message(ports: dict[str, int]) -> str | None:
    """'port 27017 (MongoDB) is in use ...' for the first fixed port something else holds."""
    for option, port in ports.items():
        if _busy(port):
            variable, _, what = PORTS[option]
            flag = "--" + option.replace("_", "-")
            return (f"port {port} ({what}) is in use: another `make dev`? Stop it, or choose another port with "
                    f"{variable}=... or {flag} ... (0 picks a free one)")
    return None


def _seeded(stack: LocalStack) -> str:
    if stack.seed_refused:
        return f"Not seeded: {stack.seed_refused}"
    return (f"Seeded: a sandbox connection of this caller, sub-account {DEV_SUB_ACCOUNT} (with its own connection) "
            f"and job {SAMPLE_JOB_ID}"
            + (f" ({'; '.join(stack.seeded)})" if stack.seeded else " (kept from an earlier run)"))


def _banner(stack: LocalStack, token: str) -> str:
    api = stack.api_url
    lines = [
        "",
        "ActiveCampaign integration - local stack (no AWS, no Docker)",
        "",
        f"  API             {api}{BASE}/...",
    ]
    if stack.sandbox is not None:
        contacts = len(stack.sandbox.contacts)
        lines.append(f"  AC sandbox      {stack.sandbox.base_url}   (api key: {DEMO_API_KEY}, {contacts} contacts; "
                     "AC_SANDBOX_CONTACTS=5000 for a job long enough to watch and cancel)")
    lines += [
        f"  MongoDB         {stack.mongo_uri}   (database {stack.env.get('MONGODB_DATABASE')}, "
        f"collection {stack.env.get('CREDENTIALS_COLLECTION')})",
        f"  KMS (moto)      {stack.moto_url}   key {stack.kms_key_id}",
        f"  Jobs (moto)     queue {stack.env.get('EXPORT_QUEUE_URL')}, bucket {stack.env.get('EXPORT_BUCKET')} "
        "(docs/jobs.md)",
        "",
        f"Dev token (uid {DEV_UID}, account_id {DEV_ACCOUNT}, valid 12 h); more with "
        "`python -m devstack token --uid U --account-id A`. " + _seeded(stack) + ":",
        "",
        f"  export API={api}{BASE}",
        *([f"  export AC={stack.sandbox.base_url}"] if stack.sandbox is not None else []),
        f"  export TOKEN={token}",
        "",
        "Try it:",
        "",
    ]
    base_url = stack.sandbox.base_url if stack.sandbox is not None else "https://<account>.api-us1.com"
    body = f'{{"api_key": "{DEMO_API_KEY}", "base_url": "{base_url}"}}'
    lines += [
        "  # the dev caller is connected already: export right away (delete it below to try a save)",
        """  curl -s "$API/export/contacts?page=1&limit=5" -H "Authorization: Bearer $TOKEN\"""",
        "  # the same caller acting on its sub-account (X-Sub-Account-Id; the sub-account has its own connection)",
        f"""  curl -s "$API/auth" -H "Authorization: Bearer $TOKEN" -H "X-Sub-Account-Id: {DEV_SUB_ACCOUNT}\"""",
        "  # save a connection (validated against the AC sandbox; 409 while one exists)",
        f"""  curl -s -X POST "$API/auth" -H "Authorization: Bearer $TOKEN" """
        f"""-H "Content-Type: application/json" -d '{body}'""",
        "  # connection status",
        """  curl -s "$API/auth" -H "Authorization: Bearer $TOKEN\"""",
        "  # export contacts (-g: let curl pass the [ ] of filters/orders through)",
        """  curl -sg "$API/export/contacts?page=1&limit=5&filters[firstName]=John&orders[email]=ASC" """
        """-H "Authorization: Bearer $TOKEN\"""",
        "  # ... or let curl encode them (-G sends the --data-urlencode pairs as the query string)",
        """  curl -sG "$API/export/contacts" --data-urlencode "page=1" --data-urlencode "limit=5" """
        """--data-urlencode "filters[firstName]=John" -H "Authorization: Bearer $TOKEN\"""",
        "  # deals and accounts",
        """  curl -s "$API/export/deals?page=1&limit=5" -H "Authorization: Bearer $TOKEN\"""",
        """  curl -s "$API/export/accounts?page=1&limit=5" -H "Authorization: Bearer $TOKEN\"""",
        "  # a full export (a job): start it, then follow it until data.file.url is there",
        """  curl -s -X POST "$API/export/contacts/jobs" -H "Authorization: Bearer $TOKEN" """
        """-H "Content-Type: application/json" -d '{"format": "csv"}'""",
        """  curl -s "$API/export/jobs/<id>" -H "Authorization: Bearer $TOKEN\"""",
        "  # cancel it while it runs (AC_SANDBOX_CONTACTS=5000 gives you time)",
        """  curl -s -X DELETE "$API/export/jobs/<id>" -H "Authorization: Bearer $TOKEN\"""",
        "  # start a job from EventBridge, as another platform service would (the event's detail names the caller)",
        f"  .venv/bin/python -m devstack put-event {SAMPLE_EVENT}",
        "  # or with the AWS CLI:",
        f"  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws --endpoint-url {stack.moto_url} "
        """--region us-east-1 events put-events --entries '[{"Source":"platform.sync","""
        f""""EventBusName":"{os.environ.get('EVENT_BUS_NAME') or 'default'}","""
        """"DetailType":"ActiveCampaign Export Requested","""
        f""""Detail":"{{\\"account_id\\":\\"{DEV_ACCOUNT}\\",\\"owner\\":\\"{DEV_UID}\\","""
        """\\"resource\\":\\"deals\\"}"}]'""",
        "  # one function with one event, without Docker (uses this stack)",
        "  .venv/bin/python -m devstack invoke export_contacts -e events/export_contacts.json",
        "  # live changes: register the webhook, change contact 3 in the sandbox, read the change feed",
        """  curl -s -X PUT "$API/live" -H "Authorization: Bearer $TOKEN\"""",
        """  curl -s -X PATCH "$AC/_sandbox/contacts/3" -H "Content-Type: application/json" """
        """-d '{"firstName": "Ada"}'""",
        """  curl -s "$API/changes" -H "Authorization: Bearer $TOKEN\"""",
        "  # delete the connection",
        """  curl -s -X DELETE "$API/auth" -H "Authorization: Bearer $TOKEN\"""",
        "",
        "Events the service publishes are logged as `published <detail-type>: <detail>`. Handler logs follow",
        "below. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _log_published(stack: LocalStack, stopping: threading.Event) -> None:
    """Log every event the service publishes (job finished, request rejected) as it appears."""
    log = logging.getLogger("devstack.events")
    seen = 0
    while not stopping.wait(1.0):
        try:
            published = stack.events.published()
        except Exception as exc:   # moto stopping under us
            log.debug("published events not readable: %s", exc)
            continue
        for event in published[seen:]:
            log.info("published %s: %s", event.get("detail-type"), json.dumps(event.get("detail"), sort_keys=True))
        seen = len(published)


def _serve(args: argparse.Namespace) -> int:
    port = args.port if args.port is not None else int(os.environ.get("PORT") or 3000)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    devstack_log = logging.getLogger("devstack")
    devstack_log.addHandler(handler)
    devstack_log.setLevel(logging.INFO)
    devstack_log.propagate = False

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    ports = {"port": port, "sandbox_port": 0 if args.no_sandbox else _port(args, "sandbox_port"),
             "mongo_port": 0 if (args.mongo_uri or os.environ.get("MONGODB_URI")) else _port(args, "mongo_port"),
             "aws_port": 0 if args.aws_endpoint else _port(args, "aws_port")}
    contacts = args.sandbox_contacts if args.sandbox_contacts is not None else int(
        os.environ.get("AC_SANDBOX_CONTACTS") or 0)
    busy = _busy_port_message(ports)
    if busy:
        print(f"devstack: cannot start: {busy}", file=sys.stderr)
        return 1
    try:
        stack = LocalStack(port=port, ac_sandbox=not args.no_sandbox, data_dir=args.data_dir,
                           sandbox_port=ports["sandbox_port"], mongo_uri=args.mongo_uri,
                           aws_endpoint=args.aws_endpoint, kms_key_id=args.kms_key_id,
                           mongo_port=ports["mongo_port"], moto_port=ports["aws_port"],
                           sandbox_contacts=contacts or None, seed=not args.no_sandbox).start()
    except OSError as exc:
        busy = _busy_port_message(ports)   # taken between the check and the start
        print(f"devstack: cannot start: {busy or exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"devstack: cannot start: {exc}", file=sys.stderr)
        return 1
    watcher = threading.Thread(target=_log_published, args=(stack, stopping), name="published-events", daemon=True)
    # A full stack of its own says how to reach it; a "container" sharing another's moto (--aws-endpoint, as
    # benchmarks/load and tests/integration/test_budget.py start them) or without a sandbox does not.
    own = not (args.no_sandbox or args.aws_endpoint)
    state = None
    try:
        state = local_invoke.write_state(stack) if own else None
        token = mint_token(DEV_UID, DEV_ACCOUNT, secret=stack.jwt_secret, ttl=DEV_TOKEN_TTL,
                           workspace_id=DEV_WORKSPACE)
        print(_banner(stack, token), flush=True)
        if state is not None:
            print(f"(state for `python -m devstack invoke`/`put-event`: {state})\n", flush=True)
        watcher.start()
        while not stopping.wait(0.5):
            pass
        print("\nstopping...", file=sys.stderr, flush=True)
    finally:
        stopping.set()
        if state is not None:
            local_invoke.remove_state()
        stack.stop()
    return 0


def _invoke(args: argparse.Namespace) -> int:
    try:
        with contextlib.redirect_stdout(sys.stderr):   # handler logs to stderr; stdout holds only the answer
            answer = local_invoke.invoke(args.function, args.event, as_is=args.as_is, arrange=args.arrange,
                                         use_running=not args.no_running)
    except local_invoke.InvokeError as exc:
        print(f"devstack invoke: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:   # what the handler raised: Lambda reports it as an error answer
        traceback.print_exc()
        print(json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}))
        return 1
    print(json.dumps(answer, indent=2))
    return 0


def _put_event(args: argparse.Namespace) -> int:
    """Put the event file's detail on the bus the template's rule listens to, in the running make dev's moto."""
    import boto3

    state = local_invoke.running_dev_stack()
    if state is None:
        print("devstack put-event: no running make dev (start it first: `make dev`)", file=sys.stderr)
        return 1
    try:
        event = local_invoke.load_event(args.event)
    except local_invoke.InvokeError as exc:
        print(f"devstack put-event: {exc}", file=sys.stderr)
        return 2
    events = boto3.client("events", endpoint_url=state["aws_endpoint"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    bus = state.get("event_bus") or "default"   # the template's EventBusName, as the stack applied it
    reply = events.put_events(Entries=[{"Source": event.get("source", "platform.sync"),
                                        "DetailType": event.get("detail-type", "ActiveCampaign Export Requested"),
                                        "Detail": json.dumps(event.get("detail") or {}), "EventBusName": bus}])
    entry = reply["Entries"][0]
    if reply.get("FailedEntryCount"):
        print(f"devstack put-event: refused: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}", file=sys.stderr)
        return 1
    print(f"put event {entry.get('EventId')} on bus {bus}; the make dev log shows the job it starts and, when it "
          "finishes, the published `ActiveCampaign Export Job Finished` event")
    return 0


def _token(args: argparse.Namespace) -> int:
    secret = os.environ.get("JWT_SECRET") or DEV_JWT_SECRET
    print(mint_token(args.uid, args.account_id, secret=secret, ttl=args.ttl,
                     workspace_id=args.workspace_id, parent_account=args.parent_account))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "token":
        return _token(args)
    if args.command == "invoke":
        return _invoke(args)
    if args.command == "put-event":
        return _put_event(args)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
