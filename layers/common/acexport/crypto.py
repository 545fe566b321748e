"""KMS encryption of stored api keys.

Each key is encrypted directly with KMS (keys are far below KMS's 4 KB limit) under an encryption
context of `{account_id, owner}`: a ciphertext copied into another tenant's record fails to decrypt.
boto3 is imported on first use so functions that never touch KMS don't pay for it at cold start.
"""

from __future__ import annotations

import threading

from acexport.errors import ServiceUnavailable, StoredCredentialsRejected
from acexport.settings import get_settings

_client = None
_lock = threading.Lock()


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


def reset_client() -> None:
    """Forget the client (tests that switch endpoints)."""
    global _client
    _client = None


def _context(account_id: str, owner: str) -> dict[str, str]:
    return {"account_id": account_id, "owner": owner}


def encrypt(plaintext: str, *, account_id: str, owner: str) -> bytes:
    key_id = get_settings().kms_key_id
    if not key_id:
        raise ServiceUnavailable("Configuration missing: set KMS_KEY_ID")
    try:
        reply = _kms().encrypt(KeyId=key_id, Plaintext=plaintext.encode(),
                               EncryptionContext=_context(account_id, owner))
    except Exception as exc:  # botocore ClientError / connection errors: KMS is unavailable to us
        raise ServiceUnavailable("Key service unavailable; retry later") from exc
    return reply["CiphertextBlob"]


def decrypt(ciphertext: bytes, *, account_id: str, owner: str) -> str:
    try:
        reply = _kms().decrypt(CiphertextBlob=bytes(ciphertext), EncryptionContext=_context(account_id, owner))
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in {"InvalidCiphertextException", "IncorrectKeyException"}:
            # Not this tenant's ciphertext (or a corrupted record): the connection must be made again.
            raise StoredCredentialsRejected() from None
        raise ServiceUnavailable("Key service unavailable; retry later") from exc
    return reply["Plaintext"].decode()
