"""AC's webhook delivery body: `application/x-www-form-urlencoded` with PHP-style bracketed keys.

What is on the wire (docs/live.md, with sources): one event per POST, flat keys such as `type`,
`date_time`, `contact[id]`, `contact[fields][1]`, `deal[fields][0][key]`, `updated_fields[0]`
(GearPlug's raw fixtures; Pipedream reads `body["contact[id]"]`). Activepieces' nested sample data is
its framework's parsing, not the wire format. `parse()` reads the raw body into nested dicts, refusing
what AC would never send (too large, too many keys, not form-encoded, keys nested absurdly deep).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from acexport.errors import BadRequest

FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 2000
MAX_DEPTH = 4
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_PART = re.compile(r"\[([^\[\]]*)\]")


def parse(body: bytes, content_type: str | None) -> dict:
    """The delivery as nested dicts (`contact[fields][1]=x` -> {"contact": {"fields": {"1": "x"}}}).
    Repeated keys keep the last value. Raises BadRequest for anything that is not such a form."""
    if (content_type or "").split(";")[0].strip().lower() != FORM:
        raise BadRequest(f"Webhook deliveries must be {FORM}")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("Malformed form body") from None
    out: dict = {}
    for key, value in pairs:
        match = _KEY.fullmatch(key)
        if match is None:
            raise BadRequest("Malformed form body")
        path = [match.group(1), *_PART.findall(match.group(2))]
        if len(path) > MAX_DEPTH:
            raise BadRequest("Malformed form body")
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return out


def items(value) -> list:
    """A bracketed list (`updated_fields[0]`, `deal[fields][0][key]`) in index order; [] when absent."""
    if not isinstance(value, dict):
        return []
    def order(key: str):
        return (0, int(key)) if key.isdigit() else (1, key)
    return [value[k] for k in sorted(value, key=order)]


def text(value) -> str | None:
    return value if isinstance(value, str) else None
