"""JWT verification: HS256 only, required claims, expiry; the context handlers get."""

import base64
import json
import time

import jwt
import pytest
from acexport.identity import InvalidToken, verify

SECRET = "unit-test-secret-0123456789abcdef0123"


def token(claims=None, *, secret=SECRET, algorithm="HS256", headers=None):
    body = {"uid": "u1", "account_id": "a1", "exp": int(time.time()) + 600, **(claims or {})}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm=algorithm,
                      headers=headers)


def test_valid_token_gives_context():
    ctx = verify(f"Bearer {token({'workspace_id': 'w1', 'account_id': 42})}", SECRET)
    assert ctx == {"uid": "u1", "account_id": "42", "workspace_id": "w1"}


def _unsigned(claims):
    def b64(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


@pytest.mark.parametrize("authorization", [
    None,
    "",
    "Bearer",
    f"Basic {token()}",
    token(),                                                   # no scheme
    f"Bearer {token(secret='another-secret-0123456789abcdef012')}",
    f"Bearer {token({'exp': int(time.time()) - 3600})}",        # expired
    f"Bearer {token({'exp': None})}",                           # no exp
    f"Bearer {token({'uid': None})}",
    f"Bearer {token({'account_id': None})}",
    f"Bearer {token({'uid': ['u1']})}",                         # wrong type
    f"Bearer {token({'account_id': {'id': 1}})}",
    f"Bearer {token({'uid': ''})}",
    f"Bearer {token({'nbf': int(time.time()) + 3600})}",        # not yet valid
    f"Bearer {token(algorithm='HS512')}",                       # another algorithm
    "Bearer " + _unsigned({"uid": "u1", "account_id": "a1", "exp": int(time.time()) + 600}),
    "Bearer not.a.jwt",
    "Bearer %%%.###.$$$",
    "Bearer " + "a" * 9000,
])
def test_refused(authorization):
    with pytest.raises(InvalidToken):
        verify(authorization, SECRET)


def test_public_key_used_as_hmac_secret_is_refused():
    """RS/HS confusion: a token HMAC-signed with a public key text is refused for a different secret,
    and an RS256 token is refused because the algorithm is fixed to HS256."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs = jwt.encode({"uid": "u1", "account_id": "a1", "exp": int(time.time()) + 60}, key, algorithm="RS256")
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InvalidToken):
        verify(f"Bearer {rs}", pem.decode())
    with pytest.raises(InvalidToken):
        verify(f"Bearer {rs}", SECRET)
