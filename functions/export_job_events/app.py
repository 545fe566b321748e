"""EventBridge `ActiveCampaign Export Requested` -> start an export job for the account and owner the
event names, as POST .../export/{resource}/jobs does (acexport.jobs.service.start_from_event)."""

from acexport.jobs import service
from acexport.logs import bind, logger
from aws_lambda_powertools.logging import correlation_paths


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    raw = event.get("detail")
    detail: dict = raw if isinstance(raw, dict) else {}
    bind(**{k: detail[k][:200] for k in ("account_id", "owner") if isinstance(detail.get(k), str)})
    job = service.start_from_event(event)
    if job:
        bind(job_id=job["_id"])
    logger.info("export request handled", extra={"started": bool(job)})
    return {"job_id": job["_id"] if job else None}
