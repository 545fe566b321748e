"""Where a job's walk continues: typed cursors, read from every shape a checkpoint has held so far and saved in
the current one (the checkpoint's `cursor` field, jobs.store).

Shapes stored so far (tests/unit/test_cursors.py resumes a walk from each, written as a literal):
- contacts in one id walk: `{}`, `{"last_id": "450"}` (the first release; the id as AC sends it, a string),
  then with `"pages"` (the pages read so far, for the page cap; absent = 0).
- contacts in id slices (several pages in flight): `{"after": [100, 1733, 3366], "before": [1734, 3367, 0],
  "pages": 12}`, each slice's last id and end side by side, 0 = from the start / open (lists of scalars:
  nx-27017 and the writer's checkpoint fields keep lists of scalars only).
- deals and accounts by offset: `{"offset": 300, "last_id": 300}` (the first release: id order, an int id),
  then with `"pages"`, then with `"last_key"` (the order key of the last record written, a list, or None for a
  deal stub) and `"order"` (`"cdate"` or `"id"`; absent: the id order such a cursor started in).
Version 2 (this module) saves the same fields plus `"v": 2`, so a release before it still reads them; a version
newer than this code knows is refused (CursorUnreadable: the job fails rather than skip or repeat records).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

VERSION = 2
ID_ORDER, CREATION_ORDER = "id", "cdate"


class CursorUnreadable(ValueError):
    """A checkpoint's cursor in a shape this code does not know."""


def _version(saved: Mapping[str, Any]) -> int:
    version = int(saved.get("v", 1))
    if version > VERSION:
        raise CursorUnreadable(f"cursor version {version} is newer than this code ({VERSION})")
    return version


def _id(value: Any) -> str | None:
    """An id as AC sends it (a string); 0 and None mean "none"."""
    return None if value in (None, 0, "0", "") else str(value)


@dataclass(frozen=True)
class IdRange:
    """One contacts slice: ids above `after` (None: from the first) and below `before` (None: no end)."""
    after: str | None = None
    before: int | None = None

    def moved_to(self, last_id: str | None) -> IdRange:
        return replace(self, after=last_id) if last_id is not None else self


@dataclass(frozen=True)
class SliceCursor:
    """Contacts: the id slices still walking, in their turn order, and the pages read so far."""
    slices: tuple[IdRange, ...] = (IdRange(),)
    pages: int = 0

    @classmethod
    def load(cls, saved: Mapping[str, Any]) -> SliceCursor:
        _version(saved)
        pages = int(saved.get("pages", 0))
        if "after" in saved:
            ranges = tuple(IdRange(_id(after), int(before) or None)
                           for after, before in zip(saved["after"], saved["before"], strict=True))
            return cls(ranges, pages)
        return cls((IdRange(_id(saved.get("last_id")), int(saved.get("before") or 0) or None),), pages)

    def dump(self) -> dict:
        """One open slice as the single walk always saved it; slices as two lists of scalars."""
        if len(self.slices) == 1 and self.slices[0].before is None:
            last = self.slices[0].after
            return {"v": VERSION, **({"last_id": last} if last is not None else {}), "pages": self.pages}
        return {"v": VERSION, "after": [int(s.after or 0) for s in self.slices],
                "before": [s.before or 0 for s in self.slices], "pages": self.pages}


@dataclass(frozen=True)
class OffsetCursor:
    """Deals and accounts: the offset after the last page, the last record written there (its id and its key
    in the walk's order) by which the next page is placed, the order, and the pages read so far."""
    offset: int = 0
    last_id: str | None = None
    last_key: tuple | None = None
    order: str = ID_ORDER
    pages: int = 0

    @classmethod
    def load(cls, saved: Mapping[str, Any], *, natural_order: str) -> OffsetCursor:
        """`natural_order`: the order of a walk that has not started (deals: creation order); one that has
        and saved no order was walked in id order, and goes on in it."""
        _version(saved)
        offset = int(saved.get("offset", 0))
        order = saved.get("order") or (natural_order if not offset else ID_ORDER)
        last_id = None if saved.get("last_id") is None else str(saved["last_id"])
        key = saved.get("last_key")
        if key is None and order == ID_ORDER and last_id is not None and last_id.isdigit():
            key = [int(last_id)]            # releases before last_key: the id is the key of the id order
        return cls(offset, last_id, None if key is None else tuple(key), order, int(saved.get("pages", 0)))

    @property
    def start(self) -> int:
        """Where the page after this cursor is read from: one record before the offset (the last record
        written, to place the page by), or the offset itself when no record has been written."""
        return self.offset - 1 if self.offset and self.last_id is not None else self.offset

    def dump(self) -> dict:
        out: dict = {"v": VERSION, "offset": self.offset, "pages": self.pages, "order": self.order}
        if self.last_id is not None:
            out.update(last_id=self.last_id, last_key=list(self.last_key) if self.last_key is not None else None)
        return out
