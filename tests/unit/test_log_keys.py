"""Each invocation's log lines carry its own Powertools keys (function name, request id, correlation id), also
when several functions run at once in one process, as the local stack runs them (acexport.logs)."""

from __future__ import annotations

import io
import json
import threading

from acexport.logs import logger

from tests.conftest import LambdaContext


class Context(LambdaContext):
    def __init__(self, name: str):
        super().__init__()
        self.function_name = name


def test_concurrent_invocations_keep_their_own_keys():
    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)
    first_logged, second_done = threading.Event(), threading.Event()

    @logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
    def worker(event, context):
        logger.info("worker before")
        first_logged.set()
        second_done.wait(5)        # the status request starts and ends while the worker runs
        logger.info("worker after")

    @logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
    def status(event, context):
        logger.info("status")

    try:
        thread = threading.Thread(target=worker, args=({"id": "sqs-message-1"}, Context("ExportWorkerFunction")))
        thread.start()
        first_logged.wait(5)
        other = threading.Thread(target=status, args=({"id": "api-request-2"}, Context("ExportJobStatusFunction")))
        other.start()
        other.join(5)
        second_done.set()
        thread.join(5)
    finally:
        handler.setStream(previous)
    lines = {line["message"]: line for line in map(json.loads, buffer.getvalue().splitlines())}
    assert lines["worker after"]["function_name"] == "ExportWorkerFunction"
    assert lines["worker after"]["correlation_id"] == "sqs-message-1"
    assert lines["status"]["function_name"] == "ExportJobStatusFunction"
    assert lines["status"]["correlation_id"] == "api-request-2"


def test_a_pool_thread_logs_with_the_keys_of_the_invocation_that_gave_it_work():
    """The walk reads pages ahead on pool threads: their lines name the worker, not the function that ran last."""
    from acexport.logs import ContextPool

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)

    @logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
    def other(event, context):
        logger.info("status")

    @logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
    def worker(event, context):
        with ContextPool(max_workers=1) as pool:
            pool.submit(lambda: None).result()            # the pool's thread exists before the other invocation
            thread = threading.Thread(target=other, args=({"id": "api-request-2"}, Context("ExportJobStatusFunction")))
            thread.start()
            thread.join(5)                                # the latest invocation is now the status request
            pool.submit(logger.info, "page read ahead").result()

    try:
        worker({"id": "sqs-message-1"}, Context("ExportWorkerFunction"))
    finally:
        handler.setStream(previous)
    lines = {line["message"]: line for line in map(json.loads, buffer.getvalue().splitlines())}
    assert lines["page read ahead"]["function_name"] == "ExportWorkerFunction"
    assert lines["page read ahead"]["correlation_id"] == "sqs-message-1"
