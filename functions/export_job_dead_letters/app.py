"""SQS export DLQ -> fail the job of a message the worker kept failing on, with the reason
(acexport.jobs.worker.on_dead_letter)."""

from acexport import metrics
from acexport.jobs import worker
from acexport.logs import logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
SQS_MESSAGE_ID = "Records[0].messageId"   # BatchSize 1


def record_handler(record: SQSRecord) -> None:
    worker.on_dead_letter(record.body)


@logger.inject_lambda_context(correlation_id_path=SQS_MESSAGE_ID, log_event=False, clear_state=True)
@metrics.published()
def lambda_handler(event: dict, context) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
