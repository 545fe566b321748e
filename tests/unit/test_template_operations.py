"""template.yaml's operations side (the operations round): alarms on the DLQ, the API's 5xx rate, job failures and AC
throttling, sent to an optional SNS topic; HttpApi default route throttling; reserved concurrency of the
worker and POST /auth; optional VPC placement; the log level per environment. cfn-lint checks the syntax
(test_template.py); these check that the pieces are wired to what the code really publishes and to a
runbook entry for each alarm."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_template import ROOT, WORKER, env, props, resources, samconfig, template

LAYER = ROOT / "layers" / "common" / "acexport"
RUNBOOK = ROOT / "docs" / "runbook.md"
TO_TOPIC = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
ALARMS = {  # logical id -> runbook anchor
    "ExportDeadLetterAlarm": "export-dead-letters",
    "Api5xxAlarm": "api-5xx",
    "JobFailureAlarm": "export-job-failures",
    "AcThrottlingAlarm": "ac-throttling",
}


def _slugs(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, flags=re.M)}


def _published(metric: str) -> bool:
    """Some layer module publishes this metric name (acexport.metrics.add)."""
    return any(re.search(rf'metrics\.add\("{metric}",', path.read_text()) for path in LAYER.rglob("*.py"))


def test_alarm_parameters_and_conditions():
    params = template()["Parameters"]
    pattern = params["AlarmTopicArn"]["AllowedPattern"]
    assert params["AlarmTopicArn"]["Default"] == ""
    assert re.match(pattern, "") and re.match(pattern, "arn:aws:sns:us-east-1:123456789012:oncall")
    assert not re.match(pattern, "oncall@example.com")
    conditions = template()["Conditions"]
    assert conditions["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    for name in ("JobFailureAlarmThreshold", "AcThrottleAlarmThreshold", "Api5xxAlarmPercent"):
        assert params[name]["Type"] == "Number" and params[name]["Default"] >= 1


@pytest.mark.parametrize("logical_id", sorted(ALARMS))
def test_every_alarm_notifies_the_topic_and_points_at_its_runbook_entry(logical_id):
    alarm = props(logical_id)
    assert resources()[logical_id]["Type"] == "AWS::CloudWatch::Alarm"
    assert alarm["AlarmActions"] == TO_TOPIC and alarm["OKActions"] == TO_TOPIC
    assert alarm["TreatMissingData"] == "notBreaching"       # quiet hours are not an alarm
    anchor = ALARMS[logical_id]
    assert f"docs/runbook.md#{anchor}" in alarm["AlarmDescription"]
    assert anchor in _slugs(RUNBOOK.read_text()), f"docs/runbook.md has no section for #{anchor}"


def _stats(alarm: dict) -> dict[str, dict]:
    return {q["Id"]: q["MetricStat"] for q in alarm["Metrics"] if "MetricStat" in q}


def test_dead_letter_alarm_watches_the_export_dlq():
    alarm = props("ExportDeadLetterAlarm")
    stats = _stats(alarm)
    dlq = [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ExportJobDeadLetterQueue", "QueueName"]}}]
    assert stats["waiting"]["Metric"] == {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
                                          "Dimensions": dlq}
    assert stats["received"]["Metric"]["MetricName"] == "NumberOfMessagesReceived"
    assert stats["received"]["Metric"]["Dimensions"] == dlq
    (result,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    assert {"waiting", "received"} <= set(re.findall(r"[a-z]+", result["Expression"]))
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)


def test_api_5xx_alarm_is_a_rate_of_this_api():
    alarm = props("Api5xxAlarm")
    stats = _stats(alarm)
    this_api = [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]
    assert stats["errors"]["Metric"] == {"Namespace": "AWS/ApiGateway", "MetricName": "5xx", "Dimensions": this_api}
    assert stats["requests"]["Metric"] == {"Namespace": "AWS/ApiGateway", "MetricName": "Count",
                                           "Dimensions": this_api}
    (result,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    assert "100 * FILL(errors, 0) / requests" in result["Expression"]
    assert alarm["Threshold"] == {"Ref": "Api5xxAlarmPercent"}


@pytest.mark.parametrize(("logical_id", "metric"), [("JobFailureAlarm", "JobFailed"),
                                                    ("AcThrottlingAlarm", "ACThrottled")])
def test_custom_metric_alarms_watch_what_the_code_publishes(logical_id, metric):
    alarm = props(logical_id)
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["MetricName"] == metric and _published(metric)
    assert alarm["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]
    # Powertools Metrics adds the service name as the `service` dimension of every metric.
    assert alarm["Dimensions"] == [{"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}]
    assert alarm["Statistic"] == "Sum"


def test_job_metrics_are_published():
    for metric in ("ExportedRecords", "JobStepSeconds", "ACCalls", "ACThrottled", "JobSucceeded", "JobFailed"):
        assert _published(metric), metric


def test_http_api_default_route_throttling():
    assert props("HttpApi")["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"}}
    params = template()["Parameters"]
    assert params["ApiThrottlingBurstLimit"]["Default"] >= params["ApiThrottlingRateLimit"]["Default"] >= 1


def test_worker_and_save_have_reserved_concurrency_and_the_queue_never_overfeeds_the_worker():
    assert props(WORKER)["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveWorker", {"Ref": "WorkerReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert props("SaveAuthFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveSaveAuth", {"Ref": "SaveAuthReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    (event,) = props(WORKER)["Events"].values()
    assert event["Properties"]["ScalingConfig"] == {
        "Fn::If": ["ReserveWorker", {"MaximumConcurrency": {"Ref": "WorkerReservedConcurrency"}},
                   {"Ref": "AWS::NoValue"}]}
    params = template()["Parameters"]
    assert params["WorkerReservedConcurrency"]["Default"] >= 2        # SQS event sources run at least 2
    assert params["SaveAuthReservedConcurrency"]["MinValue"] == 0


def test_vpc_placement_is_optional():
    params = template()["Parameters"]
    for name in ("SubnetIds", "SecurityGroupIds"):
        assert params[name] == {**params[name], "Type": "CommaDelimitedList", "Default": ""}
    assert template()["Conditions"]["InVpc"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "SubnetIds"}]}, ""]}]}
    assert template()["Globals"]["Function"]["VpcConfig"] == {"Fn::If": [
        "InVpc", {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}},
        {"Ref": "AWS::NoValue"}]}


@pytest.mark.parametrize(("stage", "level"), [("dev", "DEBUG"), ("prod", "INFO")])
def test_log_level_per_environment(stage, level):
    assert env(WORKER)["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    overrides = dict(item.split("=", 1) for item in samconfig()[stage]["deploy"]["parameters"]["parameter_overrides"])
    assert overrides["LogLevel"] == level


def test_the_deploy_guide_and_runbook_exist_and_name_the_commands():
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for needle in ("aws secretsmanager create-secret", "sam deploy --guided", "python -m acexport.setup_db",
                   "python -m acexport.migrate_keys", "make smoke", "SubnetIds", "AlarmTopicArn"):
        assert needle in deploy, needle
    assert Path(RUNBOOK).exists()
