"""One structured log for the whole service: the Powertools Logger of every function, and the layer's
modules wired into it.

Layer modules keep the standard `logging.getLogger(__name__)` (names under `acexport.`); importing this
module gives the `acexport` logger the Powertools handler, JSON formatter and level
(`copy_config_to_registered_loggers`), and stops it propagating to the root logger. So in Lambda, where the
runtime's root logger stays at WARNING, the layer's INFO lines ("export job succeeded", "ac retry") reach
CloudWatch as JSON with their `extra=` fields; locally (devstack runs the handlers in-process) the worker,
EventBridge and dead-letter functions print the same lines. The level is POWERTOOLS_LOG_LEVEL (the
template's LogLevel parameter, per environment in samconfig.toml); Lambda's own log-level control, when
set, wins (Powertools' rule).
https://docs.powertools.aws.dev/lambda/python/latest/core/logger/#reusing-logger-across-your-code

Every line carries the keys of the work in hand: `correlation_id` (the API request id, the SQS message id
or the EventBridge event id; set by the handlers' `inject_lambda_context`), and through `bind()` the job
id and the tenant (`account_id`, `owner`, `agency_account_id` for a sub-account). Never a key, a token or a
secret: `bind()` takes only those names. Bound keys are per thread (`thread_safe_append_keys`): Lambda runs
one invocation per container, while the local stack runs concurrent invocations in threads of one process.
Each invocation starts clean (`clear_state=True` in the handlers' decorators clears them).

The keys Powertools itself sets per invocation (`function_name`, `function_request_id`, `cold_start`,
`correlation_id`: `inject_lambda_context`) live in the formatter, one dict per process: right in Lambda, wrong
locally, where a status request's keys landed on the lines of a worker running at the same time.
`InvocationFormatter` keeps that dict per invocation context (a ContextVar). The layer's thread pools are
`ContextPool`s: each task runs in a copy of the submitting invocation's context, so a page read ahead on a pool
thread logs with its own function's keys and bound ids; a thread started any other way reads the latest
invocation's keys, which in Lambda is the one running.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, copy_context
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

PACKAGE = "acexport"
BINDABLE = frozenset({"job_id", "account_id", "owner", "agency_account_id", "resource"})



class InvocationFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with its keys (`log_format`) per invocation context instead of per process."""

    def __init__(self, **options: Any) -> None:
        self._keys: ContextVar[dict[str, Any]] = ContextVar(f"log_keys_{id(self)}")
        self._latest: dict[str, Any] = {}
        super().__init__(**options)

    @property
    def log_format(self) -> dict[str, Any]:
        try:
            return self._keys.get()
        except LookupError:   # no invocation started this thread: the latest one's keys
            return self._latest

    @log_format.setter
    def log_format(self, value: dict[str, Any]) -> None:
        self._keys.set(value)
        self._latest = value


class ContextPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context: the invocation's log keys (function
    name, correlation id) and bound ids (job, tenant) follow the work onto the pool's threads."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return super().submit(copy_context().run, fn, *args, **kwargs)


logger = Logger(logger_formatter=InvocationFormatter())   # every function's Logger() is this same one

logging.getLogger(PACKAGE)   # registered, so the copy below finds it (module loggers are its children)
copy_config_to_registered_loggers(source_logger=logger, include={PACKAGE})


def bind(**keys: str | None) -> None:
    """Add these keys to every line this thread logs until the invocation ends (None values: left out)."""
    unknown = set(keys) - BINDABLE
    if unknown:   # a guard against logging something that is not an identifier (a key, a token)
        raise ValueError(f"not a log key: {', '.join(sorted(unknown))}")
    logger.thread_safe_append_keys(**{k: v for k, v in keys.items() if v is not None})


def bind_tenant(tenant) -> None:
    """The caller's tenant (an acexport.tenancy.Tenant): account, owner and the agency of a sub-account."""
    bind(account_id=tenant.account_id, owner=tenant.owner, agency_account_id=getattr(tenant, "agency_account_id", None))
