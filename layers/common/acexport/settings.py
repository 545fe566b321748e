"""Every setting of the layer, read from the environment once per container (docs/architecture.md lists
them all, docs/jobs.md the jobs' ones).

`get_settings()` reads them on first use and keeps them; `acexport.caches.reset()` forgets them (tests
and the local stack change the environment between cases). A value that cannot be read is a
`ConfigurationError`: a deployment error, answered as a 503 that names the variable.

Secrets (the Mongo URI, the JWT secret) are read from Secrets Manager through Powertools Parameters
when their `*_ARN` variable is set (as in AWS), and from the plain variable otherwise (local runs).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from dataclasses import dataclass

from acexport import caches
from acexport.errors import ConfigurationError, ServiceUnavailableError

TRUE = {"1", "true", "yes", "on"}
MIN_PART_SIZE = 1024   # S3 wants >= 5 MiB for every part but the last; smaller sizes are for local tests

# botocore logs request parameters and response bodies at DEBUG: KMS Encrypt's plaintext (an api key)
# and Secrets Manager's secret values. Keep the SDK's loggers at INFO or above whatever the root level
# (Lambda's log-level controls can set DEBUG). tests/integration/test_secrets.py checks this.
for _name in ("botocore", "boto3"):
    logging.getLogger(_name).setLevel(max(logging.getLogger(_name).level, logging.INFO))


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default).lower()
    if value not in allowed:
        raise ConfigurationError(f"Configuration error: {name} must be one of {', '.join(allowed)}")
    return value


def _number(name: str, default: float, low: float | None = None) -> float:
    try:
        value = float(_env(name, str(default)))
    except ValueError:
        raise ConfigurationError(f"Configuration error: {name} must be a number") from None
    return value if low is None else max(low, value)


def _suffixes(name: str, default: str) -> tuple[str, ...]:
    """A comma-separated list of DNS suffixes (e.g. `api-us1.com,activehosted.com`)."""
    values = tuple(part.strip().lower().strip(".") for part in _env(name, default).split(",") if part.strip())
    if not values or not all(re.fullmatch(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+", value) for value in values):
        raise ConfigurationError(f"Configuration error: {name} must be a comma-separated list of domains")
    return values


def _flag(name: str, default: str = "false") -> bool:
    return _env(name, default).lower() in TRUE


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
    max_records: int           # records a job may read from AC before it fails (a host that never ends)
    pages_in_flight: int       # most AC pages one job requests at once (contacts: one per id slice)
    slice_pages: int           # a contacts id slice is cut only into parts of at least this many pages

    @classmethod
    def from_env(cls) -> JobSettings:
        return cls(
            collection=_env("JOBS_COLLECTION", "integrations-activecampaign-export-jobs"),
            bucket=_env("EXPORT_BUCKET", ""),
            prefix=_env("EXPORT_PREFIX", "exports/").lstrip("/"),
            queue_url=_env("EXPORT_QUEUE_URL", ""),
            event_bus=_env("EVENT_BUS_NAME", "activecampaign-integration"),
            event_source=_env("EVENT_SOURCE", "activecampaign-integration"),
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
            max_records=int(_number("EXPORT_MAX_RECORDS", 20_000_000, 1)),
            pages_in_flight=int(_number("EXPORT_PAGES_IN_FLIGHT", 5, 1)),
            slice_pages=int(_number("EXPORT_SLICE_PAGES", 2, 1)),
        )


@dataclass(frozen=True)
class LiveSettings:
    subscriptions_collection: str   # Mongo collection of the live subscriptions (one per account + owner)
    changes_collection: str         # Mongo collection of the change feed (TTL)
    changes_days: float             # days a change stays readable (TTL index and read filter)
    hooks_base_url: str             # public base URL AC posts to; "" = the URL the caller reached the API at
    max_body_bytes: int             # largest webhook delivery the receiver reads

    @classmethod
    def from_env(cls) -> LiveSettings:
        return cls(
            subscriptions_collection=_env("LIVE_COLLECTION", "integrations-activecampaign-live"),
            changes_collection=_env("CHANGES_COLLECTION", "integrations-activecampaign-changes"),
            changes_days=_number("CHANGES_TTL_DAYS", 7, 0.001),
            hooks_base_url=_env("HOOKS_BASE_URL", "").rstrip("/"),
            max_body_bytes=int(_number("HOOKS_MAX_BODY_BYTES", 128 * 1024, 1024)),
        )


@dataclass(frozen=True)
class ReconcileSettings:
    prefix: str                # key prefix of the id sets in EXPORT_BUCKET (no lifecycle rule: kept until DELETE /auth)
    interval_hours: int        # live-enabled connections are reconciled once per this many hours (the schedule)
    max_restarts: int          # offset walks restarted when AC's records moved under them, before the job fails

    @classmethod
    def from_env(cls) -> ReconcileSettings:
        return cls(prefix=_env("RECONCILE_PREFIX", "reconcile/").lstrip("/"),
                   interval_hours=int(_number("RECONCILE_INTERVAL_HOURS", 168, 1)),
                   max_restarts=int(_number("RECONCILE_MAX_RESTARTS", 3, 0)))


@dataclass(frozen=True)
class Settings:
    mongodb_database: str | None
    mongodb_timeout_ms: int
    credentials_collection: str
    accounts_collection: str
    accounts_id_field: str
    accounts_parent_field: str
    kms_key_id: str
    api_version: str
    allow_local_base_url: bool
    allowed_host_suffixes: tuple[str, ...]
    max_response_bytes: int
    max_reference_pages: int
    auth_attempts: int
    auth_window_seconds: float
    mongodb_max_pool_size: int
    rate_limit_per_second: float
    validations_per_second: float
    rate_budget: str
    rate_budget_collection: str
    rate_window_margin_ms: float
    rate_margin_adapt: bool
    connect_timeout: float
    read_timeout: float
    request_budget_seconds: float
    reference_cache_seconds: float
    local_scan_limit: int
    jobs: JobSettings
    live: LiveSettings

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            mongodb_database=os.environ.get("MONGODB_DATABASE") or None,
            mongodb_timeout_ms=int(_number("MONGODB_TIMEOUT_MS", 2500, 1)),
            credentials_collection=_env("CREDENTIALS_COLLECTION", "integrations-activecampaign-keys"),
            accounts_collection=_env("ACCOUNTS_COLLECTION", "accounts"),
            accounts_id_field=_env("ACCOUNTS_ID_FIELD", "_id"),
            accounts_parent_field=_env("ACCOUNTS_PARENT_FIELD", "parent_account"),
            kms_key_id=_env("KMS_KEY_ID", ""),
            api_version="/" + _env("ACTIVECAMPAIGN_API_VERSION", "/api/3").strip("/"),
            allow_local_base_url=_flag("ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL"),
            allowed_host_suffixes=_suffixes("AC_ALLOWED_HOST_SUFFIXES", "api-us1.com,activehosted.com"),
            max_response_bytes=int(_number("AC_MAX_RESPONSE_BYTES", 16 * 1024 * 1024, 1024)),
            max_reference_pages=int(_number("AC_MAX_REFERENCE_PAGES", 100, 1)),
            auth_attempts=int(_number("AUTH_SAVE_ATTEMPTS", 10, 1)),
            auth_window_seconds=_number("AUTH_SAVE_WINDOW_SECONDS", 60, 1),
            mongodb_max_pool_size=int(_number("MONGODB_MAX_POOL_SIZE", 4, 1)),
            rate_limit_per_second=_number("AC_RATE_LIMIT_PER_SECOND", 5, 1),
            validations_per_second=_number("AC_VALIDATIONS_PER_SECOND", 1, 1),
            rate_budget=_choice("AC_RATE_BUDGET", "shared", ("shared", "local")),
            rate_budget_collection=_env("RATE_BUDGET_COLLECTION", "integrations_activecampaign_rate_budget"),
            rate_window_margin_ms=_number("AC_RATE_WINDOW_MARGIN_MS", 25, 0),
            rate_margin_adapt=_flag("AC_RATE_MARGIN_ADAPT", "true"),
            connect_timeout=_number("AC_CONNECT_TIMEOUT", 3.05, 0.1),
            read_timeout=_number("AC_READ_TIMEOUT", 10, 0.1),
            request_budget_seconds=_number("REQUEST_BUDGET_SECONDS", 27, 0.5),
            reference_cache_seconds=_number("REFERENCE_CACHE_SECONDS", 300, 0),
            local_scan_limit=int(_number("LOCAL_SCAN_LIMIT", 5000, 1)),
            jobs=JobSettings.from_env(),
            live=LiveSettings.from_env(),
        )


@caches.register
@functools.cache
def get_settings() -> Settings:
    """The settings of this container, read once (`acexport.caches.reset()` forgets them)."""
    return Settings.from_env()


def job_settings() -> JobSettings:
    return get_settings().jobs


@caches.register
@functools.cache
def reconcile_settings() -> ReconcileSettings:
    """The reconcile's settings (docs/live.md), read once like get_settings()."""
    return ReconcileSettings.from_env()


