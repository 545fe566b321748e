"""The unit tier's guard (tests/tier_guard.py, applied by tests/unit/conftest.py) is on in every unit test: an
inet connection, a name lookup, a loopback server or a process fails the test with advice; a Unix socket pair
still works."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys

import pytest
import requests

from tests.tier_guard import TierViolation


def test_an_inet_connection_fails_with_advice():
    with pytest.raises(TierViolation, match="tests/integration"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with socket.socket(socket.AF_INET6) as probe, pytest.raises(TierViolation, match="AF_INET6"):
        probe.connect_ex(("::1", 9))


def test_an_http_request_fails_before_any_byte_is_sent():
    with pytest.raises(TierViolation):
        requests.get("http://127.0.0.1:9/", timeout=1)


def test_a_name_lookup_fails():
    with pytest.raises(TierViolation, match="DNS"):
        socket.getaddrinfo("acme.api-us1.com", 443)


def test_a_loopback_server_cannot_bind():
    with socket.socket() as server, pytest.raises(TierViolation, match="bind"):
        server.bind(("127.0.0.1", 0))


def test_a_process_cannot_start():
    with pytest.raises(TierViolation, match="subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    with pytest.raises(TierViolation, match=r"os\.system"):
        os.system("true")
    with pytest.raises(TierViolation):
        multiprocessing.get_context("fork").Process(target=print).start()


def test_unix_sockets_and_an_event_loop_still_work():
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"
    assert asyncio.run(asyncio.sleep(0, result=7)) == 7
