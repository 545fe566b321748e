"""KMS encryption of stored api keys.

Each key is encrypted directly with KMS (keys are far below KMS's 4 KB limit) under an encryption
context of `{account_id, owner}`: a ciphertext copied into another tenant's record fails to decrypt.
boto3 is imported on first use so functions that never touch KMS don't pay for it at cold start.

Decrypted keys are kept in the warm container for DECRYPT_CACHE_SECONDS, keyed by a digest of the
ciphertext *and* the encryption context (so a copied ciphertext never hits another tenant's entry).
The record itself is read from Mongo on every request, so a deleted or replaced connection takes
effect at once; the cache only saves the KMS round trip (latency and cost) on each export page.
"""

from __future__ import annotations

import hashlib
import threading
import time

from acexport import caches
from acexport.errors import ServiceUnavailableError, StoredCredentialsRejectedError
from acexport.settings import get_settings

DECRYPT_CACHE_SECONDS = 300
DECRYPT_CACHE_SIZE = 256

_client = None
_lock = threading.Lock()
_plaintexts: dict[str, tuple[float, str]] = {}


def _kms():
    global _client
    with _lock:
        if _client is None:
            import boto3
            from botocore.config import Config

            _client = boto3.client("kms", config=Config(
                connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"},
            ))
        return _client


@caches.register
def reset_client() -> None:
    """Forget the client and the decrypted keys (tests that switch endpoints)."""
    global _client
    _client = None
    _plaintexts.clear()


def _context(account_id: str, owner: str) -> dict[str, str]:
    return {"account_id": account_id, "owner": owner}


def encrypt(plaintext: str, *, account_id: str, owner: str) -> bytes:
    key_id = get_settings().kms_key_id
    if not key_id:
        raise ServiceUnavailableError("Configuration missing: set KMS_KEY_ID")
    try:
        reply = _kms().encrypt(KeyId=key_id, Plaintext=plaintext.encode(),
                               EncryptionContext=_context(account_id, owner))
    except Exception as exc:  # botocore ClientError / connection errors: KMS is unavailable to us
        raise ServiceUnavailableError("Key service unavailable; retry later") from exc
    return reply["CiphertextBlob"]


def decrypt(ciphertext: bytes, *, account_id: str, owner: str) -> str:
    entry = hashlib.sha256(b"\0".join([bytes(ciphertext), account_id.encode(), owner.encode()])).hexdigest()
    hit = _plaintexts.get(entry)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    plaintext = _kms_decrypt(ciphertext, account_id=account_id, owner=owner)
    with _lock:
        if len(_plaintexts) >= DECRYPT_CACHE_SIZE:
            _plaintexts.clear()
        _plaintexts[entry] = (time.monotonic() + DECRYPT_CACHE_SECONDS, plaintext)
    return plaintext


def _kms_decrypt(ciphertext: bytes, *, account_id: str, owner: str) -> str:
    try:
        reply = _kms().decrypt(CiphertextBlob=bytes(ciphertext), EncryptionContext=_context(account_id, owner))
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in {"InvalidCiphertextException", "IncorrectKeyException"}:
            # Not this tenant's ciphertext (or a corrupted record): the connection must be made again.
            raise StoredCredentialsRejectedError() from None
        raise ServiceUnavailableError("Key service unavailable; retry later") from exc
    return reply["Plaintext"].decode()
