"""Settings of the export jobs (docs/architecture.md lists them with the others).

Read from the environment on every call (a dozen lookups, no cache): the job functions read them once per
request or worker step, and tests change them between jobs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from acexport.errors import ServiceUnavailable

MIN_PART_SIZE = 1024   # S3 wants >= 5 MiB for every part but the last; smaller sizes are for local tests


def _text(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _number(name: str, default: float, low: float) -> float:
    try:
        value = float(_text(name, str(default)))
    except ValueError:
        raise ServiceUnavailable(f"Configuration error: {name} must be a number") from None
    return max(low, value)


@dataclass(frozen=True)
class JobSettings:
    collection: str            # Mongo collection of the job documents
    bucket: str                # S3 bucket of the export files
    prefix: str                # key prefix of the export files (the bucket's lifecycle rule expires it)
    queue_url: str             # the FIFO queue the worker reads
    event_bus: str             # EventBridge bus of the finished-job events
    event_source: str          # `source` of the events this service emits
    part_size: int             # bytes of gzip output per S3 multipart part (>= 5 MiB in AWS)
    step_seconds: float        # most seconds one worker invocation works before handing on (0: no cap)
    reserve_seconds: float     # kept back from the Lambda's remaining time to checkpoint and hand on
    lease_seconds: float       # a worker's claim on a job, renewed while it works
    progress_seconds: float    # how often a working step saves progress (and sees cancels)
    retry_seconds: float       # base back-off before a failed step's message is delivered again
    patience_seconds: float    # how long AC may keep failing (5xx, timeouts) before the job fails
    url_seconds: int           # lifetime of a download URL
    file_days: int             # days an export file is kept (the bucket's lifecycle rule)
    max_active: int            # queued + running jobs one caller may have

    @classmethod
    def from_env(cls) -> JobSettings:
        return cls(
            collection=_text("JOBS_COLLECTION", "integrations-activecampaign-export-jobs"),
            bucket=_text("EXPORT_BUCKET", ""),
            prefix=_text("EXPORT_PREFIX", "exports/").lstrip("/"),
            queue_url=_text("EXPORT_QUEUE_URL", ""),
            event_bus=_text("EVENT_BUS_NAME", "default"),
            event_source=_text("EVENT_SOURCE", "activecampaign-integration"),
            part_size=int(_number("EXPORT_PART_SIZE", 8 * 1024 * 1024, MIN_PART_SIZE)),
            step_seconds=_number("EXPORT_STEP_SECONDS", 0, 0),
            reserve_seconds=_number("EXPORT_RESERVE_SECONDS", 20, 0.5),
            lease_seconds=_number("EXPORT_LEASE_SECONDS", 60, 1),
            progress_seconds=_number("EXPORT_PROGRESS_SECONDS", 2, 0.05),
            retry_seconds=_number("EXPORT_RETRY_SECONDS", 30, 0),
            patience_seconds=_number("EXPORT_UPSTREAM_PATIENCE_SECONDS", 300, 0),
            url_seconds=int(_number("EXPORT_URL_SECONDS", 900, 1)),
            file_days=int(_number("EXPORT_FILE_DAYS", 7, 1)),
            max_active=int(_number("EXPORT_MAX_ACTIVE_JOBS", 5, 1)),
        )


def job_settings() -> JobSettings:
    return JobSettings.from_env()


def required(value: str, name: str) -> str:
    """A setting without which the job functions cannot work (a deployment error, answered as a 503)."""
    if not value:
        raise ServiceUnavailable(f"Configuration missing: set {name}")
    return value
