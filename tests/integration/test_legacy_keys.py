"""Records the old Node service wrote with a plaintext api_key keep working, and the one-off
migration encrypts them in place without printing them."""

import os

import pytest
from acexport import migrate_keys

from tests.integration.conftest import DEMO_KEY


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_plaintext_record_works_and_is_migrated(api, mongo, capsys):
    collection = mongo[os.environ["CREDENTIALS_COLLECTION"]]
    collection.insert_one({"account_id": "account-1", "owner": "user-1", "workspace_id": "w",
                           "base_url": api.sandbox.base_url, "api_key": DEMO_KEY})
    assert api.export("contacts", "limit=2").status_code == 200            # legacy record readable

    assert migrate_keys.main([]) == 0                                       # dry run changes nothing
    assert collection.find_one({})["api_key"] == DEMO_KEY
    assert migrate_keys.main(["--apply"]) == 0
    doc = collection.find_one({})
    assert doc["key_encryption"] == "kms" and DEMO_KEY.encode() not in bytes(doc["api_key"])
    out = capsys.readouterr().out
    assert "Encrypted 1 plaintext key(s); 1 updated" in out and DEMO_KEY not in out

    assert api.export("contacts", "limit=2").status_code == 200            # still works, now decrypted
    assert migrate_keys.migrate(apply=True) == {"plaintext": 0, "encrypted": 0, "skipped": 0}
