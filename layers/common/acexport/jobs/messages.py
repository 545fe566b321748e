"""What the jobs say to the rest of AWS: the work message on the FIFO queue and the EventBridge events.

Queue message: body `{"job_id": ..., "seq": <handoff seq>}`, MessageGroupId = the job's own AC account
(`ac.base_url.account_key` of the host recorded in the job, so `<name>.api-us1.com` and
`<name>.activehosted.com` are one group; jobs on one AC account run one step at a time, so together they
stay within AC's per-account limit), deduplication id
`<job_id>-<seq>` (a re-sent hand-on within SQS's 5-minute window is dropped by SQS itself).

Events (source EVENT_SOURCE, default `activecampaign-integration`, on EVENT_BUS_NAME):
- `ActiveCampaign Export Job Finished`: every job that ends, with its status, record count, and for a
  succeeded job the S3 location of the file (bucket, key, size): downstream sync reads it from there;
- `ActiveCampaign Export Request Rejected`: an `ActiveCampaign Export Requested` event that could not
  start a job (bad options, no connection, too many jobs), with the reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from acexport.ac.base_url import account_key
from acexport.errors import ServiceUnavailableError
from acexport.jobs.aws import aws_errors, client
from acexport.settings import job_settings, required

logger = logging.getLogger(__name__)

REQUESTED = "ActiveCampaign Export Requested"
FINISHED = "ActiveCampaign Export Job Finished"
REJECTED = "ActiveCampaign Export Request Rejected"


def send_work(job_id: str, seq: int, group: str) -> None:
    settings = job_settings()
    with aws_errors("Export queue"):
        client("sqs").send_message(
            QueueUrl=required(settings.queue_url, "EXPORT_QUEUE_URL"),
            MessageBody=json.dumps({"job_id": job_id, "seq": seq}, separators=(",", ":")),
            MessageGroupId=account_key(group), MessageDeduplicationId=f"{job_id}-{seq}")


def parse_work(body: str) -> tuple[str, int] | None:
    """(job_id, seq) of a queue message, None when it is not one of ours (a poison message)."""
    try:
        message = json.loads(body)
        job_id, seq = message["job_id"], message["seq"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(job_id, str) or not job_id or not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return job_id, seq


def delay_redelivery(receipt_handle: str, seconds: float) -> None:
    """Make a failed message visible again after `seconds` (instead of the queue's visibility timeout).
    Best effort: if SQS refuses, the visibility timeout applies."""
    try:
        client("sqs").change_message_visibility(QueueUrl=required(job_settings().queue_url, "EXPORT_QUEUE_URL"),
                                                ReceiptHandle=receipt_handle,
                                                VisibilityTimeout=max(0, min(43_200, int(seconds))))
    except Exception as exc:  # any failure here only means the queue's visibility timeout applies
        logger.warning("could not shorten the redelivery delay", extra={"error": type(exc).__name__})


def emit(detail_type: str, detail: dict[str, Any]) -> None:
    settings = job_settings()
    with aws_errors("EventBridge"):
        reply = client("events").put_events(Entries=[{
            "Source": settings.event_source, "DetailType": detail_type, "EventBusName": settings.event_bus,
            "Detail": json.dumps(detail, separators=(",", ":"), default=str)}])
    if reply.get("FailedEntryCount"):
        codes = [entry.get("ErrorCode") for entry in reply.get("Entries", []) if entry.get("ErrorCode")]
        raise ServiceUnavailableError(f"EventBridge refused the event ({', '.join(map(str, codes)) or 'unknown'})")
