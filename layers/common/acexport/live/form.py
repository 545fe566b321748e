"""AC's webhook delivery body: `application/x-www-form-urlencoded` with PHP-style bracketed keys.

What is on the wire (docs/live.md, with sources; the published samples are in tests/fixtures/ac_webhooks/):
one event per POST, flat keys such as `type`, `date_time`, `contact[id]`, `contact[fields][1]`,
`deal[fields][0][key]`, `updated_fields[0]` (GearPlug's raw 2017 fixtures; Pipedream reads
`body["contact[id]"]`), multi-value custom fields one level deeper, five levels in all
(`account[fields][18][value][0]`, Activepieces' 2024 `account_update`), and PHP's append brackets in a
public unsubscribe's `list[][id]` (AC's webhook description, api-evangelist's AsyncAPI copy). `parse()`
reads the raw body into nested dicts and refuses what AC would never send: not form-encoded, not UTF-8, too
many keys, a key too long or nested deeper than five levels. Its work is linear in the body (capped by
HOOKS_MAX_BODY_BYTES before it is called).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from acexport.errors import BadRequestError

FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 2000
MAX_DEPTH = 5          # account[fields][18][value][0]
MAX_KEY_CHARS = 256    # AC's longest keys are tens of characters (`deal[contact_firstname]`)
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_PART = re.compile(r"\[([^\[\]]*)\]")


def _malformed() -> BadRequestError:
    return BadRequestError("Malformed form body")


def is_form(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == FORM


def parse(body: bytes, content_type: str | None) -> dict:
    """The delivery as nested dicts (`contact[fields][1]=x` -> {"contact": {"fields": {"1": "x"}}}); an
    empty bracket appends, as PHP reads it (`list[][id]=3` -> {"list": {"0": {"id": "3"}}}). Repeated keys
    keep the last value. Raises BadRequest for anything that is not such a form."""
    if not is_form(content_type):
        raise BadRequestError(f"Webhook deliveries must be {FORM}")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise _malformed() from None
    out: dict = {}
    for key, value in pairs:
        match = _KEY.fullmatch(key) if len(key) <= MAX_KEY_CHARS else None
        if match is None:
            raise _malformed()
        path = [match.group(1), *_PART.findall(match.group(2))]
        if len(path) > MAX_DEPTH:
            raise _malformed()
        node = out
        for i, part in enumerate(path):
            if part == "":                      # PHP's `[]`: the next index of this level
                part = str(len(node))
            if i == len(path) - 1:
                node[part] = value
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
    return out


def _index(key: str) -> bool:
    return key.isascii() and key.isdigit() and len(key) <= 18


def _order(key: str):
    return (0, int(key)) if _index(key) else (1, key)


def keys(value) -> list[str]:
    """The keys of a bracketed level, indexes first in number order, then names."""
    return sorted(value, key=_order) if isinstance(value, dict) else []


def items(value) -> list:
    """A bracketed list (`updated_fields[0]`, `deal[fields][0][key]`) in index order; [] when absent."""
    return [value[k] for k in keys(value)]


def is_list(value) -> bool:
    """A bracketed list of values (`[value][0]`, `[value][1]`): every key an index."""
    return isinstance(value, dict) and bool(value) and all(_index(k) for k in value)


def text(value) -> str | None:
    return value if isinstance(value, str) else None
