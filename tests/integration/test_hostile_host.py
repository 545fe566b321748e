"""The second security round, finding 1 and the Retry-After item, on the local stack: a name that resolves to a
non-public address is refused without a connection and with one answer for every address (no port oracle); the
connection goes to the address that was checked; a host that answers too much, or pages for ever, ends
with a clear error instead of running without end."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import urllib3.util.connection
from acexport.ac import base_url
from acexport.ac.client import ACClient, UpstreamInvalidError
from acexport.ac.reference import fetch_all
from acexport.errors import UpstreamTimeoutError


@pytest.fixture
def dns(monkeypatch):
    """An injected resolver (no DNS without internet): name -> answers."""
    answers: dict[str, list[str]] = {}
    monkeypatch.setattr(base_url, "RESOLVER", lambda host, port: answers.get(host, []))
    return answers


@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection urllib3 opens: (address, port) (the test's own calls to the local API and
    moto included)."""
    opened = []
    original = urllib3.util.connection.create_connection

    def record(address, *args, **kwargs):
        opened.append(tuple(address[:2]))
        return original(address, *args, **kwargs)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", record)
    return opened


@pytest.mark.parametrize("target", ["169.254.169.254", "10.0.0.1", "127.0.0.1"])
def test_a_name_resolving_to_a_private_address_is_refused_without_connecting(api, dns, connections, target):
    dns["victim.api-us1.com"] = [target]
    reply = api.call("POST", "/auth", json={"base_url": "https://victim.api-us1.com", "api_key": "k" * 40})
    assert reply.status_code == 400
    assert reply.json() == {"success": False, "errno": 400, "message": "Invalid base_url or api_key"}
    assert not [c for c in connections if c[1] == 443 or (c[0] == target and c[0] != "127.0.0.1")]
    assert (target, 443) not in connections
    assert api.call("GET", "/auth").json()["data"] == {"connected": False}


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_the_connection_goes_to_the_checked_address_with_the_host_named(api, dns, connections, monkeypatch):
    """The name never reaches the system resolver: urllib3 connects to the pinned address and the Host
    header still names the AC host (what AC's virtual hosting and TLS need)."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.headers["Host"], self.path))
            body = json.dumps({"user": {"id": "1"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        dns["acme.api-us1.com"] = ["127.0.0.1"]
        monkeypatch.setattr(base_url, "public", lambda address: True)   # the loopback stands in for AC
        import socket
        real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(host, *a, **k) if host == "127.0.0.1"
                            else pytest.fail(f"second lookup of {host}"))
        client = ACClient(f"http://acme.api-us1.com:{port}", "key", deadline=time.monotonic() + 10)
        assert client.validate() == {"user": {"id": "1"}}
        assert seen == [(f"acme.api-us1.com:{port}", "/api/3/users/me")]
        assert ("127.0.0.1", port) in connections
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_over_the_size_cap_is_a_502_not_a_memory_blow_up(api):
    api.connect()
    api.env(AC_MAX_RESPONSE_BYTES="4096")
    reply = api.export("contacts", "limit=100")
    assert reply.status_code == 502
    assert reply.json()["message"] == "ActiveCampaign sent an answer larger than 4096 bytes"
    assert api.sandbox.count("/contacts") == 1          # not retried: the same answer would come back


def test_full_reference_pages_for_ever_end_with_a_clear_error(api):
    api.env(AC_MAX_REFERENCE_PAGES="3")
    page = json.dumps({"fields": [{"id": str(i), "title": f"f{i}"} for i in range(100)]}).encode()
    api.sandbox.inject(body=page, times=50, path="/fields")
    client = ACClient(api.sandbox.base_url, "sandbox-key", deadline=time.monotonic() + 20)
    with pytest.raises(UpstreamInvalidError) as err:
        fetch_all(client, "/fields", "fields")
    assert "kept sending full pages of fields" in err.value.message
    assert api.sandbox.count("/fields") == 3


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_an_infinite_retry_after_neither_blocks_the_host_nor_fails(api, mongo):
    api.connect()
    api.sandbox.requests.clear()
    api.sandbox.inject(status=429, retry_after=float("inf"), times=1, path="/contacts")
    started = time.monotonic()
    assert api.export("contacts", "limit=5").status_code == 200
    assert api.export("contacts", "limit=5").status_code == 200    # the host's budget is not held for ever
    assert time.monotonic() - started < 10
    slots = list(mongo["integrations_activecampaign_rate_budget"].find({}))
    assert slots and all(abs(float(slot.get("t", 0))) < 1e12 for slot in slots)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_job_on_a_host_that_pages_for_ever_fails_at_once(kit):
    kit.api.env(EXPORT_MAX_RECORDS="100")
    job = kit.wait(kit.start("contacts")["id"])
    assert job["status"] == "failed"
    assert "EXPORT_MAX_RECORDS" in job["error"]["message"]
    assert kit.sandbox.count("/contacts") == 1      # the cap is checked before the call, not after


def test_a_contacts_walk_that_does_not_advance_fails_at_once(kit):
    first = requests.get(kit.sandbox.base_url + "/api/3/contacts", params={"limit": "100", "orders[id]": "ASC"},
                         headers={"Api-Token": "sandbox-key"}, timeout=10).content
    kit.sandbox.requests.clear()
    kit.sandbox.inject(body=first, times=30, path="/contacts")     # id_greater ignored: the same page again
    job = kit.wait(kit.start("contacts")["id"])
    assert job["status"] == "failed"
    assert "cannot advance" in job["error"]["message"]
    assert kit.sandbox.count("/contacts") == 2


class Trickle:
    """A host that answers one byte every `gap` seconds, for at most `lasts` seconds: after the headers
    (`body`), or from the status line on (`headers`). A socket timeout of seconds never trips on it."""

    def __init__(self, where: str, gap: float = 0.3, lasts: float = 9.0):
        self.where, self.gap, self.lasts = where, gap, lasts
        self.stop = threading.Event()
        trickle = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = json.dumps({"user": {"id": "1", "pad": "x" * 500}}).encode()
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                        "\r\n").encode()
                if trickle.where == "body":
                    self.wfile.write(head)
                    self.wfile.flush()
                    head = b""
                ends = time.monotonic() + trickle.lasts
                for byte in (head + body):
                    if trickle.stop.is_set() or time.monotonic() > ends:
                        break
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:        # the client shut the connection: what the test wants
                        return
                    time.sleep(trickle.gap)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow   # 2 s of real waiting each
@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickled_answer_ends_at_the_deadline(api, where):
    """Before the deadline watch, each read waited up to AC_READ_TIMEOUT and the deadline was checked only
    between 64 KiB chunks: this 2 s call took as long as the host kept trickling (9 s here)."""
    with Trickle(where) as host:
        client = ACClient(host.base_url, "key", deadline=time.monotonic() + 2)
        started = time.monotonic()
        with pytest.raises(UpstreamTimeoutError) as raised:
            client.validate()
        assert time.monotonic() - started < 2.6
        assert raised.value.status == 504 and client.calls == 1


@pytest.mark.slow   # 3 s of real waiting
def test_post_auth_against_a_trickling_host_is_a_504_in_time_and_stores_nothing(api, mongo):
    api.env(REQUEST_BUDGET_SECONDS="3")
    with Trickle("body") as host:
        started = time.monotonic()
        reply = api.call("POST", "/auth", json={"base_url": host.base_url, "api_key": "k" * 40})
        took = time.monotonic() - started
    assert reply.status_code == 504, reply.text
    assert reply.json() == {"success": False, "errno": 504,
                            "message": "ActiveCampaign did not answer in time; retry later"}
    assert took < 4.5
    assert api.call("GET", "/auth").json()["data"] == {"connected": False}


def _self_signed(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files (cryptography, already a test dependency)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.mark.slow   # 1.5 s of real waiting each
@pytest.mark.parametrize("where", ["body", "headers"])
def test_the_deadline_watch_cuts_a_trickle_under_tls_too(tmp_path, monkeypatch, where):
    """The watch shuts the plain socket under the TLS one (ac/transport.py): a blocked TLS read returns too."""
    import socket
    import ssl

    from acexport.ac.transport import PinnedAdapter, deadline_watch

    monkeypatch.setattr(base_url, "public", lambda address: True)   # the loopback stands in for AC
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port, stop = listener.getsockname()[1], threading.Event()

    def serve():
        with listener, context.wrap_socket(listener.accept()[0], server_side=True) as conn:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n"
            if where == "body":
                conn.sendall(head)
            for byte in (b"" if where == "body" else head) + b" " * 300:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.3)

    threading.Thread(target=serve, daemon=True).start()
    session = requests.Session()
    session.mount("https://", PinnedAdapter(max_retries=0))
    started = time.monotonic()
    try:
        with deadline_watch(1.5) as watch, pytest.raises(requests.RequestException):
            body = session.get(f"https://127.0.0.1:{port}/api/3/users/me", verify=cert, timeout=(2, 10)).content
            pytest.fail(f"a whole answer came: {body!r}")
        assert watch.expired and time.monotonic() - started < 2.5
    finally:
        stop.set()
        session.close()
