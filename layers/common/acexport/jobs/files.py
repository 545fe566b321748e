"""The export file: records as NDJSON or CSV, gzip-compressed, written to S3 by multipart upload.

The file is a series of gzip members (RFC 1952 2.2: gunzip, zcat, Python's gzip and most readers read
consecutive members as one stream). A member ends wherever the worker checkpoints, so a checkpoint holds
only finished bytes: the ETags of the parts uploaded so far plus the compressed bytes not yet uploaded
(less than one part). A resumed worker continues with a fresh member and the next part number; a part
that was uploaded but not checkpointed is uploaded again under the same number, and S3 keeps the last
upload of a part number, so the finished file is exact.

CSV: a header row (the keys of the first page's records, in order, then `_extra`), one row per record;
nested values (lists, objects) as JSON; a key first seen after the header goes into `_extra` (a JSON
object), so no field is ever dropped. A cell a spreadsheet would run as a formula (it begins with `=`, `+`,
`-`, `@`, a tab or a carriage return, perhaps after spaces) gets a leading `'` (OWASP, "CSV Injection"):
anyone can type `=HYPERLINK(...)` into a public AC form. A plain number (`-12.5`, `+15551234567`) is left as
it is: no formula can hide in it. NDJSON: one JSON object per line, AC's fields exactly as AC sent them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from collections.abc import Iterable
from typing import Any

from acexport.jobs.aws import client, error_code

FORMATS = ("ndjson", "csv")
EXTRA_COLUMN = "_extra"
GZIP_LEVEL = 6
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")          # what makes a spreadsheet read a cell as a formula
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def inert(text: str) -> str:
    """`text` as a spreadsheet shows it, never runs it: a leading `'` when it would start a formula (also after
    leading spaces, which spreadsheets skip), unless it is a plain number."""
    start = text.lstrip(" \u00a0")
    if start.startswith(FORMULA_START) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _json(value)       # starts with { or [: never a formula
    return inert(str(value))


def _header(columns: list[str]) -> list[str]:
    return [*(inert(column) for column in columns), EXTRA_COLUMN]


def encode(fmt: str, records: list[dict], columns: list[str] | None) -> tuple[bytes, list[str] | None]:
    """The bytes of `records` in `fmt`, and the CSV columns (chosen from the first records, then kept:
    the caller saves them in its checkpoint). The CSV header is written with the first records."""
    if fmt == "ndjson":
        return "".join(_json(record) + "\n" for record in records).encode(), None
    if not records:
        return b"", columns
    out = io.StringIO()
    writer = csv.writer(out)
    if columns is None:
        columns = list(dict.fromkeys(key for record in records for key in record))
        writer.writerow(_header(columns))
    known = set(columns)
    for record in records:
        extra = {key: value for key, value in record.items() if key not in known}
        writer.writerow([*(_cell(record.get(column)) for column in columns), _json(extra) if extra else ""])
    return out.getvalue().encode(), columns


class GzipMember:
    """One gzip member: bytes in, compressed bytes out; `close()` returns the member's last bytes."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def write(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def close(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)


def file_name(resource: str, fmt: str, job_id: str) -> str:
    return f"activecampaign-{resource}-{job_id}.{fmt}.gz"


class Upload:
    """The multipart upload of one export file."""

    def __init__(self, bucket: str, key: str, upload_id: str):
        self.bucket, self.key, self.upload_id = bucket, key, upload_id

    @classmethod
    def start(cls, bucket: str, key: str, name: str, job_id: str) -> Upload:
        reply = client("s3").create_multipart_upload(
            Bucket=bucket, Key=key, ContentType="application/gzip",
            ContentDisposition=f'attachment; filename="{name}"', Metadata={"job-id": job_id})
        return cls(bucket, key, reply["UploadId"])

    def put_part(self, number: int, data: bytes | bytearray) -> str:
        reply = client("s3").upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                         PartNumber=number, Body=data)
        return str(reply["ETag"])

    def complete(self, etags: Iterable[str]) -> None:
        """Finish the file from the checkpointed parts. Done already (a crash after S3 finished it, before
        the job said so): fine when the object is there."""
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]
        try:
            client("s3").complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                                   MultipartUpload={"Parts": parts})
        except Exception as exc:
            if error_code(exc) != "NoSuchUpload" or not self.exists():
                raise

    def exists(self) -> bool:
        try:
            client("s3").head_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self) -> None:
        """Remove the completed file (S3 answers a missing key with success too)."""
        client("s3").delete_object(Bucket=self.bucket, Key=self.key)

    def abort(self) -> None:
        try:
            client("s3").abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception as exc:
            if error_code(exc) != "NoSuchUpload":
                raise


def download_url(bucket: str, key: str, seconds: int) -> str:
    """A pre-signed GET of the file (signing is local: no AWS call)."""
    return client("s3").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                               ExpiresIn=seconds)
