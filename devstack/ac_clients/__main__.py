"""`python -m devstack.ac_clients` (`make ac-clients`): install the three clients, start the sandbox, run
each client against it and print a table per stream or tool. Exits 1 if a client fails where the sandbox
claims to answer as AC does; "not modelled" rows are AC features the sandbox answers with an honest JSON 404.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devstack.ac_sandbox import NOT_MODELLED, ACSandbox

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KEY = "sandbox-key"


@dataclass(frozen=True)
class Client:
    name: str
    package: str       # pinned, from PyPI
    python: str        # the minor version its package accepts
    driver: str        # the script here that runs it
    pins: tuple[str, ...] = ()   # dependencies held to what the client was released against


CLIENTS = (Client("singer", "tap-activecampaign==1.3.1", "3.11", "run_singer.py"),
           Client("airbyte", "airbyte-source-activecampaign==0.1.11", "3.10", "run_airbyte.py"),
           # 0.12.0 (2025-09) asks fastmcp>=2.10.4 without a ceiling; fastmcp 4 refuses its FastMCP(log_level=)
           Client("mcp", "ac-mcp-server==0.12.0", "3.11", "run_mcp.py", ("fastmcp==2.12.3",)))


def find_python(version: str) -> str | None:
    """pythonX.Y from pyenv or PATH."""
    try:
        found = subprocess.run(["pyenv", "which", f"python{version}"], capture_output=True, text=True, timeout=30,
                               env={**os.environ, "PYENV_VERSION": next(
                                   (v for v in _pyenv_versions() if v.startswith(version + ".")), version)})
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return shutil.which(f"python{version}")


def _pyenv_versions() -> list[str]:
    try:
        return subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True,
                              timeout=30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return []


def install(client: Client) -> tuple[Path | None, str]:
    """The client's venv python under .clients/, installed once per pinned version; or None and why not."""
    venv = ROOT / ".clients" / client.name
    python, stamp = venv / "bin" / "python", venv / f".installed-{'+'.join((client.package, *client.pins))}"
    if stamp.exists():
        return python, "installed"
    base = find_python(client.python)
    if base is None:
        return None, f"no Python {client.python} on this machine (pyenv or PATH); {client.package} needs it"
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[base, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", client.package, *client.pins]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            return None, f"`{' '.join(step[3:])}` failed: {tail}"[:400]
    stamp.touch()
    return python, "installed now"


def run(client: Client, python: Path, base_url: str) -> list[dict]:
    done = subprocess.run([str(python), str(HERE / client.driver), base_url, KEY, json.dumps(sorted(NOT_MODELLED))],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return [{"name": "(the driver)", "path": "", "outcome": "FAILED", "detail": f"exit {done.returncode}: {tail}"}]


def answered(sandbox: ACSandbox) -> str:
    """How many requests the client sent, by the sandbox's status ("150: 200 x 120, 404 x 30")."""
    statuses: dict[int, int] = {}
    for request in list(sandbox.requests):
        statuses[request.status] = statuses.get(request.status, 0) + 1
    return f"{sum(statuses.values())}: " + ", ".join(f"{code} x {n}" for code, n in sorted(statuses.items()))


def table(client: Client, rows: list[dict]) -> str:
    width = max([len(r["name"]) for r in rows] + [14])
    lines = [f"\n{client.name}: {client.package}", f"  {'stream or tool':<{width}}  {'outcome':<12}  detail"]
    lines += [f"  {r['name']:<{width}}  {r['outcome']:<12}  {r['detail']}" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("clients", nargs="*", default=[c.name for c in CLIENTS], help="singer, airbyte, mcp")
    parser.add_argument("--rate-limit", type=float, default=0.0,
                        help="the sandbox's requests per second (AC's is 5; 0 = off, the default: the MCP server "
                             "does not retry a 429, so at 5/s its table would measure its pace, not the answers)")
    args = parser.parse_args(argv)
    failed = 0
    with ACSandbox(rate_limit=args.rate_limit or None) as sandbox:
        print(f"sandbox at {sandbox.base_url} (rate limit: {args.rate_limit or 'off'})", flush=True)
        for client in (c for c in CLIENTS if c.name in args.clients):
            python, how = install(client)
            if python is None:
                print(f"\n{client.name}: {client.package}: NOT RUN: {how}", flush=True)
                failed += 1
                continue
            sandbox.requests.clear()
            rows = run(client, python, sandbox.base_url)
            print(table(client, rows), flush=True)
            print(f"  requests it sent: {answered(sandbox)}", flush=True)
            failed += sum(r["outcome"] == "FAILED" for r in rows)
    print(f"\n{failed} unexpected failure(s)" if failed else "\nevery modelled stream and tool answered")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
