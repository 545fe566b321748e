"""Schemathesis against the local server, from docs/openapi.yaml, with a fixed seed and bounded cases.

Every response must be no 5xx, have a status its route declares, the declared content type and headers
(Retry-After on 503), and a body that matches the declared schema; a request the spec calls invalid must
be refused (4xx), not served. Two runs over every route:

* queries and bodies: the spec without the optional X-Sub-Account-Id header (a random sub-account id
  is refused with 403 before anything else is looked at, so keeping it would spend most cases there),
  through schemathesis' three generating phases: the spec's examples, coverage (boundary and invalid
  values of each parameter, missing and repeated parameters, unsupported methods) and fuzzing
  (random valid and invalid requests);
* the header: the whole spec, fuzzing phase only, so random X-Sub-Account-Id values reach every route.

Exports run for a tenant connected to the AC stand-in, so they return real pages. AC's 5 req/s limit is
lifted for the run (the rate budget has its own tests) and restored after. The service may call only
loopback during the run: a call to another host is refused and fails the case.
"""

from __future__ import annotations

import collections
import copy
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
import yaml
from acexport.ac.resources import RESOURCES
from requests.adapters import HTTPAdapter

from devstack.stack import mint_token
from tests.integration.conftest import BASE, DEMO_KEY, _reset_layer_state
from tests.openapi_check import SPEC_PATH

pytestmark = pytest.mark.slow  # fuzz: schemathesis-generated requests, ~17 s

SEED = 20250611
MAX_EXAMPLES = 25          # fuzzing phase, per route and run
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SUB_ACCOUNT = {"$ref": "#/components/parameters/SubAccountId"}


def _config(*, phases: list[str]) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,               # hypothesis derandomize: the same cases on every run
            "database": "none",                  # no .hypothesis/ directory, nothing replayed between runs
            "unique-inputs": True,
            "with-security-parameters": False,   # the bearer token is ours (below), not generated
        },
        "phases": {
            "examples": {"enabled": "examples" in phases},
            "coverage": {
                "enabled": "coverage" in phases,
                "generate-duplicate-query-parameters": True,   # repeated parameters must be a 400
                # What the local server's HTTP layer serves; TRACE and QUERY would reach only its 501.
                "unexpected-methods": ["put", "patch", "options"],
            },
            "fuzzing": {"enabled": "fuzzing" in phases},
            "stateful": {"enabled": False},
        },
        # schemathesis' refusals, and 410: the webhook receiver refuses a wrong secret before it reads the
        # body (docs/live.md, Security), so an invalid body to a made-up secret is a 410
        "checks": {"negative_data_rejection": {"expected-statuses": [
            "400", "401", "403", "404", "405", "406", "409", "410", "415", "422", "428", "429", "5xx"]}},
    })


def _without_sub_account_header(raw: dict) -> dict:
    spec = copy.deepcopy(raw)
    for item in spec["paths"].values():
        for holder in (item, *(op for op in item.values() if isinstance(op, dict))):
            if isinstance(holder, dict) and isinstance(holder.get("parameters"), list):
                holder["parameters"] = [p for p in holder["parameters"] if p != SUB_ACCOUNT]
    return spec


RAW_SPEC = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
queries_and_bodies = schemathesis.openapi.from_dict(_without_sub_account_header(RAW_SPEC),
                                                    config=_config(phases=["examples", "coverage", "fuzzing"]))
sub_account_header = schemathesis.openapi.from_dict(RAW_SPEC, config=_config(phases=["fuzzing"]))

CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_headers_conformance,
          schemathesis.checks.response_schema_conformance,
          # a request the spec calls invalid (negative mode) must be refused, never silently served
          schemathesis.checks.negative_data_rejection]

# (run, method, path) -> statuses seen, filled as cases run and summarised by the last test.
RESULTS: dict[tuple[str, str, str], collections.Counter] = collections.defaultdict(collections.Counter)
BLOCKED: list[str] = []


class _Fuzz:
    def __init__(self, stack):
        self.url = stack.api_url
        # The connected tenant reads exports and status and tries to save again (409 before any AC call);
        # DELETE runs as another tenant, connected once, so the first one stays connected.
        self.connected = {"Authorization": f"Bearer {mint_token('fuzz-user', 'fuzz-account')}"}
        self.deleter = {"Authorization": f"Bearer {mint_token('fuzz-deleter', 'fuzz-account')}"}

    def run(self, run: str, case) -> None:
        blocked = len(BLOCKED)
        headers = self.deleter if case.method.upper() == "DELETE" else self.connected
        response = case.call(base_url=self.url, headers=headers, timeout=30)
        RESULTS[(run, case.operation.method.upper(), case.operation.path)][response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        assert len(BLOCKED) == blocked, f"the service tried to reach a non-loopback host: {BLOCKED[-1]}"


@pytest.fixture(scope="module")
def fuzz(stack):
    """The stack with AC's rate limit lifted, two tenants connected to the AC stand-in, and outbound HTTP
    limited to loopback."""
    sandbox = stack.sandbox
    sandbox.reset()
    saved_rate_limit = sandbox.rate_limit
    sandbox.rate_limit = None
    real_send = HTTPAdapter.send

    def loopback_only(adapter, request, *args, **kwargs):
        host = urlsplit(request.url).hostname or ""
        if host not in LOOPBACK:
            BLOCKED.append(request.url)
            raise requests.ConnectionError(f"fuzz run: {host} is not loopback")
        return real_send(adapter, request, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AC_RATE_LIMIT_PER_SECOND", "1000")
        patch.setattr(HTTPAdapter, "send", loopback_only)
        _reset_layer_state()
        state = _Fuzz(stack)
        try:
            for headers in (state.connected, state.deleter):
                reply = requests.post(state.url + BASE + "/auth", headers=headers, timeout=30,
                                      json={"base_url": sandbox.base_url, "api_key": DEMO_KEY})
                assert reply.status_code in (200, 409), reply.text
            yield state
        finally:
            sandbox.rate_limit = saved_rate_limit
            sandbox.reset()
    _reset_layer_state()


@queries_and_bodies.parametrize()
def test_generated_queries_and_bodies_get_documented_answers(case, fuzz):
    fuzz.run("queries and bodies", case)


@sub_account_header.parametrize()
def test_generated_sub_account_headers_get_documented_answers(case, fuzz):
    fuzz.run("sub-account header", case)


def test_fuzz_summary():
    """After the generated cases (same module, declared last): every route had cases, none got a 5xx."""
    if len(RESULTS) < len(queries_and_bodies) + len(sub_account_header):
        pytest.skip("only part of the fuzz run was selected")
    lines = [f"{run}: {method} {path}: {sum(c.values())} cases, statuses {dict(sorted(c.items()))}"
             for (run, method, path), c in sorted(RESULTS.items())]
    print("\n".join([f"schemathesis, seed {SEED}, {sum(sum(c.values()) for c in RESULTS.values())} cases:",
                     *lines]))
    assert not any(code >= 500 for c in RESULTS.values() for code in c), lines
    # Routes with parameters or a body get the full budget; the others have few distinct requests.
    pages = {f"{BASE}/export/{name}" for name in RESOURCES}
    exports = [c for (run, _, path), c in RESULTS.items() if run == "queries and bodies" and path in pages]
    assert len(exports) == len(pages), lines
    assert all(sum(c.values()) >= MAX_EXAMPLES for c in exports), lines
