"""Settings from the environment, with safe local defaults (docs/architecture.md lists them all).

Secrets (the Mongo URI, the JWT secret) are read from Secrets Manager through Powertools Parameters
when their `*_ARN` variable is set (as in AWS), and from the plain variable otherwise (local runs).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

from acexport.errors import ServiceUnavailable

TRUE = {"1", "true", "yes", "on"}

# botocore logs request parameters and response bodies at DEBUG: KMS Encrypt's plaintext (an api key)
# and Secrets Manager's secret values. Keep the SDK's loggers at INFO or above whatever the root level
# (Lambda's log-level controls can set DEBUG). tests/integration/test_secrets.py checks this.
for _name in ("botocore", "boto3"):
    logging.getLogger(_name).setLevel(max(logging.getLogger(_name).level, logging.INFO))


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default).lower()
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}")
    return value


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
    rate_limit_per_second: float
    rate_budget: str
    rate_budget_collection: str
    rate_window_margin_ms: float
    connect_timeout: float
    read_timeout: float
    request_budget_seconds: float
    reference_cache_seconds: float
    local_scan_limit: int

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            mongodb_database=os.environ.get("MONGODB_DATABASE") or None,
            mongodb_timeout_ms=int(_env("MONGODB_TIMEOUT_MS", "2500")),
            credentials_collection=_env("CREDENTIALS_COLLECTION", "integrations-activecampaign-keys"),
            accounts_collection=_env("ACCOUNTS_COLLECTION", "accounts"),
            accounts_id_field=_env("ACCOUNTS_ID_FIELD", "_id"),
            accounts_parent_field=_env("ACCOUNTS_PARENT_FIELD", "parent_account"),
            kms_key_id=_env("KMS_KEY_ID", ""),
            api_version="/" + _env("ACTIVECAMPAIGN_API_VERSION", "/api/3").strip("/"),
            allow_local_base_url=_env("ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL", "false").lower() in TRUE,
            rate_limit_per_second=float(_env("AC_RATE_LIMIT_PER_SECOND", "5")),
            rate_budget=_choice("AC_RATE_BUDGET", "shared", ("shared", "local")),
            rate_budget_collection=_env("RATE_BUDGET_COLLECTION", "integrations_activecampaign_rate_budget"),
            rate_window_margin_ms=float(_env("AC_RATE_WINDOW_MARGIN_MS", "50")),
            connect_timeout=float(_env("AC_CONNECT_TIMEOUT", "3.05")),
            read_timeout=float(_env("AC_READ_TIMEOUT", "10")),
            request_budget_seconds=float(_env("REQUEST_BUDGET_SECONDS", "27")),
            reference_cache_seconds=float(_env("REFERENCE_CACHE_SECONDS", "300")),
            local_scan_limit=int(_env("LOCAL_SCAN_LIMIT", "5000")),
        )


@functools.cache
def get_settings() -> Settings:
    """The settings of this container (read once; tests call `get_settings.cache_clear()`)."""
    return Settings.from_env()


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
            raise ServiceUnavailable(f"Configuration secret {arn_name} is unavailable") from exc
        return str(value).strip()
    value = os.environ.get(plain_name, "").strip()
    if not value:
        raise ServiceUnavailable(f"Configuration missing: set {plain_name} or {arn_name}")
    return value
