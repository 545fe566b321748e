"""The SSRF guard: only AC API hosts over https get through, normalised; everything else is a 400."""

import pytest
from acexport.ac.base_url import normalise_base_url
from acexport.errors import BadRequestError

ACCEPTED = {
    "https://acme.api-us1.com": "https://acme.api-us1.com",
    "https://acme.api-us1.com/": "https://acme.api-us1.com",
    "https://acme.api-us1.com/api/3": "https://acme.api-us1.com",
    "https://acme.api-us1.com/api/3/": "https://acme.api-us1.com",
    "  https://ACME.api-us1.com  ": "https://acme.api-us1.com",
    "https://acme-co.api-us1.com": "https://acme-co.api-us1.com",
    "https://123456demo.activehosted.com": "https://123456demo.activehosted.com",
}

REJECTED = [
    "http://acme.api-us1.com",                      # not https
    "ftp://acme.api-us1.com",
    "acme.api-us1.com",                             # no scheme
    "https://api-us1.com",                          # no account label
    "https://acme.api-us1.com:8443",                # port
    "https://acme.api-us1.com:443",
    "https://user:pw@acme.api-us1.com",             # userinfo
    "https://acme.api-us1.com@evil.com",
    "https://evil.com#@acme.api-us1.com",
    "https://acme.api-us1.com.evil.com",            # only starts like AC
    "https://evilacme.api-us1.com.attacker.net",
    "https://acme.api-us1.co",
    "https://127.0.0.1",                            # IP literals
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]",
    "https://2130706433",
    "https://0x7f000001",
    "https://localhost",
    "https://acme.api-us1.com/other/path",          # another path
    "https://acme.api-us1.com/api/3?x=1",           # query
    "https://acme.api-us1.com/api/3#frag",
    "https://acme.api-us1.c\u03bfm",                # Greek omicron look-alike
    "https://acme.api-us1.com\\@evil.com",
    "https://acme.api-us1.com\r\nHost: evil",
    "https://a.b.api-us1.com",                      # nested labels
    "https://" + "a" * 300 + ".api-us1.com",
    "http://127.0.0.1:8010",                        # loopback needs the local switch
    "https://0177.0.0.1",                           # octal
    "https://127.1",                                # short form
    "https://0.0.0.0",
    "https://[::ffff:127.0.0.1]",                   # IPv4-mapped IPv6
    "https://[fd00:ec2::254]",                      # AWS IMDS over IPv6
    "https://[fe80::1%25eth0]",                     # link-local with zone
    "https://169.254.170.2/v2/credentials",         # ECS task credentials
    "https://metadata.google.internal",
    "https://instance-data",
    "https://169.254.169.254.nip.io",
    "https://acme.api-us1.com.127.0.0.1.nip.io",    # ends elsewhere
    "https://localhost.api-us1.com.evil.com",
    "https://acme.api-us1.com%2e%2e/",              # encoded dots
    "https://acme.api-us1.com%00.evil.com",
    "https://acme.api-us1.com./",                   # trailing dot
    "https://acme.xn--api-us1-9db.com",             # punycode look-alike of the AC domain
    "https://xn--cme-dma.api-us1.com.evil.com",
    "https://acme.api-us1.com:0",
    "https://acme.api-us1.com:abc",
    "https://:@acme.api-us1.com",
    "https://acme.api-us1.com@169.254.169.254",
    "//acme.api-us1.com",                           # scheme-relative
    "https:/acme.api-us1.com",
    "https:acme.api-us1.com",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "data:text/plain,acme.api-us1.com",
    "https://acme.activehosted.com.evil.com",
    "https://x.api-zz9.com",                        # a region shape AC does not serve (the second security round)
    "https://acme.api-eu1.com",                     # seen only in third-party material: opt in by setting
    "https://acme.app-us1.com",                     # AC's app infrastructure, not the API
    "https://acme.api-us1.com/api/3/../../admin",
    "",
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED.items())
def test_accepts_ac_hosts_and_normalises(raw, expected):
    assert normalise_base_url(raw) == expected


@pytest.mark.parametrize("raw", REJECTED)
def test_rejects_everything_else(raw):
    with pytest.raises(BadRequestError) as err:
        normalise_base_url(raw)
    assert err.value.status == 400
    assert "Invalid base_url" in err.value.message


def test_corpus_is_large_enough():
    assert len(REJECTED) >= 40


@pytest.mark.parametrize("raw", REJECTED)
def test_refused_before_any_network_call(raw, monkeypatch):
    """Through the save service itself: the refusal comes before Mongo, DNS or AC is touched."""
    import socket

    from acexport.credentials import connections
    from acexport.tenancy import Tenant

    def no_network(*args, **kwargs):
        raise AssertionError("network used for a hostile base URL")

    from acexport import caches

    monkeypatch.setenv("ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL", "false")   # the production setting
    caches.reset()
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    try:
        with pytest.raises(BadRequestError):
            connections.save(Tenant("a", "u"), {"base_url": raw or " ", "api_key": "k"}, deadline=0)
    finally:
        monkeypatch.undo()
        caches.reset()


def test_local_switch_accepts_only_loopback():
    assert normalise_base_url("http://127.0.0.1:8010/api/3/", allow_local=True) == "http://127.0.0.1:8010"
    assert normalise_base_url("http://localhost:9000", allow_local=True) == "http://localhost:9000"
    for raw in ("http://10.0.0.1:80", "http://169.254.169.254", "http://user@127.0.0.1:8010"):
        with pytest.raises(BadRequestError):
            normalise_base_url(raw, allow_local=True)
