"""The unit tier's guard (tests/unit/conftest.py applies it to every unit test, its setup and its teardown): no
AF_INET/AF_INET6 connection or bind, no process started. Unix-domain sockets (asyncio's self-pipe, socketpair)
stay allowed: they never leave the process's machine and start nothing."""

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
    """Refuse AF_INET/AF_INET6 connect and bind (a client or a loopback server), name lookups (the resolver
    sends DNS queries from C, past socket.socket) and every way of starting a process (subprocess, os.system,
    os.fork, posix_spawn: multiprocessing and ProcessPoolExecutor included)."""
    for name in ("connect", "connect_ex", "bind"):
        mp.setattr(socket.socket, name, _guard_inet(name, getattr(socket.socket, name)))
    mp.setattr(socket, "getaddrinfo", _refuse("socket.getaddrinfo (a name lookup: DNS)"))
    mp.setattr(socket, "gethostbyname", _refuse("socket.gethostbyname (a name lookup: DNS)"))
    mp.setattr(subprocess.Popen, "_execute_child", _refuse("subprocess.Popen"))
    for name in ("system", "fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            mp.setattr(os, name, _refuse(f"os.{name}"))
