"""The published real AC webhook deliveries in tests/fixtures/ac_webhooks/ (each file: its `source` and
`date`, `notes`, the `form` pairs as AC posted them, and what this service must make of it in `expect`)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ac_webhooks"


def load() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))}


def body(fixture: dict) -> bytes:
    """The delivery's body as AC posts it: form-encoded, brackets percent-encoded as PHP's http_build_query
    writes them."""
    return urlencode([tuple(pair) for pair in fixture["form"]]).encode()


def subset(expected, actual) -> bool:
    """Every key of `expected` in `actual` with the same value (dicts compared key by key, recursively)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and subset(v, actual[k]) for k, v in expected.items())
    return expected == actual
