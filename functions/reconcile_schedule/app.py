"""EventBridge schedule (hourly) -> start the reconcile of the live-enabled connections whose hour it is
(acexport.reconcile.service.scheduled: RECONCILE_INTERVAL_HOURS, tenants spread by a hash)."""

from acexport import metrics
from acexport.logs import logger
from acexport.reconcile import service
from aws_lambda_powertools.logging import correlation_paths


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False, clear_state=True)
@metrics.published()
def lambda_handler(event: dict, context) -> dict:
    result = service.scheduled()
    logger.info("scheduled reconciles started", extra=result)
    return result
