"""Every workaround for nx-27017, the MongoDB wire server of `make dev` and the tests, in one place.

Production writes what MongoDB wants: real BSON dates (so the TTL index on `expires_at` fires), real
booleans, collection names with dashes. nx-27017 stores some of that differently; the readers here accept
both forms, so code that reads a document never depends on which server wrote it. Each quirk was found by
experiment against nx-27017 0.8.1 and has a test that fails if it disappears or changes
(tests/integration/test_compat.py runs the same writes on the suite's Mongo: on nx-27017 it asserts the
quirk is still there, on MongoDB that it is not; tests/unit/test_compat.py covers the readers):

1. `$set` of a date, at the top level or through a dotted path (`"handoff.at": now`), stores text such as
   `"2026-12-01 11:19:12.123000"` (UTC, no offset). Dates in inserted documents, and dates inside a
   document value of `$set` (`{"$set": {"lease": {"until": now}}}`), stay dates. -> `as_datetime`.
   Queries compare such text with nothing: only fields that stay dates (inserts, document values) are
   ever queried by date (`lease.until`, `expires_at`, `created_at`).
2. `$set` of `True`/`False`, at the top level or through a dotted path, stores 1/0; inside a document
   value they stay booleans. A query for `True` still matches the stored 1. -> `as_flag`.
3. Collection names may not contain `-` ("Invalid identifier"); the production names do
   (`integrations-activecampaign-keys`). -> `collection_name` (used by devstack only).

What the old notes said but 0.8.1 does not do: lists of documents set through `$set` stay lists of
documents (top level, dotted and nested). Job documents written before this module kept flags as 0/1 and
read back the same way through `as_flag`, so their resume is unchanged.
Also known, and avoided in the schema rather than worked around: nx-27017 ignores array-index paths
(`ts.0`) and pipeline updates (docs/decisions.md, decision 10).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

NX_PROCESS = "nx_27017"   # what nx-27017 answers in buildInfo.process (MongoDB's buildInfo has no such field)


def as_datetime(value: Any) -> dt.datetime | None:
    """A stored date as an aware UTC datetime: a BSON date (naive = UTC), or the text nx-27017 stores for
    a date set through `$set` (quirk 1). Anything else is None."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def with_dates(doc: dict | None, fields: Iterable[str]) -> dict | None:
    """`doc` with the named top-level date fields read through `as_datetime` (None stays None)."""
    if doc is None:
        return None
    for name in fields:
        if doc.get(name) is not None:
            doc[name] = as_datetime(doc[name])
    return doc


def as_flag(value: Any) -> bool:
    """A stored flag: a BSON boolean, or the 1/0 nx-27017 stores for one set through `$set` (quirk 2), or
    missing (False)."""
    return bool(value)


def is_nx27017(database: Any) -> bool:
    """Whether the server behind a pymongo Database (or MongoClient) is nx-27017."""
    from pymongo.database import Database

    client = database.client if isinstance(database, Database) else database   # (a client makes up attributes)
    return client.admin.command("buildInfo").get("process") == NX_PROCESS


def collection_name(name: str, *, nx27017: bool) -> str:
    """The collection name to use on this server: nx-27017 rejects `-` (quirk 3), MongoDB takes it as is."""
    return name.replace("-", "_") if nx27017 else name
