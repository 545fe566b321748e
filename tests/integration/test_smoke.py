"""scripts/smoke.py (`make smoke`) against `make dev`'s local stack: the same script a deploy ends with
(docs/deploy.md) passes on a working stack (save, page, a full job counted in its file, a live round trip
through the receiver AC was given), says which step failed and why on a broken one, leaves no connection or
webhook behind and never prints the key, the token, the secret or the hook URL."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.integration.conftest import DEMO_KEY

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "smoke.py"


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("smoke_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(smoke, stack, **overrides) -> tuple[int, list[str]]:
    args = {"--api-url": stack.api_url, "--ac-url": stack.sandbox.base_url, "--ac-key": DEMO_KEY,
            "--jwt-secret": stack.jwt_secret, **overrides}
    lines: list[str] = []
    code = smoke.main([item for pair in args.items() for item in pair], out=lines.append)
    return code, lines


def credentials(mongo):
    return mongo[os.environ["CREDENTIALS_COLLECTION"]]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_smoke_passes_on_the_local_stack_and_leaves_nothing(api, mongo, smoke):
    code, lines = run(smoke, api.stack)
    assert code == 0, lines
    assert lines[-1] == "smoke test passed"
    steps = [line.split(" -> ")[0] for line in lines if line.startswith("ok")]
    assert steps == ["ok   GET /auth", "ok   POST /auth", "ok   GET /auth",
                     "ok   GET /export/contacts?page=1&limit=5",
                     "ok   POST /export/accounts/jobs", "ok   GET /export/jobs/<id>",
                     f"ok   the job's file ({steps[6].split('(')[1].split(')')[0]}) holds "
                     f"{len(api.sandbox.accounts)} accounts, as the job says",
                     "ok   GET /live", "ok   PUT /live",
                     "ok   the webhook is registered at AC (its URL is not printed: it holds the secret)",
                     "ok   POST <receiver> (a test delivery)", steps[11], "ok   DELETE /live",
                     "ok   POST <receiver> (the same URL after DELETE /live)", "ok   DELETE /auth", "ok   GET /auth"]
    assert steps[11].startswith("ok   GET /changes: contact.updated of contact ")
    assert api.sandbox.count("/contacts") >= 1                       # the page really came from AC
    jobs = mongo[os.environ["JOBS_COLLECTION"]].find_one({"owner": "smoke-test"})
    assert jobs["status"] == "succeeded" and jobs["resource"] == "accounts"
    changes = list(mongo[os.environ.get("CHANGES_COLLECTION", "integrations_activecampaign_changes")].find())
    assert len(changes) == 1 and changes[0]["owner"] == "smoke-test"  # the test delivery, in the smoke feed only
    assert api.sandbox.webhooks == {}                                 # the webhook is gone from AC
    assert credentials(mongo).count_documents({}) == 0               # the smoke tenant's key is gone
    printed = "\n".join(lines)
    assert DEMO_KEY not in printed and api.stack.jwt_secret not in printed and "/hooks/" not in printed


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_connection_left_by_an_interrupted_run_is_deleted_first(api, mongo, smoke):
    token = api.token(uid="smoke-test", account_id="smoke-test")
    api.connect(token=token)
    assert api.call("PUT", "/live", token=token).status_code == 200     # live changes left on too
    assert len(api.sandbox.webhooks) == 1
    code, lines = run(smoke, api.stack)
    assert code == 0, lines
    assert any("earlier run" in line for line in lines)
    assert credentials(mongo).count_documents({}) == 0
    assert api.sandbox.webhooks == {}


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_wrong_jwt_secret_fails_at_the_first_step_with_a_hint(api, smoke):
    wrong = "not-the-stack-secret-0123456789abcdef"
    code, lines = run(smoke, api.stack, **{"--jwt-secret": wrong})
    assert code == 1
    assert lines[-1].startswith("FAIL GET /auth: 403") and "JWT_SECRET" in lines[-1]
    assert wrong not in "\n".join(lines)


def test_a_key_ac_refuses_fails_the_save_and_stores_nothing(api, mongo, smoke):
    code, lines = run(smoke, api.stack, **{"--ac-key": "wrong-key-123"})
    assert code == 1
    assert lines[-1].startswith("FAIL POST /auth: 4"), lines
    assert "wrong-key-123" not in "\n".join(lines)
    assert credentials(mongo).count_documents({}) == 0


def test_missing_settings_are_named(smoke, capsys, monkeypatch):
    for name in ("API_URL", "AC_URL", "AC_KEY", "JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert smoke.main([], out=lambda line: None) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in ("API_URL", "AC_URL", "AC_KEY", "JWT_SECRET"))
