"""The second security round, finding 1 and the 'also check' items, without the network: the address check after DNS
(with an injected resolver), the pinned pool, the allow-list setting, one budget per AC account, and
Retry-After sanity."""

import math

import pytest
import requests
from acexport import caches
from acexport.ac import base_url
from acexport.ac.base_url import UnsafeAddress, account_key, normalise_base_url, public, public_address
from acexport.ac.client import MAX_RETRY_AFTER, PinnedAdapter, _retry_after
from acexport.errors import BadRequestError
from acexport.settings import ConfigurationError, get_settings

NOT_PUBLIC = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "169.254.170.2",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1",
    "198.18.0.1", "::1", "::", "fe80::1", "fd00:ec2::254", "fc00::1", "ff02::1", "::ffff:169.254.169.254",
    "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "fe80::1%eth0", "not-an-address",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.delenv("ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL", raising=False)
    caches.reset()
    yield
    monkeypatch.undo()
    caches.reset()


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_refused(address):
    assert public(address) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert public(address) is True


def resolver(*answers):
    calls = []

    def resolve(host, port):
        calls.append((host, port))
        return list(answers)
    resolve.calls = calls
    return resolve


def test_a_name_pointing_at_the_metadata_address_is_refused():
    with pytest.raises(UnsafeAddress):
        public_address("victim.api-us1.com", 443, resolver=resolver("169.254.169.254"))


def test_one_private_answer_among_public_ones_is_refused():
    """A name must not mix answers: a client library could pick either."""
    with pytest.raises(UnsafeAddress):
        public_address("x.api-us1.com", 443, resolver=resolver("93.184.216.34", "10.0.0.7"))


def test_the_checked_address_is_the_one_returned_and_kept_for_a_while():
    resolve = resolver("93.184.216.34", "93.184.216.35")
    assert public_address("x.api-us1.com", 443, resolver=resolve) == "93.184.216.34"
    assert public_address("x.api-us1.com", 443, resolver=resolver("10.0.0.1")) == "93.184.216.34"  # cached
    caches.reset()
    with pytest.raises(UnsafeAddress):   # a new container checks again
        public_address("x.api-us1.com", 443, resolver=resolver("10.0.0.1"))


def test_the_local_sandbox_needs_the_local_switch(monkeypatch):
    with pytest.raises(UnsafeAddress):
        public_address("127.0.0.1", 8010, scheme="http", resolver=resolver("127.0.0.1"))
    monkeypatch.setenv("ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL", "true")
    caches.reset()
    assert public_address("127.0.0.1", 8010, scheme="http", resolver=resolver()) == "127.0.0.1"
    assert public_address("localhost", 8010, scheme="http", resolver=resolver()) == "127.0.0.1"
    with pytest.raises(UnsafeAddress):   # https, or another name: checked like any other
        public_address("127.0.0.1", 443, scheme="https", resolver=resolver("127.0.0.1"))


def test_the_pool_connects_to_the_checked_address_and_verifies_tls_for_the_name(monkeypatch):
    monkeypatch.setattr(base_url, "RESOLVER", resolver("93.184.216.34"))
    request = requests.Request("GET", "https://acme.api-us1.com/api/3/users/me").prepare()
    host_params, pool_kwargs = PinnedAdapter().build_connection_pool_key_attributes(request, True)
    assert host_params == {"scheme": "https", "host": "93.184.216.34", "port": None}
    assert pool_kwargs["server_hostname"] == "acme.api-us1.com"
    assert pool_kwargs["assert_hostname"] == "acme.api-us1.com"
    assert pool_kwargs["cert_reqs"] == "CERT_REQUIRED"


def test_the_pool_refuses_before_connecting(monkeypatch):
    monkeypatch.setattr(base_url, "RESOLVER", resolver("169.254.169.254"))
    request = requests.Request("GET", "https://acme.api-us1.com/api/3/users/me").prepare()
    with pytest.raises(UnsafeAddress):
        PinnedAdapter().build_connection_pool_key_attributes(request, True)


def test_regions_seen_only_in_third_party_material_are_opt_in(monkeypatch):
    with pytest.raises(BadRequestError):
        normalise_base_url("https://acme.api-eu1.com")
    monkeypatch.setenv("AC_ALLOWED_HOST_SUFFIXES", "api-us1.com, api-eu1.com ,activehosted.com")
    caches.reset()
    assert normalise_base_url("https://acme.api-eu1.com") == "https://acme.api-eu1.com"
    assert get_settings().allowed_host_suffixes == ("api-us1.com", "api-eu1.com", "activehosted.com")
    with pytest.raises(BadRequestError):
        normalise_base_url("https://acme.api-zz9.com")


@pytest.mark.parametrize("value", ["", "com", "api-us1.com,*.evil.com", "api-us1.com,http://x.com"])
def test_a_bad_suffix_setting_is_a_configuration_error(monkeypatch, value):
    monkeypatch.setenv("AC_ALLOWED_HOST_SUFFIXES", value or " , ")
    caches.reset()
    with pytest.raises(ConfigurationError):
        get_settings()


def test_one_ac_account_under_two_names_is_one_budget():
    assert account_key("acme.api-us1.com") == account_key("acme.activehosted.com") == "ac:acme"
    assert account_key("acme.api-us1.com") != account_key("other.api-us1.com")
    assert account_key("127.0.0.1:8010") == "127.0.0.1:8010"


def answer(value):
    response = requests.Response()
    response.headers["Retry-After"] = value
    return response


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e400", "garbage", "Mon, 99 Foo"])
def test_an_unreadable_retry_after_is_ignored(value):
    assert _retry_after(answer(value)) is None


@pytest.mark.parametrize(("value", "expected"), [("1", 1.0), ("30", 30.0), ("-5", 0.0), ("86400", MAX_RETRY_AFTER),
                                                 ("1e12", MAX_RETRY_AFTER), ("Fri, 31 Dec 9999 23:59:59 GMT",
                                                                            MAX_RETRY_AFTER)])
def test_retry_after_is_capped(value, expected):
    seconds = _retry_after(answer(value))
    assert math.isfinite(seconds) and seconds == expected
