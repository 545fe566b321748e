"""The AWS clients of the job functions (S3, SQS, EventBridge): one each per warm container, created on
first use so a function that needs none of them never imports boto3. Bounded timeouts and botocore's
standard retries; an AWS failure the caller cannot handle becomes a 503 (`aws_errors`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from acexport import caches
from acexport.errors import ServiceUnavailableError

_clients: dict[str, Any] = {}
_lock = threading.Lock()
_TIMEOUTS = {"s3": (3, 30), "sqs": (2, 10), "events": (2, 10)}   # (connect, read) seconds


def client(service: str) -> Any:
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            connect, read = _TIMEOUTS[service]
            config = Config(connect_timeout=connect, read_timeout=read, signature_version="s3v4"
                            if service == "s3" else None, retries={"max_attempts": 3, "mode": "standard"})
            _clients[service] = boto3.client(service, config=config)
        return _clients[service]


@caches.register
def reset_clients() -> None:
    """Forget the clients (a local stack restarted on another endpoint)."""
    with _lock:
        _clients.clear()


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """botocore failures (unreachable, throttled past its retries, refused) as a 503 naming `what`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailableError(f"{what} unavailable; retry later") from exc
