"""Records into the export file: the encoding's CSV columns, the open gzip member, the compressed bytes not
yet uploaded (less than one part), and the parts uploaded so far (ETags and sizes, by part number).

The worker decides *when* (page boundaries, its time, its checkpoints); the writer decides *what* goes
into the file, under the exactly-once rules of `jobs.files`:
- a part is cut only at a gzip member boundary (`put_part` closes the open member first), so a
  checkpoint holds finished bytes only;
- a writer resumed from a checkpoint starts a fresh member and uploads under the next part number; a
  part uploaded after the checkpoint was taken (and lost in a crash) is uploaded again under the same
  number, which replaces it (S3 keeps the last upload of a part number);
- `finish` uploads the last part: whatever is buffered, or one empty gzip member when nothing was ever
  uploaded (an export of no records is still a valid gzip file), so every finished file has >= 1 part.

The upload is anything with `put_part(number, data) -> etag` and `complete(etags)`: `jobs.files.Upload`
(S3 multipart) in the worker, an in-memory one in tests/unit/test_writer.py.

Checkpoint fields (a part of the job's checkpoint, see `jobs.store`; ETags and sizes are two lists side by
side, a shape kept so running jobs resume: docs/decisions.md 29): etags, sizes, buffer (BSON Binary),
columns (CSV, once known).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bson.binary import Binary

from acexport.jobs.files import GzipMember, encode


class PartUpload(Protocol):
    def put_part(self, number: int, data: bytes | bytearray) -> str: ...

    def complete(self, etags: Iterable[str]) -> None: ...


class FileWriter:
    """The export file of one job, as written by one worker step."""

    def __init__(self, fmt: str, part_size: int, upload: PartUpload, *, etags: Iterable[str] = (),
                 sizes: Iterable[int] = (), buffer: bytes = b"", columns: list[str] | None = None):
        self.fmt, self.part_size, self.upload = fmt, part_size, upload
        self.etags: list[str] = list(etags)
        self.sizes: list[int] = [int(size) for size in sizes]
        self.buffer = bytearray(buffer)
        self.columns = list(columns) if columns is not None else None
        self.member: GzipMember | None = None          # opened by the first write of this step

    @classmethod
    def resume(cls, fmt: str, part_size: int, upload: PartUpload, saved: dict | None) -> FileWriter:
        """A writer from a job's checkpoint (its file fields; None or {} for a new job)."""
        saved = saved or {}
        return cls(fmt, part_size, upload, etags=saved.get("etags") or [], sizes=saved.get("sizes") or [],
                   buffer=bytes(saved.get("buffer") or b""), columns=saved.get("columns"))

    @property
    def size(self) -> int:
        """The bytes uploaded so far (the finished file's size once `finish` ran)."""
        return sum(self.sizes)

    def write(self, records: list[dict]) -> None:
        """Encode `records` (CSV: the header with the first ones) into the open member (opened if none)."""
        data, self.columns = encode(self.fmt, records, self.columns)
        self.member = self.member or GzipMember()
        self.buffer += self.member.write(data)

    def part_due(self) -> bool:
        return len(self.buffer) >= self.part_size

    def close_member(self) -> None:
        """End the open member (if any): what is buffered is finished bytes, fit for a checkpoint."""
        if self.member is not None:
            self.buffer += self.member.close()
            self.member = None

    def put_part(self) -> None:
        """Close the member and upload the buffer as the next part."""
        self.close_member()
        number = len(self.etags) + 1
        self.etags.append(self.upload.put_part(number, self.buffer))   # no copy of up to a part
        self.sizes.append(len(self.buffer))
        self.buffer = bytearray()

    def finish(self) -> None:
        """Upload the file's last bytes: the buffer, or an empty member when no part was ever uploaded."""
        self.close_member()
        if self.buffer or not self.etags:
            self.buffer = self.buffer or bytearray(GzipMember().close())   # an empty export
            self.put_part()

    def complete(self) -> None:
        """Assemble the file from the parts uploaded (call after `finish`, or on resuming a finished one)."""
        self.upload.complete(self.etags)

    def checkpoint(self) -> dict:
        """The file's fields of the job's checkpoint. Only finished bytes: close the member first."""
        if self.member is not None:
            raise RuntimeError("a checkpoint is taken at a gzip member boundary: close_member() first")
        out = {"etags": self.etags, "sizes": self.sizes, "buffer": Binary(bytes(self.buffer))}
        if self.columns is not None:
            out["columns"] = self.columns
        return out
