"""The unit tier runs in-process: no network connection and no subprocess, in a test or in its fixtures.

A unit test that needs AC or a store takes an in-memory fake (tests/fakes.py, behind the Protocols of
acexport/ports.py); a test that needs the AC stand-in over HTTP, nx-27017, moto's server, a loopback server of
its own or a subprocess belongs in tests/integration (docs/architecture.md, "Test tiers"). The guard
(tests/tier_guard.py) makes such a test fail here with a message that says so, instead of passing slowly."""

from __future__ import annotations

import pytest

from tests.tier_guard import patch_tier


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
