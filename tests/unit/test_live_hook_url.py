"""The URL PUT /live registers at AC (docs/live.md, "The webhook URL"): `https://` + the domain API Gateway
received the request on, or HOOKS_BASE_URL; never a request header, and never anything but a bare origin
(no userinfo, path, query or fragment), so a caller cannot point a tenant's webhook somewhere else."""

from __future__ import annotations

import pytest
from acexport import caches
from acexport.live.hooks import receiver_url
from acexport.settings import ConfigurationError

PATH = "/v1/integrations/activecampaign/hooks"
API = "abcdef1234.execute-api.us-east-1.amazonaws.com"


@pytest.fixture
def settings(monkeypatch):
    def apply(**env):
        for name in ("HOOKS_BASE_URL", "ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        caches.reset()

    yield apply
    caches.reset()


def event(domain=API, **headers):
    return {"requestContext": {"domainName": domain}, "headers": headers}


@pytest.mark.parametrize("headers", [
    {"x-forwarded-proto": "https://attacker.example/c?x="},
    {"X-Forwarded-Proto": "http"},
    {"host": "attacker.example", "x-forwarded-host": "attacker.example"},
    {"forwarded": "proto=http;host=attacker.example"},
])
def test_request_headers_never_shape_the_url(settings, headers):
    settings()
    assert receiver_url(event(**headers), PATH) == f"https://{API}{PATH}"


@pytest.mark.parametrize("domain", ["", "user@attacker.example", "attacker.example/c?x=", "a b.example",
                                    f"{API}:8443", f"{API}#frag", "attacker.example\\@x"])
def test_a_domain_that_is_not_a_bare_host_is_refused(settings, domain):
    settings()
    with pytest.raises(ConfigurationError):
        receiver_url(event(domain), PATH)


@pytest.mark.parametrize(("base", "origin"), [("https://api.example.com", "https://api.example.com"),
                                              ("https://API.example.com/", "https://api.example.com"),
                                              ("https://api.example.com:443", "https://api.example.com")])
def test_hooks_base_url_wins_over_the_domain(settings, base, origin):
    settings(HOOKS_BASE_URL=base)
    assert receiver_url(event(**{"x-forwarded-proto": "http"}), PATH) == origin + PATH


@pytest.mark.parametrize("base", ["http://api.example.com", "https://api.example.com:8443",
                                  "https://user:pw@api.example.com", "https://api.example.com/prefix",
                                  "https://api.example.com?x=1", "https://api.example.com#x", "api.example.com",
                                  "https://attacker.example/c?x=://api.example.com"])
def test_a_hooks_base_url_that_is_not_an_https_origin_is_a_configuration_error(settings, base):
    settings(HOOKS_BASE_URL=base)
    with pytest.raises(ConfigurationError):
        receiver_url(event(), PATH)


def test_the_local_stack_is_served_over_http_on_loopback_only(settings):
    settings(ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL="true")
    assert receiver_url(event("127.0.0.1:8080"), PATH) == f"http://127.0.0.1:8080{PATH}"
    assert receiver_url(event(API, **{"x-forwarded-proto": "http"}), PATH) == f"https://{API}{PATH}"
