"""The export file writer's exactly-once rules, against an in-memory multipart upload that behaves as S3
does where it matters: a part number uploaded again replaces the earlier upload, and the finished object
is the listed parts in number order (each listed ETag must be the part's latest).

A "step" here is what the worker does with the writer: write page after page, upload a part when one is
due and checkpoint right after it, checkpoint at the end of the step (at a member boundary); the next
step resumes from the checkpoint (through BSON, as the job document stores it) and re-reads from its
cursor."""

import csv
import gzip
import hashlib
import io
import json
import random
import zlib

import bson
import pytest
from acexport.jobs import worker as job_worker
from acexport.jobs.writer import FileWriter
from bson.binary import Binary

PAGE = 20


class MemoryUpload:
    """An S3 multipart upload in memory."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.calls: list[int] = []                 # part numbers, in upload order (re-uploads included)
        self.file: bytes | None = None             # the finished object, once completed

    def put_part(self, number: int, data: bytes | bytearray) -> str:
        assert 1 <= number <= 10_000
        self.parts[number] = bytes(data)           # a re-upload of a number replaces the earlier one
        self.calls.append(number)
        return self._etag(self.parts[number])

    def complete(self, etags) -> None:
        etags = list(etags)
        for number, etag in enumerate(etags, start=1):
            if number not in self.parts or self._etag(self.parts[number]) != etag:
                raise AssertionError(f"InvalidPart {number}")   # S3: the part's ETag must match
        self.file = b"".join(self.parts[number] for number in range(1, len(etags) + 1))

    @staticmethod
    def _etag(data: bytes) -> str:
        return f'"{hashlib.md5(data).hexdigest()}"'


def make_records(count: int, seed: int = 7) -> list[dict]:
    """Records of ~0.6 kB that compress to ~60 % (zlib emits compressed bytes every few pages of them)."""
    rnd = random.Random(seed)
    return [{"id": str(n), "email": f"c{n}@example.com", "note": f"{rnd.getrandbits(2048):0512x}"}
            for n in range(1, count + 1)]


def stored(checkpoint: dict) -> dict:
    """A checkpoint as it comes back from the job document (BSON round trip)."""
    return bson.decode(bson.encode({"checkpoint": checkpoint}))["checkpoint"]


class Crash(Exception):
    """The worker died (before a checkpoint was saved)."""


def step(upload: MemoryUpload, fmt: str, records: list[dict], saved: dict | None, *, part_size: int,
         pages: int | None = None, crash_at_checkpoint: int | None = None) -> dict | None:
    """One worker step over `records` from the checkpoint `saved` (None: a new job). Returns the job's
    checkpoint after it: the last one saved, which is what the next step resumes from. With
    `crash_at_checkpoint`, the step dies instead of saving that checkpoint (the 1st, 2nd, ...)."""
    writer = FileWriter.resume(fmt, part_size, upload, saved)
    cursor = int((saved or {}).get("cursor", 0))
    last, saves, done = saved, 0, 0

    def save() -> None:
        nonlocal last, saves
        saves += 1
        if saves == crash_at_checkpoint:
            raise Crash()
        last = stored({**writer.checkpoint(), "cursor": cursor})

    try:
        while True:
            page = records[cursor:cursor + PAGE]
            writer.write(page)
            cursor += len(page)
            done += 1
            if cursor >= len(records):             # the last page: the last part, checkpoint, complete
                writer.finish()
                save()
                writer.complete()
                return last
            if writer.part_due():
                writer.put_part()
                save()
            if pages is not None and done >= pages:   # out of time: checkpoint at a member boundary
                writer.close_member()
                save()
                return last
    except Crash:
        return last


def run_to_the_end(upload: MemoryUpload, fmt: str, records: list[dict], *, part_size: int,
                   pages: int | None = None) -> bytes:
    saved = None
    while upload.file is None:
        saved = step(upload, fmt, records, saved, part_size=part_size, pages=pages)
    return upload.file


def ndjson_ids(file: bytes) -> list[str]:
    return [json.loads(line)["id"] for line in gzip.decompress(file).decode().splitlines()]


def members(data: bytes) -> int:
    """How many whole gzip members `data` is (raises when it ends inside one)."""
    count = 0
    while data:
        z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        z.decompress(data)
        if not z.eof:
            raise ValueError("ends inside a gzip member")
        data, count = z.unused_data, count + 1
    return count


# ---- the finished file -------------------------------------------------------------------------------


def test_ndjson_file_holds_every_record_once_over_many_parts_and_steps():
    records = make_records(400)
    upload = MemoryUpload()
    file = run_to_the_end(upload, "ndjson", records, part_size=10_000, pages=3)
    assert ndjson_ids(file) == [r["id"] for r in records]
    assert [json.loads(line) for line in gzip.decompress(file).decode().splitlines()] == records
    assert len(upload.parts) >= 5 and upload.calls == sorted(set(upload.calls))   # no part uploaded twice
    for number in sorted(upload.parts):            # parts are cut at member boundaries only
        assert members(upload.parts[number]) >= 1


def test_csv_file_has_the_header_once_and_late_keys_in_extra():
    records = make_records(150)
    for record in records[60:]:
        record["late"] = {"k": record["id"]}       # a key first seen after the header (a later step)
    upload = MemoryUpload()
    file = run_to_the_end(upload, "csv", records, part_size=12_000, pages=2)
    rows = list(csv.reader(io.StringIO(gzip.decompress(file).decode())))
    assert rows[0] == ["id", "email", "note", "_extra"]
    assert [row[0] for row in rows[1:]] == [r["id"] for r in records]          # header once, each row once
    assert rows[1][3] == "" and json.loads(rows[61][3]) == {"late": {"k": "61"}}
    assert len(upload.parts) >= 3


def test_an_empty_export_is_one_valid_empty_gzip_file():
    for fmt in ("ndjson", "csv"):
        upload = MemoryUpload()
        writer = FileWriter(fmt, 1024, upload)
        writer.finish()                            # nothing written at all
        writer.complete()
        assert upload.calls == [1] and gzip.decompress(upload.file) == b""
        assert writer.size == len(upload.file) > 0

        upload = MemoryUpload()                    # the walk's one page was empty
        assert run_to_the_end(upload, fmt, [], part_size=1024) is not None
        assert upload.calls == [1] and gzip.decompress(upload.file) == b"" and members(upload.file) == 1


def test_finish_after_the_last_part_was_just_uploaded_adds_no_empty_part():
    upload = MemoryUpload()
    writer = FileWriter("ndjson", 10, upload)
    writer.write(make_records(30))
    writer.put_part()
    writer.finish()
    writer.complete()
    assert upload.calls == [1] and ndjson_ids(upload.file) == [str(n) for n in range(1, 31)]


# ---- resuming ------------------------------------------------------------------------------------


def test_a_resume_continues_with_a_fresh_member_and_the_next_part_number():
    records = make_records(120)
    upload = MemoryUpload()
    first = FileWriter("ndjson", 10_000, upload)
    cursor = 0
    while not first.part_due():
        first.write(records[cursor:cursor + PAGE])
        cursor += PAGE
    first.put_part()
    first.write(records[cursor:cursor + PAGE])    # then one more page, and the step ends
    cursor += PAGE
    first.close_member()
    saved = stored(first.checkpoint())
    uploaded, buffered = len(saved["etags"]), bytes(saved["buffer"])
    assert uploaded == 1 and buffered and members(buffered) == 1          # finished bytes only

    writer = FileWriter.resume("ndjson", 10_000, upload, saved)
    assert writer.member is None and bytes(writer.buffer) == buffered
    writer.write(records[cursor:cursor + PAGE])
    assert writer.buffer[len(buffered):len(buffered) + 2] == b"\x1f\x8b"   # a new member starts there
    writer.put_part()
    assert upload.calls[-1] == uploaded + 1
    assert members(upload.parts[uploaded + 1]) == 2                       # the old member, then the new

    upload = MemoryUpload()                                                # and the whole job is exact
    assert ndjson_ids(run_to_the_end(upload, "ndjson", records, part_size=10_000, pages=2)) == \
        [r["id"] for r in records]


def test_a_part_uploaded_but_not_checkpointed_is_uploaded_again_and_the_file_is_exact():
    records = make_records(300)
    upload = MemoryUpload()
    saved = step(upload, "ndjson", records, None, part_size=15_000, crash_at_checkpoint=2)
    assert upload.calls == [1, 2] and saved["etags"] and len(saved["etags"]) == 1   # part 2: in, unsaved
    lost = upload.parts[2]
    while upload.file is None:
        saved = step(upload, "ndjson", records, saved, part_size=15_000)
    assert upload.calls[:3] == [1, 2, 2]                                   # the same number again
    assert ndjson_ids(upload.parts[2]) == ndjson_ids(lost)                 # re-read from the cursor
    assert ndjson_ids(upload.file) == [r["id"] for r in records]


def test_a_crash_before_the_final_checkpoint_uploads_the_last_part_again():
    records = make_records(50)
    upload = MemoryUpload()
    assert step(upload, "csv", records, None, part_size=10**6, crash_at_checkpoint=1) is None
    assert upload.calls == [1] and upload.file is None
    step(upload, "csv", records, None, part_size=10**6)                    # from the start again
    assert upload.calls == [1, 1] and upload.file is not None
    rows = list(csv.reader(io.StringIO(gzip.decompress(upload.file).decode())))
    assert [row[0] for row in rows] == ["id", *(r["id"] for r in records)]


def test_a_resumed_csv_file_keeps_its_columns():
    upload = MemoryUpload()
    writer = FileWriter("csv", 10**6, upload)
    writer.write([{"id": "1", "b": "x"}])
    writer.close_member()
    saved = stored(writer.checkpoint())
    assert saved["columns"] == ["id", "b"]
    again = FileWriter.resume("csv", 10**6, upload, saved)
    again.write([{"b": "y", "id": "2", "c": 3}])
    again.finish()
    again.complete()
    rows = list(csv.reader(io.StringIO(gzip.decompress(upload.file).decode())))
    assert rows == [["id", "b", "_extra"], ["1", "x", ""], ["2", "y", '{"c":3}']]


# ---- part size and checkpoints -------------------------------------------------------------------


def test_part_due_follows_the_part_size():
    upload = MemoryUpload()
    writer = FileWriter("ndjson", 20_000, upload)
    assert not writer.part_due()
    seen = []
    records = make_records(400)
    for start in range(0, 400, 10):
        writer.write(records[start:start + 10])
        seen.append(writer.part_due())
        assert writer.part_due() == (len(writer.buffer) >= 20_000)
        if writer.part_due():
            writer.put_part()
            assert not writer.part_due() and writer.buffer == bytearray() and writer.member is None
    assert False in seen and True in seen
    assert all(size >= 20_000 for size in writer.sizes) and len(writer.sizes) >= 3
    assert writer.size == sum(len(upload.parts[n]) for n in upload.parts)


def test_the_checkpoint_is_taken_at_a_member_boundary_in_the_stored_format():
    upload = MemoryUpload()
    writer = FileWriter("ndjson", 500, upload)
    writer.write(make_records(40))
    with pytest.raises(RuntimeError):
        writer.checkpoint()                        # a member is open: its bytes are not finished
    writer.put_part()
    writer.write(make_records(3))
    writer.close_member()
    checkpoint = writer.checkpoint()
    assert set(checkpoint) == {"etags", "sizes", "buffer"}                 # no columns for NDJSON
    assert isinstance(checkpoint["buffer"], Binary) and members(bytes(checkpoint["buffer"])) == 1
    assert checkpoint["etags"] == [MemoryUpload._etag(upload.parts[1])]
    assert checkpoint["sizes"] == [len(upload.parts[1])]


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_a_checkpoint_saved_before_the_writer_existed_resumes_and_is_saved_the_same():
    """Jobs running across the deploy: the worker's checkpoint document keeps its exact fields."""
    member = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    buffered = member.compress(b"id,name,_extra\r\n1,a,\r\n") + member.flush()
    old = {"cursor": {"offset": 100}, "read": 100, "written": 1, "etags": ['"e1"', '"e2"'], "sizes": [7, 9],
           "buffer": Binary(buffered), "final": 0, "total": 250, "columns": ["id", "name"],
           "outage_since": 12.5}
    saved = stored(old)
    state = job_worker._State.load(saved)
    writer = FileWriter.resume("csv", 10**6, MemoryUpload(), saved)
    dumped = state.dump(writer.checkpoint())
    assert isinstance(dumped["buffer"], Binary)
    again = stored(dumped)
    assert again == saved and again["buffer"] == buffered
    assert {**again, "buffer": Binary(again["buffer"])} == old
    assert list(again) == list(old)                                          # same fields, same order
    new = job_worker._State(cursor={})
    assert job_worker._State.load(stored(new.dump(FileWriter("ndjson", 1, MemoryUpload()).checkpoint()))) == new
