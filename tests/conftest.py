"""Shared fixtures: fake AWS credentials for every test, a tiny Lambda context."""

import os
import uuid

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "activecampaign-integration")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ActiveCampaignIntegration")


class LambdaContext:
    function_name = "test"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    log_group_name = "/aws/lambda/test"
    log_stream_name = "test"

    def __init__(self, remaining_ms: int = 29_000):
        self.aws_request_id = str(uuid.uuid4())
        self._remaining = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining


@pytest.fixture
def lambda_context():
    return LambdaContext()


@pytest.fixture
def clock():
    """A clock that moves only when something sleeps on it (tests.fakes.FakeClock)."""
    from tests.fakes import FakeClock

    return FakeClock()
