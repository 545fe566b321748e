"""The end-to-end tier: scripts/smoke.py's steps as pytest tests, over HTTP only, against the API at API_URL (a
deployed stack, or `make dev`) with AC_URL, AC_KEY and JWT_SECRET (docs/deploy.md, "Smoke test"):

    make e2e API_URL=... AC_URL=... AC_KEY=... JWT_SECRET=...

Without those four settings (as in `make test` and CI) the tier starts `python -m devstack serve` in its own
process on free ports, as a developer runs `make dev`, and runs against it: the tests are the same either
way. Nothing here imports the service or reads the suite's fixtures: only HTTP to API_URL, AC_URL and the
URLs they hand out, as a client would."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SETTINGS = ("API_URL", "AC_URL", "AC_KEY", "JWT_SECRET")
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "smoke.py"


def missing() -> list[str]:
    return [name for name in SETTINGS if not os.environ.get(name, "").strip()]


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)   # whole jobs and a live round trip: left out by make test-fast


@pytest.fixture(scope="session")
def smoke_script():
    spec = importlib.util.spec_from_file_location("smoke_script_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Iterator[dict[str, str]]:
    if not missing():
        yield {name: os.environ[name].strip() for name in SETTINGS}
        return
    yield from _local_stack(tmp_path_factory.mktemp("e2e"))


def _local_stack(tmp: Path) -> Iterator[dict[str, str]]:
    """`python -m devstack serve` on free ports, in a developer's environment (none of the variables another
    tier of the suite may have exported), and the four settings a deploy would give."""
    from devstack.stack import DEV_JWT_SECRET

    state_file, log = tmp / "state.json", tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env["DEVSTACK_STATE_FILE"] = str(state_file)
    with open(log, "w") as out:
        serve = subprocess.Popen([sys.executable, "-m", "devstack", "serve", "--port", "0", "--sandbox-port", "0",
                                  "--mongo-port", "0", "--aws-port", "0"], cwd=ROOT, env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not state_file.exists():
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        state = json.loads(state_file.read_text())
        yield {"API_URL": state["api_url"], "AC_URL": state["sandbox_url"], "AC_KEY": "sandbox-key",
               "JWT_SECRET": DEV_JWT_SECRET}
    finally:
        serve.terminate()
        serve.wait(timeout=30)


@pytest.fixture(scope="session")
def smoke(smoke_script, settings):
    """A smoke client of the smoke tenant (SMOKE_UID / SMOKE_ACCOUNT_ID), connected for the session and
    disconnected after it (which also removes its webhooks at AC)."""
    token = smoke_script.sign(settings["JWT_SECRET"], os.environ.get("SMOKE_UID", "smoke-test"),
                              os.environ.get("SMOKE_ACCOUNT_ID", "smoke-test"))
    local = settings["API_URL"].startswith(("http://127.0.0.1", "http://localhost"))
    client = smoke_script.Smoke(settings["API_URL"], token, out=print, poll_seconds=0.25 if local else 2.0)
    client.reset()
    client.connect(settings["AC_URL"], settings["AC_KEY"])
    yield client
    client.disconnect()
