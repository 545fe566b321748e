"""Cold start (the real-latency round): functions that never call AC do not import `requests`; the SnapStart hooks prime
what an AC-calling function needs and forget every per-container cache after a restore."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from acexport import caches, snapstart
from acexport.ac import client

ROOT = Path(__file__).resolve().parents[2]
NEVER_CALL_AC = ["authorizer", "auth_status", "delete_auth", "export_job_start", "export_job_status",
                 "export_job_list", "export_job_cancel", "export_job_events", "changes_reconcile",
                 "reconcile_schedule"]


@pytest.mark.parametrize("name", NEVER_CALL_AC)
def test_functions_that_never_call_ac_do_not_import_requests(name):
    probe = "import sys, app; print('requests' in sys.modules, 'acexport.ac.client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT / "functions" / name, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(ROOT / "layers" / "common"),
                                                     "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})
    assert out.stdout.split() == ["False", "False"]


def test_save_auth_creates_its_ac_session_at_init():
    probe = "import sys, app; from acexport.ac import client; print(client._session is not None)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT / "functions" / "save_auth", capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(ROOT / "layers" / "common"),
                                                     "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})
    assert out.stdout.strip() == "True"


def test_snapstart_hooks_register_with_the_runtime_and_do_what_they_say(monkeypatch):
    hooks = {}
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = lambda hook: hooks.setdefault("before", hook)
    runtime.register_after_restore = lambda hook: hooks.setdefault("after", hook)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    caches.reset()
    snapstart.register()
    assert hooks == {"before": snapstart.prime, "after": snapstart.restore}
    hooks["before"]()
    assert client._session is not None                  # primed: the pooled AC session exists
    hooks["after"]()
    assert client._session is None                       # restored: nothing made before the snapshot is kept


def test_the_snapshot_holds_the_aws_sdk_modules_but_no_sdk_session():
    """prime() imports boto3 (a first request's biggest import) and makes no session or client, which would
    resolve credentials into the snapshot."""
    probe = ("import sys; from acexport import snapstart; assert 'boto3' not in sys.modules; snapstart.prime(); "
             "import boto3; print('boto3' in sys.modules, boto3.DEFAULT_SESSION is None)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "layers" / "common"), "PATH": "/usr/bin:/bin",
                              "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "test"})
    assert out.stdout.split() == ["True", "True"]


def test_without_the_runtime_module_nothing_happens(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)    # import fails as off Lambda
    snapstart.register()


# Every function, imported as Lambda imports it (a fresh layer each time), with a stand-in for the runtime's
# snapshot_restore_py: (does its init import the AC client, are the hooks registered). One process for all.
_EVERY_FUNCTION_PROBE = """
import importlib, json, sys, types
hooks = []
runtime = types.ModuleType("snapshot_restore_py")
runtime.register_before_snapshot = lambda hook: hooks.append(("before", hook.__module__ + "." + hook.__name__))
runtime.register_after_restore = lambda hook: hooks.append(("after", hook.__module__ + "." + hook.__name__))
found = {}
for name in sys.argv[1:]:
    for module in [m for m in sys.modules if m == "app" or m == "acexport" or m.startswith("acexport.")]:
        del sys.modules[module]
    sys.modules["snapshot_restore_py"] = runtime
    hooks.clear()
    sys.path.insert(0, "functions/" + name)
    importlib.import_module("app")
    sys.path.pop(0)
    found[name] = ["acexport.ac.client" in sys.modules, sorted(hooks)]
print(json.dumps(found))
"""
AC_AT_INIT = {"export_contacts", "export_deals", "export_accounts", "export_worker", "export_job_dead_letters",
              "save_auth", "live_enable", "live_status", "live_disable"}


@pytest.mark.slow   # one subprocess importing all 19 functions: ~3 s here
def test_every_function_that_calls_ac_registers_the_snapstart_hooks_once():
    """The template turns SnapStart on for every function; the hooks are registered in one place (the AC
    client's import), so a function whose init imports the client cannot miss them, and none registers twice."""
    import json

    names = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
    out = subprocess.run([sys.executable, "-c", _EVERY_FUNCTION_PROBE, *names], cwd=ROOT, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(ROOT / "layers" / "common"),
                                                     "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})
    found = json.loads(out.stdout)
    assert {name for name, (calls_ac, _) in found.items() if calls_ac} == AC_AT_INIT
    for name, (calls_ac, hooks) in found.items():
        expected = [["after", "acexport.snapstart.restore"], ["before", "acexport.snapstart.prime"]]
        assert hooks == (expected if calls_ac else []), name


def test_back_off_jitter_does_not_come_from_the_snapshot():
    """Containers restored from one snapshot share `random`'s state; the client's jitter is drawn from the OS."""
    import random

    random.seed(7)
    first = [client._backoff(3) for _ in range(3)]
    random.seed(7)
    assert [client._backoff(3) for _ in range(3)] != first
