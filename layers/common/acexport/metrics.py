"""CloudWatch metrics (Powertools' EMF provider), one metric set per invocation thread.

Powertools' `Metrics` keeps its metric set on the class: every instance in a process shares it. A Lambda
container runs one invocation at a time, so that is harmless there; the local runtime (devstack) runs several
functions' invocations at once in one process, where one function's flush emptied the set another was about to
publish (`SchemaValidationError: Must contain at least one metric`, a 500 under `make load`) or published the
other function's metrics as its own. So each thread gets its own `EphemeralMetrics` (Powertools' provider
without shared state); in Lambda that is the one handler thread, as before. A metric is added on the
invocation's thread (`add`): one added on a pool thread would not be published with the invocation's.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from acexport import caches

__all__ = ["MetricUnit", "add", "current", "published"]

_local = threading.local()
# An invocation without metrics is normal (a status or delete route; a queue message that runs no step): an
# empty set is not published, and Powertools' warning about it would come on every such call.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def current() -> EphemeralMetrics:
    """This thread's metric set (namespace and service from POWERTOOLS_METRICS_NAMESPACE / _SERVICE_NAME)."""
    provider = getattr(_local, "provider", None)
    if provider is None:
        provider = _local.provider = EphemeralMetrics()
    return provider


def add(name: str, unit: MetricUnit, value: float) -> None:
    current().add_metric(name=name, unit=unit, value=value)


def published(*, cold_start: bool = False) -> Callable[[Callable], Callable]:
    """Decorator of a Lambda handler: the metrics its invocation added are published (printed as EMF) when it
    returns or raises; with `cold_start`, a ColdStart metric on a container's first invocation."""
    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def run(event, context):
            return current().log_metrics(handler, capture_cold_start_metric=cold_start)(event, context)
        return run
    return decorate


@caches.register
def forget() -> None:
    global _local
    _local = threading.local()
