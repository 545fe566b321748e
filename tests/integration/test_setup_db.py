"""Database setup out of the request path (the operations round; the second security round finding 5): `python -m
acexport.setup_db` creates every index, reports duplicated or owner-less legacy credential records with what to do and
exits
non-zero while the unique index cannot be built; requests never create an index and work without one.

Against the stack's real Mongo wire server (nx-27017; it builds a unique index over duplicates, which
MongoDB refuses with E11000, hence the pre-flight that refuses first)."""

from __future__ import annotations

import io
import json
import os

import pytest
from acexport import caches, logs, migrate_keys, setup_db
from pymongo.errors import DuplicateKeyError, OperationFailure

LEGACY_KEY = "legacy-plaintext-key-0123456789"


def keys_of(coll) -> dict[tuple, dict]:
    """index key -> index info (nx-27017 names indexes its own way, so compare keys, not names)."""
    return {tuple(info["key"]): info for info in coll.index_information().values()}


CREDENTIAL_KEY = (("account_id", 1), ("owner", 1))


def test_the_stack_started_with_every_index(stack, mongo):
    creds = keys_of(mongo[os.environ["CREDENTIALS_COLLECTION"]])
    assert creds[CREDENTIAL_KEY].get("unique") is True
    jobs = keys_of(mongo[os.environ["JOBS_COLLECTION"]])
    assert jobs[(("request_key", 1),)].get("unique") is True
    # field names only: nx-27017 reports created_at's descending order as 1
    assert ("account_id", "owner", "created_at") in {tuple(name for name, _ in key) for key in jobs}
    assert jobs[(("expires_at", 1),)]["expireAfterSeconds"] == 0
    budget = keys_of(mongo[os.environ.get("RATE_BUDGET_COLLECTION", "integrations_activecampaign_rate_budget")])
    assert budget[(("expires", 1),)]["expireAfterSeconds"] == 0


@pytest.fixture
def fresh_db(api, mongo):
    """The service pointed at a database no setup ever ran on."""
    name = "fresh_setup_db"
    mongo.client.drop_database(name)
    api.env(MONGODB_DATABASE=name)
    yield mongo.client[name]
    mongo.client.drop_database(name)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_requests_create_no_index_and_work_without_one(api, fresh_db):
    api.connect()                                                      # a save: 200 without any index
    assert api.export("contacts", "limit=2").status_code == 200
    # Reads the job collection (which used to build its indexes); no job is started, so none outlives the test.
    assert api.call("GET", "/export/jobs").status_code == 200
    for name in (os.environ["CREDENTIALS_COLLECTION"], os.environ["JOBS_COLLECTION"]):
        assert set(keys_of(fresh_db[name])) == {(("_id", 1),)}, name    # only Mongo's own _id index

    assert setup_db.main([]) == 0                                      # the deploy step makes them
    assert keys_of(fresh_db[os.environ["CREDENTIALS_COLLECTION"]])[CREDENTIAL_KEY].get("unique") is True
    assert setup_db.main([]) == 0                                      # and running it again is a no-op


def test_duplicate_legacy_records_are_reported_and_block_the_unique_index(api, fresh_db, capsys):
    creds = fresh_db[os.environ["CREDENTIALS_COLLECTION"]]
    old = {"account_id": "acct-9", "owner": "user-9", "base_url": "https://x.api-us1.com", "api_key": LEGACY_KEY}
    first = creds.insert_one(dict(old)).inserted_id
    second = creds.insert_one(dict(old)).inserted_id
    ownerless = creds.insert_one({"account_id": "acct-9", "base_url": "https://x.api-us1.com",
                                  "api_key": LEGACY_KEY}).inserted_id
    creds.insert_one({"account_id": "acct-9", "owner": "user-10", "api_key": LEGACY_KEY})   # a fine record

    assert setup_db.main(["--check"]) == 1                             # pre-flight only: non-zero, nothing made
    out = capsys.readouterr().out
    assert "DUPLICATES" in out and "account_id='acct-9' owner='user-9'" in out
    assert str(first) in out and str(second) in out
    assert "NO OWNER" in out and str(ownerless) in out
    assert "What to do" in out and LEGACY_KEY not in out
    assert set(keys_of(creds)) == {(("_id", 1),)}

    assert setup_db.main([]) == 1                                      # the unique index cannot be built
    out = capsys.readouterr().out
    assert "ERROR:" in out and "unique index on {account_id, owner} not created" in out and LEGACY_KEY not in out
    assert CREDENTIAL_KEY not in keys_of(creds)                        # not attempted over duplicates
    assert (("request_key", 1),) in keys_of(fresh_db[os.environ["JOBS_COLLECTION"]])   # the others are made

    creds.delete_one({"_id": second})                                  # what the report says to do
    assert setup_db.main([]) == 0
    assert "Indexes ready." in capsys.readouterr().out
    with pytest.raises(DuplicateKeyError):                             # and now the index decides duplicates
        creds.insert_one(dict(old))


def test_commands_name_the_settings_they_need_instead_of_a_traceback(monkeypatch, capsys):
    for name in ("MONGODB_URI", "MONGODB_URI_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    caches.reset()
    try:
        assert setup_db.main([]) == 2
        err = capsys.readouterr().err
        assert "MONGODB_URI" in err and "docs/deploy.md" in err and "Traceback" not in err
        assert migrate_keys.main([]) == 2
        err = capsys.readouterr().err
        assert "MONGODB_URI" in err and "KMS_KEY_ID" in err and "Traceback" not in err
    finally:
        monkeypatch.undo()
        caches.reset()


def test_an_index_build_error_is_the_commands_report_and_requests_log_a_missing_index(api, fresh_db):
    """The second security round finding 5 as the operations round settles it: MongoDB's E11000 on a build is
    setup_db's error (exit 1),
    never a request's; a container that finds a required unique index missing logs it once, naming the
    command, and still answers (replaces test_security_round2's logged-503 test of the request-path build)."""
    def duplicates(coll):
        raise OperationFailure("E11000 duplicate key error", code=11000)

    report = setup_db.Report()
    setup_db._index(report, fresh_db["broken_index_test"], "a unique index", duplicates, required=True)
    assert report.exit_code == 1 and "MongoDB error 11000" in report.errors[0]

    buffer = io.StringIO()
    handler = logs.logger.registered_handler
    previous = handler.setStream(buffer)
    try:
        api.connect()                                                   # no index in this database
        assert api.call("GET", "/auth").json()["data"]["connected"] is True
    finally:
        handler.setStream(previous)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    missing = [line for line in lines if line["message"].startswith("missing index on")]
    assert len(missing) == 1, lines                                     # once per container, not per request
    assert missing[0]["level"] == "ERROR" and "account_id, owner" in missing[0]["message"]
    assert "python -m acexport.setup_db" in missing[0]["message"]
