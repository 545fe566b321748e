"""Cold start (issue 12): functions that never call AC do not import `requests`; the SnapStart hooks prime
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
