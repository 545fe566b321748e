"""The end-to-end tier: scripts/smoke.py's steps as pytest tests, against the API at API_URL (a deployed
stack, or `make dev`; CI runs them against the local stack: .github/workflows/ci.yml, job e2e). Skipped
unless API_URL, AC_URL, AC_KEY and JWT_SECRET are all set (docs/deploy.md, "Smoke test"):

    make e2e API_URL=... AC_URL=... AC_KEY=... JWT_SECRET=...

Nothing here starts a local stack or reads the suite's fixtures: only HTTP to API_URL, AC_URL and the
URLs they hand out, as a client would."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

SETTINGS = ("API_URL", "AC_URL", "AC_KEY", "JWT_SECRET")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke.py"


def missing() -> list[str]:
    return [name for name in SETTINGS if not os.environ.get(name, "").strip()]


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"end-to-end tier: set {', '.join(missing())} (tests/e2e/conftest.py)")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)
            if missing():
                item.add_marker(skip)


@pytest.fixture(scope="session")
def smoke_script():
    spec = importlib.util.spec_from_file_location("smoke_script_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def settings() -> dict[str, str]:
    return {name: os.environ[name].strip() for name in SETTINGS}


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
