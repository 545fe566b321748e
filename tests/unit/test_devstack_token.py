"""`python -m devstack token` lasts as long as the banner's dev token (12 h) unless --ttl says otherwise."""

import json

import jwt

from devstack import __main__ as devstack_main
from devstack.stack import DEV_JWT_SECRET


def minted(capsys, *extra: str) -> dict:
    assert devstack_main.main(["token", "--uid", "u1", "--account-id", "a1", *extra]) == 0
    return jwt.decode(capsys.readouterr().out.strip(), DEV_JWT_SECRET, algorithms=["HS256"])


def test_the_default_lifetime_is_the_banners(capsys, monkeypatch):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    claims = minted(capsys)
    assert claims["exp"] - claims["iat"] == devstack_main.DEV_TOKEN_TTL == 12 * 3600
    assert (claims["uid"], claims["account_id"]) == ("u1", "a1")


def test_ttl_overrides_it(capsys, monkeypatch):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    claims = minted(capsys, "--ttl", "60")
    assert claims["exp"] - claims["iat"] == 60


def test_a_rotation_secret_signs_with_its_current_key(capsys, monkeypatch):
    current = "rotation-current-0123456789abcdef0123"
    monkeypatch.setenv("JWT_SECRET", json.dumps({"current": current, "previous": DEV_JWT_SECRET,
                                                 "previous_until": "2099-01-01T00:00:00Z"}))
    assert devstack_main.main(["token", "--uid", "u1", "--account-id", "a1"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), current, algorithms=["HS256"])
    assert claims["uid"] == "u1"
