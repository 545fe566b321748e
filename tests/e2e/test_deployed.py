"""The product end to end, over HTTP only, against API_URL (tests/e2e/conftest.py): the same steps as
scripts/smoke.py, one test each, plus what a client can tell from a refused token."""

from __future__ import annotations

import os
import time

import jwt
import requests

BASE = "/v1/integrations/activecampaign"


def test_the_saved_connection_reads_back(smoke):
    status = smoke.call("GET", "/auth", 200)["data"]
    assert status["connected"] is True and not status.get("needs_reconnect")


def test_a_page_of_contacts(smoke):
    assert 0 <= smoke.page() <= 5


def test_a_full_job_runs_to_the_end_and_its_file_holds_every_record(smoke):
    resource = os.environ.get("SMOKE_JOB_RESOURCE", "accounts")
    assert smoke.job(resource, float(os.environ.get("SMOKE_JOB_SECONDS") or 600)) >= 0


def test_a_live_change_goes_through_the_registered_receiver(smoke, settings):
    smoke.live(settings["AC_URL"], settings["AC_KEY"])
    assert smoke.call("GET", "/live", 200)["data"]["enabled"] is False


def test_a_refused_token_answers_what_api_gateway_allows(settings, smoke_script):
    """No token: 401 from API Gateway itself. Expired, forged, malformed: all 403 {"message":"Forbidden"},
    alike (simple responses can only allow or deny; docs/decisions.md, "What a refused token answers")."""
    url = settings["API_URL"].rstrip("/") + BASE + "/auth"
    assert requests.get(url, timeout=35).status_code == 401
    now = int(time.time())
    key = smoke_script.signing_keys(settings["JWT_SECRET"]).current
    expired = jwt.encode({"uid": "smoke-test", "account_id": "smoke-test", "exp": now - 600}, key, algorithm="HS256")
    forged = jwt.encode({"uid": "smoke-test", "account_id": "smoke-test", "exp": now + 600},
                        "not-the-stack-secret-0123456789abcdef", algorithm="HS256")
    answers = [requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=35)
               for token in (expired, forged, "not-a-jwt")]
    assert [(a.status_code, a.json()) for a in answers] == [(403, {"message": "Forbidden"})] * 3
