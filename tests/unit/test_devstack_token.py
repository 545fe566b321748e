"""`python -m devstack token` lasts as long as the banner's dev token (12 h) unless --ttl says otherwise."""

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
