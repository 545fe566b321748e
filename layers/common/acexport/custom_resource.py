"""A Lambda-backed CloudFormation custom resource that never hangs a stack (docs/decisions.md, "The
database setup runs in the deployment").

CloudFormation's protocol (AWS CloudFormation User Guide, "Custom resources": request and response
objects): the request carries RequestType (Create, Update, Delete), ResponseURL (a pre-signed S3 URL),
StackId, RequestId, LogicalResourceId, ResourceProperties and, for Update and Delete, PhysicalResourceId;
the function answers by a PUT of a JSON object (Status SUCCESS or FAILED, Reason, PhysicalResourceId,
StackId, RequestId, LogicalResourceId, optional Data) to ResponseURL, with an empty Content-Type (the URL
is signed without one; AWS's own cfn-response module sends it so). Until that PUT arrives the stack waits
(ServiceTimeout on the resource, at most an hour).

So that a stack is never left waiting:
- Delete answers SUCCESS without doing anything (the indexes stay: the data they serve outlives the stack);
- Create/Update run the work in a thread and answer before the function's own timeout (FAILED, "timed out",
  when the work is still running `MARGIN_SECONDS` before it);
- any exception becomes FAILED with a reason made of the error's own safe message (ServiceUnavailable:
  written never to hold a secret) or only its type name, never a value, a URI or the response URL;
- a failure while the stack is rolling back is answered SUCCESS (logged as a failure): a rollback that
  fails leaves the stack in UPDATE_ROLLBACK_FAILED, and the work here only adds indexes, which the older
  version works with, so there is nothing to undo.

Not crhelper (the helper Powertools points to): it logs the whole request (with the pre-signed URL) at
DEBUG, speaks only https (no loopback test), sleeps 120 s on every Delete by default and retries a failed
PUT forever. This module is the part of it this service needs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from acexport.errors import ApiError

logger = logging.getLogger(__name__)

SUCCESS, FAILED = "SUCCESS", "FAILED"
MARGIN_SECONDS = 10.0        # answered this long before the function's timeout, whatever the work does
PUT_ATTEMPTS = 3
PUT_TIMEOUT = 10.0
MAX_REASON = 1000            # the whole response must stay under 4 KB
_REQUIRED = ("RequestType", "ResponseURL", "StackId", "RequestId", "LogicalResourceId")


def is_request(event: Any) -> bool:
    """A CloudFormation custom-resource request (as opposed to a direct invoke)."""
    return isinstance(event, dict) and all(isinstance(event.get(name), str) for name in _REQUIRED)


class Failed(Exception):
    """Raised by the work to fail the resource with this message (which must hold no secret)."""


def safe_reason(exc: BaseException) -> str:
    """What may be said about an error: Failed and the service's own errors (acexport.errors: built from
    fixed text, naming a setting, never its value); for anything else only its type."""
    if isinstance(exc, Failed):
        return str(exc)
    if isinstance(exc, ApiError):
        return exc.message
    return f"{type(exc).__name__} (details in the function's log)"


def respond(event: dict, status: str, reason: str = "", data: dict | None = None, *,
            physical_id: str | None = None, deadline: float | None = None) -> bool:
    """PUT the response to CloudFormation; True when it was accepted. Never raises."""
    body = json.dumps({
        "Status": status,
        "Reason": reason[:MAX_REASON] or status,
        "PhysicalResourceId": physical_id or event.get("PhysicalResourceId") or event["LogicalResourceId"],
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": data or {},
    }).encode()
    host = urlsplit(event["ResponseURL"]).hostname   # logged instead of the URL (it is pre-signed)
    for attempt in range(1, PUT_ATTEMPTS + 1):
        timeout = PUT_TIMEOUT if deadline is None else max(1.0, min(PUT_TIMEOUT, deadline - time.monotonic()))
        code = _put(event["ResponseURL"], body, timeout, host=host, attempt=attempt)
        if code is not None and code < 300:
            logger.info("custom resource response delivered", extra={"status": status, "host": host})
            return True
        if code is not None:
            logger.warning("custom resource response refused", extra={
                "host": host, "attempt": attempt, "http_status": code})
        if attempt < PUT_ATTEMPTS and (deadline is None or time.monotonic() + attempt < deadline):
            time.sleep(attempt)
    return False


def _put(url: str, body: bytes, timeout: float, *, host: str | None, attempt: int) -> int | None:
    """PUT `body` to CloudFormation's pre-signed URL; its HTTP status, or None when it could not be sent. The
    standard library's client, not requests: urllib3 logs each request line at DEBUG, and this URL's query
    string is a credential (X-Amz-Signature) that must never reach a log."""
    if urlsplit(url).scheme not in ("https", "http"):
        logger.warning("custom resource response URL is not http(s)", extra={"host": host})
        return None
    request = urllib.request.Request(url, data=body, method="PUT",  # noqa: S310 - the scheme is checked above
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - the scheme is checked above
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        logger.warning("custom resource response not delivered", extra={
            "host": host, "attempt": attempt, "error": type(exc).__name__})
        return None


def rolling_back(stack_id: str) -> bool:
    """Whether the stack is rolling back now (its status ends in ROLLBACK_IN_PROGRESS); False when that
    cannot be read (the failure is then reported as it is)."""
    try:
        import boto3
        from botocore.config import Config

        # Bounded: in a VPC without a route to CloudFormation this must not eat the time left to answer.
        config = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
        stacks = boto3.client("cloudformation", config=config).describe_stacks(StackName=stack_id)["Stacks"]
        return bool(stacks) and stacks[0]["StackStatus"].endswith("ROLLBACK_IN_PROGRESS")
    except Exception as exc:   # no permission, throttled, no network: do not guess
        logger.warning("stack status unreadable", extra={"error": type(exc).__name__})
        return False


def handle(event: dict, context: Any, work: Callable[[dict], dict], *, physical_id: str,
           is_rolling_back: Callable[[str], bool] = rolling_back) -> dict:
    """Answer one custom-resource request: `work(properties)` on Create and Update (its dict becomes the
    response's Data; an exception, FAILED), nothing on Delete. Returns what was sent."""
    kind = event["RequestType"]
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000.0 - MARGIN_SECONDS
    logger.info("custom resource request", extra={"request_type": kind, "logical_id": event["LogicalResourceId"]})
    sent: dict[str, Any]
    if kind == "Delete":
        sent = {"status": SUCCESS, "reason": "nothing to delete: the indexes stay with the data", "data": {}}
    elif kind not in ("Create", "Update"):
        sent = {"status": FAILED, "reason": f"unknown RequestType {kind[:40]!r}", "data": {}}
    else:
        sent = _run(work, event.get("ResourceProperties") or {}, deadline)
        if sent["status"] == FAILED and kind == "Update" and is_rolling_back(event["StackId"]):
            logger.error("setup failed during a rollback; answered SUCCESS so the rollback completes",
                         extra={"reason": sent["reason"]})
            sent = {"status": SUCCESS, "reason": f"rollback: not failed on purpose ({sent['reason']})"[:MAX_REASON],
                    "data": {}}
    # A new physical id on Update would make CloudFormation delete the old one: keep the one it has.
    sent["delivered"] = respond(event, sent["status"], sent["reason"], sent["data"],
                                physical_id=event.get("PhysicalResourceId") or physical_id,
                                deadline=deadline + MARGIN_SECONDS - 1)
    return sent


def _run(work: Callable[[dict], dict], properties: dict, deadline: float) -> dict:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["data"] = work(properties)
        except BaseException as exc:
            logger.exception("custom resource work failed")
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="custom-resource", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        return {"status": FAILED, "data": {},
                "reason": "timed out before the function's own timeout; the work may still finish in MongoDB: "
                          "run it again (docs/deploy.md, 'Database setup')"}
    if "error" in outcome:
        return {"status": FAILED, "reason": safe_reason(outcome["error"]), "data": {}}
    return {"status": SUCCESS, "reason": "", "data": outcome.get("data") or {}}
