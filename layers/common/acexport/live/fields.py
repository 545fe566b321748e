"""The account's contact field catalogue: how the receiver names a delivery's contact custom fields as the
export does (`customFields` by title, `customFieldsByTag` by personalisation tag, `fieldValues` by id)
without calling AC.

A delivery's `contact[fields][<key>]` carries the field id (`[27]`) or its personalisation tag
(`[member_id]`): public receivers read both and the evidence is mixed (docs/live.md). Only the account's
field definitions (`GET /api/3/fields`: id, title, perstag, type) tell which, so they are read when live
changes are enabled (PUT /live, `catalogue`), kept beside the subscription (`state.remember_fields`) and
read by the receiver in the round trip it already makes (`state.take`). Decision: docs/decisions.md
("Contact custom fields in live changes"). A key that matches no definition (a field created since, or an
account whose key may not read fields) is kept as sent; PUT /live again refreshes the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_DEFINITIONS = 1000    # AC accounts have tens of contact fields; a catalogue never grows past this


@dataclass(frozen=True)
class Definition:
    id: str
    title: str
    tag: str | None
    type: str | None

    def read(self, value):
        """A multi-select value (`||a||b||`) as the export gives it: a list (`ac.records.multi_value`)."""
        if isinstance(value, str) and value.startswith("||") and self.type:
            # imported here: the export's rule lives beside the AC client, which the receiver otherwise
            # never loads (its cold start)
            from acexport.ac.records import multi_value

            return multi_value(value, self.type)
        return value


def compact(definitions: list[dict] | None) -> list[dict]:
    """AC's `/fields` items as the catalogue keeps them: id, title, perstag, type (strings)."""
    out = []
    for item in (definitions or [])[:MAX_DEFINITIONS]:
        if not isinstance(item, dict) or item.get("id") in (None, ""):
            continue
        out.append({name: str(item[name])[:256] for name in ("id", "title", "perstag", "type")
                    if item.get(name) not in (None, "")})
    return out


def catalogue(client) -> list[dict]:
    """The account's contact field definitions, read with the export's reference cache (an `ACClient`).
    Empty when the key may not read them (AC's 403): deliveries then keep the keys AC sent."""
    from acexport.ac import reference

    return compact(reference.reference(client, "/fields", "fields", optional=True))


def resolver(definitions: list[dict] | None) -> Callable[[str], Definition | None]:
    """A lookup of a delivery's key: the field id, else the personalisation tag (any case)."""
    by_id: dict[str, Definition] = {}
    by_tag: dict[str, Definition] = {}
    for item in definitions or []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        tag = item.get("perstag") if isinstance(item.get("perstag"), str) else None
        title = item.get("title") if isinstance(item.get("title"), str) else None
        definition = Definition(item["id"], title or tag or item["id"], tag,
                                item.get("type") if isinstance(item.get("type"), str) else None)
        by_id.setdefault(definition.id, definition)
        if tag:
            by_tag.setdefault(tag.lower(), definition)

    def resolve(key: str) -> Definition | None:
        return by_id.get(key) or by_tag.get(key.lower())

    return resolve
