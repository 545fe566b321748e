"""What a caller sees of a job: status, progress, an estimate of the time left, the error, the download.

`percent` and `eta_seconds` come from the records read from AC against AC's own count (`total_expected`);
with a filter applied here (e.g. contacts' firstName, or updated_after on accounts) fewer records are
written than read, so `records_written` may end below `total_expected`. The download URL is pre-signed
for EXPORT_URL_SECONDS on every read, never stored; after EXPORT_FILE_DAYS the file is gone (the
bucket's lifecycle rule) and the job says so instead of giving a URL. Lists and cancels carry no URL.
"""

from __future__ import annotations

import datetime as dt

from acexport.compat import as_datetime
from acexport.jobs.files import download_url
from acexport.settings import job_settings


def iso(value) -> str | None:
    moment = as_datetime(value)
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def _progress(doc: dict, now: dt.datetime) -> tuple[float | None, int | None]:
    status, progress = doc["status"], doc.get("progress") or {}
    total, read = progress.get("total"), int(progress.get("read") or 0)
    if status == "succeeded":
        return 100.0, None
    if status == "queued" or total is None:
        return (0.0 if status == "queued" else None), None
    if not total:
        return 0.0, None
    percent = min(99.9, round(100.0 * read / total, 1))
    started = as_datetime(doc.get("started_at"))
    if status != "running" or not read or started is None:
        return percent, None
    elapsed = (now - started).total_seconds()
    return percent, max(0, round(elapsed * (total - read) / read)) if read < total else 0


def _file(doc: dict, now: dt.datetime, with_url: bool) -> dict | None:
    stored = doc.get("file")
    if doc["status"] != "succeeded" or not stored:
        return None
    settings = job_settings()
    available_until = (as_datetime(doc.get("finished_at")) or now) + dt.timedelta(days=settings.file_days)
    out = {"name": stored["name"], "format": doc["format"], "compression": "gzip", "size": stored["size"],
           "records": stored["records"], "available_until": iso(available_until), "url": None,
           "url_expires_at": None}
    if with_url and now < available_until:
        out["url"] = download_url(stored["bucket"], stored["key"], settings.url_seconds)
        out["url_expires_at"] = iso(now + dt.timedelta(seconds=settings.url_seconds))
    return out


def _error(doc: dict) -> dict | None:
    error = doc.get("error") if doc["status"] == "failed" else None
    if not error:
        return None
    return {"message": str(error.get("message")), **({"reconnect": True} if error.get("reconnect") else {})}


def describe(doc: dict, *, with_url: bool = False) -> dict:
    """The job as callers see it; `with_url` adds a pre-signed download URL to a succeeded job (only the
    single-job read does: lists and cancels need no S3 permission)."""
    now = dt.datetime.now(dt.UTC)
    progress = doc.get("progress") or {}
    percent, eta = _progress(doc, now)
    file = _file(doc, now, with_url)
    return {
        "id": doc["_id"],
        "resource": doc["resource"],
        "format": doc["format"],
        "status": doc["status"],
        "source": doc.get("source", "api"),
        "filters": doc.get("filters") or {},
        "updated_after": doc.get("updated_after"),
        "created_at": iso(doc.get("created_at")),
        "started_at": iso(doc.get("started_at")),
        "finished_at": iso(doc.get("finished_at")),
        "records_written": file["records"] if file else int(progress.get("written") or 0),
        "records_read": int(progress.get("read") or 0),
        "total_expected": progress.get("total"),
        "percent": percent,
        "eta_seconds": eta,
        "error": _error(doc),
        "file": file,
        **({"reconcile": doc["reconcile"]} if doc.get("reconcile") else {}),   # a finished reconcile (docs/live.md)
    }
