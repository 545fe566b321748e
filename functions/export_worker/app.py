"""SQS FIFO export queue -> one step of an export job per message (acexport.jobs.worker).

Batch size 1 (a step uses the whole invocation); a failed message is reported as a batch item failure
and comes back after the delay the worker set, or ends in the DLQ after maxReceiveCount deliveries."""

from acexport import metrics
from acexport.jobs import worker
from acexport.logs import logger
from acexport.reconcile import step as _reconcile_step  # noqa: F401 - registers the reconcile jobs' step
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

processor = SqsFifoPartialProcessor()
SQS_MESSAGE_ID = "Records[0].messageId"   # BatchSize 1: the correlation id of the step's log lines


def record_handler(record: SQSRecord, lambda_context) -> None:
    worker.on_message(record.body, receipt_handle=record.receipt_handle,
                          receive_count=int(record.attributes.approximate_receive_count or 1),
                          remaining_seconds=lambda_context.get_remaining_time_in_millis() / 1000,
                          worker_id=lambda_context.aws_request_id)


@logger.inject_lambda_context(correlation_id_path=SQS_MESSAGE_ID, log_event=False, clear_state=True)
@metrics.published()
def lambda_handler(event: dict, context) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
