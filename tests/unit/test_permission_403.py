"""AC's two 403s told apart one answer at a time (ac/client.py): the documented permission body
(AC reference, GET /lists 403 example, declared text/plain) is PermissionDenied, at once and without
`reconnect`; any other 403 stays a rejected key. Only the action AC names reaches the message."""

import json

import pytest
import requests
from acexport.ac.client import permission_refused
from acexport.errors import PermissionDeniedError, StoredCredentialsRejectedError
from requests.structures import CaseInsensitiveDict

from tests.unit.test_ac_client import failed, limiter, make_client, retried  # noqa: F401  (a fixture, helpers)


def answer(status: int, body, content_type: str | None = "text/plain") -> requests.Response:
    built = requests.Response()
    built.status_code = status
    built._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    built.headers = CaseInsensitiveDict({"Content-Type": content_type} if content_type else {})
    built.encoding = "utf-8"
    return built


DOCUMENTED = {"errors": [{"status": 403, "title": "Forbidden", "detail": "You do not have permission to view deals."}]}


def test_the_permission_body_is_permission_denied_at_once_without_reconnect(clock, limiter):  # noqa: F811
    client = make_client(clock)
    error = failed(client._classify(answer(403, DOCUMENTED), 1, "/deals"))
    assert isinstance(error, PermissionDeniedError)
    assert error.status == 403 and "reconnect" not in error.body()
    assert "permission to view deals (AC: GET /deals)" in error.message


@pytest.mark.parametrize("body", [b'{"message": "Forbidden"}', b"", b"<html>no</html>",
                                  json.dumps({"errors": [{"detail": "Invalid API key"}]}).encode()])
def test_any_other_403_is_still_a_rejected_key(clock, limiter, body):  # noqa: F811
    client = make_client(clock)
    failure, _ = retried(client._classify(answer(403, body, None), 1, "/deals"))
    assert isinstance(failure, StoredCredentialsRejectedError)


def test_only_letters_and_spaces_of_ac_text_reach_the_message():
    sneaky = {"errors": [{"detail": "You do not have permission to view deals. key=abc123<script>"}]}
    assert permission_refused(answer(403, sneaky), "/deals") is None          # not AC's sentence: not trusted
    long = {"errors": [{"detail": "You do not have permission to " + "x" * 300 + "."}]}
    assert permission_refused(answer(403, long), "/deals") is None
    plain = permission_refused(answer(403, DOCUMENTED, None), "/deals")        # no Content-Type: still read
    assert plain is not None and "view deals" in plain.message
