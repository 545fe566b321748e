"""EventBridge `ActiveCampaign Export Requested` -> start an export job for the account and owner the
event names, as POST .../export/{resource}/jobs does (acexport.jobs.service.start_from_event)."""

from acexport.jobs import service
from aws_lambda_powertools import Logger

logger = Logger()


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    job = service.start_from_event(event)
    return {"job_id": job["_id"] if job else None}