def required(value: str, name: str) -> str:
    """A setting without which a function cannot work (a deployment error, answered as a 503)."""
    if not value:
        raise ConfigurationError(f"Configuration missing: set {name}")
    return value


def secret(plain_name: str, arn_name: str) -> str:
    """A secret: from Secrets Manager (cached by Powertools for 5 minutes) when `arn_name` is set,
    else from the plain environment variable. Raises ServiceUnavailable when it cannot be had,
    without ever putting the value in the message."""
    arn = os.environ.get(arn_name, "").strip()
    if arn:
        # Imported here so functions that never read a secret from AWS don't pay for boto3 at cold start.
        from aws_lambda_powertools.utilities import parameters

        try:
            value = parameters.get_secret(arn, max_age=300)
        except Exception as exc:  # GetParameterError, botocore errors: all mean "not available now"
            raise ServiceUnavailableError(f"Configuration secret {arn_name} is unavailable") from exc
        return str(value).strip()
    value = os.environ.get(plain_name, "").strip()
    if not value:
        raise ConfigurationError(f"Configuration missing: set {plain_name} or {arn_name}")
    return value


@caches.register
def _forget_secrets() -> None:
    """Powertools' parameter cache (the secrets read above), when it was ever imported."""
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:
        parameters.clear_caches()
