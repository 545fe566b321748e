"""What an error raised in a worker step means for its job: decided by the error's nearest listed base class,
never by the order errors are listed or caught in."""

from __future__ import annotations

import pytest
from acexport.ac.client import UpstreamInvalidError
from acexport.errors import (
    INVALID_CREDENTIALS,
    ApiError,
    BadRequestError,
    PermissionDeniedError,
    ServiceUnavailableError,
    StoredCredentialsRejectedError,
    UpstreamThrottledError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from acexport.jobs import worker
from acexport.jobs.walk import OrderLost
from acexport.jobs.worker import CANNOT_PROCESS, JobFailed, Outcome, Stopped, failure_of, outcome_of
from acexport.settings import ConfigurationError

CASES = [
    (Stopped(), Outcome.STOP),
    (JobFailed("gone"), Outcome.FAIL),
    (StoredCredentialsRejectedError(), Outcome.RECONNECT),           # a 403 ApiError, but its own kind
    (UpstreamUnavailableError(), Outcome.FAIL),                       # a 502 past the job's patience
    (UpstreamTimeoutError(), Outcome.FAIL),
    (UpstreamInvalidError("too large"), Outcome.FAIL),
    (OrderLost("deals"), Outcome.FAIL),
    (PermissionDeniedError(), Outcome.FAIL),                          # the job's own request refused (4xx)
    (BadRequestError("bad filter"), Outcome.FAIL),
    (ConfigurationError("Configuration missing: set EXPORT_BUCKET"), Outcome.RETRY),   # a 503: ours
    (ServiceUnavailableError(), Outcome.RETRY),                       # Mongo, KMS
    (UpstreamThrottledError(3), Outcome.RETRY),                       # a 503 of AC's rate, never waited out here
    (ApiError(), Outcome.RETRY),                                 # our own 500
    (ValueError("12e999"), Outcome.FAIL),                        # the job's data cannot be processed
    (OverflowError(), Outcome.FAIL),
    (RuntimeError("bug"), Outcome.RETRY),
    (KeyboardInterrupt(), Outcome.RETRY),
]


@pytest.mark.parametrize("error, outcome", CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_each_error_has_the_outcome_of_its_kind(error, outcome):
    assert outcome_of(error) is outcome


def test_the_order_of_the_table_does_not_matter(monkeypatch):
    monkeypatch.setattr(worker, "OUTCOMES", dict(reversed(list(worker.OUTCOMES.items()))))
    assert [outcome_of(error) for error, _ in CASES] == [outcome for _, outcome in CASES]


def test_failures_carry_fixed_messages_only():
    assert failure_of(StoredCredentialsRejectedError()).error == {"message": INVALID_CREDENTIALS, "reconnect": 1}
    assert failure_of(PermissionDeniedError()).error == {"message": PermissionDeniedError.message}
    assert "start the export again" in failure_of(OrderLost("deals")).error["message"]
    assert failure_of(ValueError("secret-looking 12e999")).error == {"message": CANNOT_PROCESS}   # never its text
