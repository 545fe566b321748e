"""One-off: encrypt api keys that the old Node service stored in plaintext.

    python -m acexport.migrate_keys            # report what would change
    python -m acexport.migrate_keys --apply    # encrypt them

Runs with the same settings as the functions (MONGODB_URI or MONGODB_URI_SECRET_ARN, KMS_KEY_ID,
CREDENTIALS_COLLECTION). Each record is replaced only if it is still the plaintext it read (the update
matches the old value), so a save or delete running at the same time is never overwritten. Keys are
never printed: the report counts records and names them by account and owner only.
"""

from __future__ import annotations

import argparse
import sys

from bson.binary import Binary
from pymongo.errors import PyMongoError

from acexport.credentials import crypto, store
from acexport.errors import ServiceUnavailableError

NEEDS = ("Needs MONGODB_URI (or MONGODB_URI_SECRET_ARN), MONGODB_DATABASE, CREDENTIALS_COLLECTION and, with "
         "--apply, KMS_KEY_ID (the stack's ApiKeyEncryptionKeyArn output) and AWS credentials allowed to use "
         "that key; docs/deploy.md, 'Migrating legacy keys'.")


def migrate(*, apply: bool) -> dict[str, int]:
    collection = store.collection()
    counts = {"plaintext": 0, "encrypted": 0, "skipped": 0}
    fields = {"_id": 1, "account_id": 1, "owner": 1, "api_key": 1}
    for doc in collection.find({"key_encryption": {"$ne": "kms"}}, fields):
        plaintext = doc.get("api_key")
        if not isinstance(plaintext, str) or not plaintext or not doc.get("account_id") or not doc.get("owner"):
            counts["skipped"] += 1
            continue
        counts["plaintext"] += 1
        if not apply:
            continue
        ciphertext = crypto.encrypt(plaintext, account_id=str(doc["account_id"]), owner=str(doc["owner"]))
        result = collection.update_one({"_id": doc["_id"], "api_key": plaintext},
                                       {"$set": {"api_key": Binary(ciphertext), "key_encryption": "kms"}})
        counts["encrypted"] += result.modified_count
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apply", action="store_true", help="encrypt (default: only report)")
    args = parser.parse_args(argv)
    try:
        counts = migrate(apply=args.apply)
    except ServiceUnavailableError as exc:   # a missing setting, an unreadable secret, KMS refusing: names, no values
        print(f"migrate_keys: {exc.message}. {NEEDS}", file=sys.stderr)
        return 2
    except PyMongoError as exc:
        print(f"migrate_keys: cannot reach MongoDB ({type(exc).__name__}). {NEEDS}", file=sys.stderr)
        return 2
    print(("Encrypted" if args.apply else "Would encrypt") + f" {counts['plaintext']} plaintext key(s); "
          f"{counts['encrypted']} updated, {counts['skipped']} record(s) skipped (no key, account or owner).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
