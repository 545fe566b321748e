"""`python -m devstack` (what `make dev` runs): the whole service locally, no AWS account, no Docker.

    python -m devstack [serve] [--port 3000] [--data-dir .devstack] [--no-sandbox]
                       [--mongo-uri URI] [--aws-endpoint URL [--kms-key-id ID]]
        Start LocalStack (API on $PORT, default 3000), print the URLs, a dev token and ready-to-paste
        curl commands, then serve until Ctrl-C / SIGTERM.

    python -m devstack token --uid U --account-id A [--workspace-id W] [--parent-account P] [--ttl S]
        Print a token signed with $JWT_SECRET, or the dev secret the local stack uses by default.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from devstack.stack import DEV_JWT_SECRET, LocalStack, mint_token

BASE = "/v1/integrations/activecampaign"
DEMO_API_KEY = "sandbox-key"
DEV_UID, DEV_ACCOUNT = "dev-user", "dev-account"
DEV_TOKEN_TTL = 12 * 3600


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
    token = sub.add_parser("token", help="print a platform JWT for local calls")
    token.add_argument("--uid", required=True)
    token.add_argument("--account-id", required=True)
    token.add_argument("--workspace-id")
    token.add_argument("--parent-account")
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)")
    return parser


def _banner(stack: LocalStack, token: str) -> str:
    api = stack.api_url
    lines = [
        "",
        "ActiveCampaign integration - local stack (no AWS, no Docker)",
        "",
        f"  API             {api}{BASE}/...",
    ]
    if stack.sandbox is not None:
        lines.append(f"  AC sandbox      {stack.sandbox.base_url}   (api key: {DEMO_API_KEY})")
    lines += [
        f"  MongoDB         {stack.mongo_uri}   (database {stack.env.get('MONGODB_DATABASE')}, "
        f"collection {stack.env.get('CREDENTIALS_COLLECTION')})",
        f"  KMS (moto)      {stack.moto_url}   key {stack.kms_key_id}",
        f"  Jobs (moto)     queue {stack.env.get('EXPORT_QUEUE_URL')}, bucket {stack.env.get('EXPORT_BUCKET')} "
        "(docs/jobs.md)",
        "",
        f"Dev token (uid {DEV_UID}, account_id {DEV_ACCOUNT}, valid 12 h); more with "
        "`python -m devstack token --uid U --account-id A`:",
        "",
        f"  export API={api}{BASE}",
        f"  export TOKEN={token}",
        "",
        "Try it:",
        "",
    ]
    base_url = stack.sandbox.base_url if stack.sandbox is not None else "https://<account>.api-us1.com"
    body = f'{{"api_key": "{DEMO_API_KEY}", "base_url": "{base_url}"}}'
    lines += [
        "  # save the connection (validated against the AC sandbox)",
        f"""  curl -s -X POST "$API/auth" -H "Authorization: Bearer $TOKEN" """
        f"""-H "Content-Type: application/json" -d '{body}'""",
        "  # connection status",
        """  curl -s "$API/auth" -H "Authorization: Bearer $TOKEN\"""",
        "  # export contacts (-g: let curl pass the [ ] of filters/orders through)",
        """  curl -sg "$API/export/contacts?page=1&limit=5&filters[firstName]=John&orders[email]=ASC" """
        """-H "Authorization: Bearer $TOKEN\"""",
        "  # deals and accounts",
        """  curl -s "$API/export/deals?page=1&limit=5" -H "Authorization: Bearer $TOKEN\"""",
        """  curl -s "$API/export/accounts?page=1&limit=5" -H "Authorization: Bearer $TOKEN\"""",
        "  # a full export (a job): start it, then follow it until data.file.url is there",
        """  curl -s -X POST "$API/export/contacts/jobs" -H "Authorization: Bearer $TOKEN" """
        """-H "Content-Type: application/json" -d '{"format": "csv"}'""",
        """  curl -s "$API/export/jobs/<id>" -H "Authorization: Bearer $TOKEN\"""",
        "  # delete the connection",
        """  curl -s -X DELETE "$API/auth" -H "Authorization: Bearer $TOKEN\"""",
        "",
        "Handler logs follow below. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


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

    try:
        sandbox_port = args.sandbox_port if args.sandbox_port is not None else int(
            os.environ.get("AC_SANDBOX_PORT") or 8010)
        stack = LocalStack(port=port, ac_sandbox=not args.no_sandbox, data_dir=args.data_dir,
                           sandbox_port=sandbox_port, mongo_uri=args.mongo_uri,
                           aws_endpoint=args.aws_endpoint,
                           kms_key_id=args.kms_key_id).start()
    except OSError as exc:
        print(f"devstack: cannot start: {exc} (is port {port} in use? try PORT=0 or --port 3001)",
              file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"devstack: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        token = mint_token(DEV_UID, DEV_ACCOUNT, secret=stack.jwt_secret, ttl=DEV_TOKEN_TTL)
        print(_banner(stack, token), flush=True)
        while not stopping.wait(0.5):
            pass
        print("\nstopping...", file=sys.stderr, flush=True)
    finally:
        stack.stop()
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
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
