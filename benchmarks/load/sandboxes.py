"""Several AC sandboxes in one process: one per AC account of the load run, each with its own data, its own
api keys and AC's limit of 5 requests per sliding second (429 + Retry-After beyond it).

    python benchmarks/load/sandboxes.py CONFIG.json READY.json LOG.json

CONFIG is a list of accounts: {"seed", "contacts", "deals", "accounts", "keys": [...], "rate_limit"}.
When every sandbox listens, READY gets their base URLs (same order). On SIGTERM/SIGINT the process writes
every request each sandbox received (monotonic arrival time, path, status, key) to LOG and exits 0.
It also stops by itself after --max-seconds (default 900), so it can never be left running.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from devstack.ac_sandbox import ACSandbox  # noqa: E402


def sandbox_for(account: dict) -> ACSandbox:
    return ACSandbox(port=0, api_keys=tuple(account["keys"]), rate_limit=account.get("rate_limit", 5.0),
                     seed=account["seed"], contacts=account["contacts"], deals=account["deals"],
                     accounts=account["accounts"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("ready")
    parser.add_argument("log")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    accounts = json.loads(Path(args.config).read_text())
    sandboxes = [sandbox_for(account).start() for account in accounts]
    try:
        tmp = Path(args.ready + ".tmp")
        tmp.write_text(json.dumps([sb.base_url for sb in sandboxes]))
        os.replace(tmp, args.ready)   # appears whole
        stop.wait(args.max_seconds)
    finally:
        for sb in sandboxes:
            sb.stop()
        log = [[[r.at, r.path, r.status, r.api_key] for r in list(sb.requests)] for sb in sandboxes]
        tmp = Path(args.log + ".tmp")
        tmp.write_text(json.dumps(log))
        os.replace(tmp, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
