"""The unit tier runs in-process: no network connection and no subprocess, in a test or in its fixtures.

A unit test that needs AC or a store takes an in-memory fake (tests/fakes.py, behind the Protocols of
acexport/ports.py); a test that needs the AC stand-in over HTTP, nx-27017, moto's server, a loopback server of
its own or a subprocess belongs in tests/integration (docs/architecture.md, "Test tiers"). The guard below makes
such a test fail here with a message that says so, instead of passing slowly. Unix-domain sockets (asyncio's
self-pipe, socketpair) stay allowed: they never leave the process's machine and start nothing."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

_INET = (socket.AF_INET, socket.AF_INET6)
_ADVICE = ("unit tests run in-process (tests/unit/conftest.py): use the fakes of tests/fakes.py, "
           "or move the test to tests/integration")


class TierViolation(AssertionError):
    """A unit test reached for the network or started a process."""


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise TierViolation(f"{what}: {_ADVICE}")
    return refuse


def _guard_inet(name: str, original):
    def guarded(self, address, *args, **kwargs):
        if self.family in _INET:
            raise TierViolation(f"socket.{name}({address!r}) on {socket.AddressFamily(self.family).name}: {_ADVICE}")
        return original(self, address, *args, **kwargs)
    return guarded


def patch_tier(mp: pytest.MonkeyPatch) -> None:
    """Refuse AF_INET/AF_INET6 connect and bind (a client or a loopback server) and every way of starting a
    process (subprocess, os.system, os.fork, posix_spawn: multiprocessing and ProcessPoolExecutor included)."""
    for name in ("connect", "connect_ex", "bind"):
        mp.setattr(socket.socket, name, _guard_inet(name, getattr(socket.socket, name)))
    mp.setattr(subprocess.Popen, "_execute_child", _refuse("subprocess.Popen"))
    for name in ("system", "fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            mp.setattr(os, name, _refuse(f"os.{name}"))


def _guarded_phase():
    with pytest.MonkeyPatch.context() as mp:
        patch_tier(mp)
        return (yield)


# Setup, call and teardown each run under the guard, so a module- or session-scoped fixture that starts a server
# fails as well as the test that calls it. Hooks of this conftest apply to the items under tests/unit only. The
# last test's teardown is left out: it also ends the session's fixtures, the integration tier's stack among them.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _guarded_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _guarded_phase())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    if nextitem is None:
        return (yield)
    return (yield from _guarded_phase())
