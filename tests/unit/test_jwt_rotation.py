"""JWT secret rotation (acexport/identity.py): the secret is a plain key (the original form) or
{"current", "previous", "previous_until"}; tokens of the previous key verify during the window only."""

import json
import time
from datetime import UTC, datetime

import jwt
import pytest
from acexport.identity import InvalidToken, SecretFormatError, signing_keys, verify, verify_claims

OLD = "old-secret-0123456789abcdef0123456789"
NEW = "new-secret-0123456789abcdef0123456789"
OTHER = "forged-secret-0123456789abcdef012345"
NOW = time.time()


def bearer(key: str, **claims) -> str:
    body = {"uid": "u1", "account_id": "a1", "exp": int(time.time()) + 600, **claims}
    return "Bearer " + jwt.encode(body, key, algorithm="HS256")


def rotation(until: float | str | None = NOW + 3600, previous: str | None = OLD) -> str:
    value = {"current": NEW}
    if previous is not None:
        value["previous"] = previous
    if until is not None:
        value["previous_until"] = until
    return json.dumps(value)


def test_the_old_single_string_form_still_verifies():
    assert verify(bearer(OLD), OLD) == {"uid": "u1", "account_id": "a1"}
    with pytest.raises(InvalidToken):
        verify(bearer(NEW), OLD)


def test_during_the_window_both_keys_verify():
    secret = rotation()
    assert verify_claims(bearer(NEW), secret, now=NOW) == ({"uid": "u1", "account_id": "a1"}, False)
    assert verify_claims(bearer(OLD), secret, now=NOW) == ({"uid": "u1", "account_id": "a1"}, True)


def test_after_the_window_the_previous_key_is_refused():
    secret = rotation(until=NOW + 60)
    assert verify(bearer(OLD), secret, now=NOW + 59)["uid"] == "u1"
    with pytest.raises(InvalidToken):
        verify(bearer(OLD), secret, now=NOW + 61)
    assert verify(bearer(NEW), secret, now=NOW + 61)["uid"] == "u1"    # the current key goes on


def test_an_iso_window_end_with_a_zone_is_read():
    until = datetime.fromtimestamp(NOW + 60, UTC).isoformat().replace("+00:00", "Z")
    assert verify(bearer(OLD), rotation(until=until), now=NOW)["uid"] == "u1"
    with pytest.raises(InvalidToken):
        verify(bearer(OLD), rotation(until=until), now=NOW + 120)


def test_a_forged_token_is_refused_in_the_window_too():
    with pytest.raises(InvalidToken):
        verify(bearer(OTHER), rotation(), now=NOW)


def test_an_expired_token_of_the_previous_key_stays_refused():
    with pytest.raises(InvalidToken, match="Expired"):
        verify(bearer(OLD, exp=int(time.time()) - 3600), rotation(), now=NOW)


def test_current_alone_is_a_plain_key():
    assert signing_keys(json.dumps({"current": NEW})).previous is None
    assert verify(bearer(NEW), json.dumps({"current": NEW}))["uid"] == "u1"
    with pytest.raises(InvalidToken):
        verify(bearer(OLD), json.dumps({"current": NEW}))


@pytest.mark.parametrize("value", [
    "{not json",
    json.dumps({"previous": OLD, "previous_until": NOW + 60}),                  # no current
    json.dumps({"current": "", "previous": OLD, "previous_until": NOW}),
    json.dumps({"current": NEW, "previous": OLD}),                                # a window must end
    json.dumps({"current": NEW, "previous": OLD, "previous_until": "tomorrow"}),
    json.dumps({"current": NEW, "previous": OLD, "previous_until": "2026-12-08T12:00:00"}),   # no zone
    json.dumps({"current": NEW, "previous": OLD, "previous_until": True}),
    json.dumps({"current": NEW, "next": OLD}),                                    # unknown field
    "",
], ids=["not-json", "no-current", "empty-current", "no-window-end", "words", "no-zone", "bool", "unknown", "empty"])
def test_a_malformed_secret_is_a_configuration_error_that_never_names_a_key(value):
    with pytest.raises(SecretFormatError) as caught:
        signing_keys(value)
    assert OLD not in str(caught.value) and NEW not in str(caught.value)
