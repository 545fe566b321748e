"""template.yaml keeps the hook secret out of logs: the receiver's path holds it, so the API's access log
must name the route key, never the path (docs/live.md, Security)."""

from __future__ import annotations

from tests.unit.test_template import props


def test_the_access_log_records_route_keys_not_paths():
    fmt = props("HttpApi")["AccessLogSettings"]["Format"]
    assert "$context.routeKey" in fmt
    for leak in ("$context.path", "$context.http.path", "$context.resourcePath", "rawPath"):
        assert leak not in fmt, f"{leak} would write every hook secret into the access log"


def test_the_receiver_is_small_and_quick():
    receiver = props("HooksReceiverFunction")
    assert receiver["Timeout"] <= 10
    variables = receiver["Environment"]["Variables"]
    assert "KMS_KEY_ID" not in variables, "the receiver never needs an AC key"
    assert variables["EVENT_BUS_NAME"] == {"Ref": "EventBusName"}


def test_live_functions_get_exactly_what_they_use():
    from tests.unit.test_template import EVENT_BUS_ARN, KEY, granted, mongo_secret

    mongo = {"secretsmanager:getsecretvalue": [{"Ref": "MongoUriSecretArn"}]}
    expected = {
        "LiveEnableFunction": {**mongo, "kms:decrypt": [KEY]},
        "LiveStatusFunction": {**mongo, "kms:decrypt": [KEY]},
        "LiveDisableFunction": {**mongo, "kms:decrypt": [KEY]},
        # and the reconcile's id sets go with the connection (docs/live.md)
        "DeleteAuthFunction": {**mongo, "kms:decrypt": [KEY],
                               "s3:listbucket": [{"Fn::GetAtt": ["ExportBucket", "Arn"]}],
                               "s3:deleteobject": [{"Fn::Sub": "${ExportBucket.Arn}/reconcile/*"}]},
        "LiveChangesFunction": mongo,
        "HooksReceiverFunction": {"secretsmanager:getsecretvalue": [mongo_secret("HooksReceiverFunction")],
                                  "events:putevents": [EVENT_BUS_ARN]},
    }
    for function, grants in expected.items():
        assert granted(function) == grants, function


def test_the_receiver_may_put_only_this_services_change_events():
    """The one internet-facing function: its PutEvents grant is conditioned on the source and detail type it
    emits (EventBridge's `events:source` / `events:detail-type` condition keys), so it cannot put an export
    request or anything else on the bus."""
    from acexport.live.events import CHANGE
    from acexport.settings import job_settings

    (statement,) = [s for p in props("HooksReceiverFunction")["Policies"] if isinstance(p, dict) and "Statement" in p
                    for s in p["Statement"] if s["Action"] == "events:PutEvents"]
    condition = statement["Condition"]["StringEquals"]
    assert condition == {"events:source": job_settings().event_source, "events:detail-type": CHANGE}
    assert "EVENT_SOURCE" not in props("HooksReceiverFunction")["Environment"]["Variables"]   # the default, then


def test_the_receiver_has_reserved_concurrency_by_parameter():
    """Adversarial review, High: 200 req/s held for the 10 s timeout would hold ~2,000 Lambdas."""
    from tests.unit.test_template import template

    param = template()["Parameters"]["HooksReservedConcurrency"]
    assert param["Default"] == "20" and param["AllowedPattern"] == "^[0-9]{0,5}$"
    assert props("HooksReceiverFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveHooks", {"Ref": "HooksReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    condition = template()["Conditions"]["ReserveHooks"]
    assert condition == {"Fn::Not": [{"Fn::Or": [{"Fn::Equals": [{"Ref": "HooksReservedConcurrency"}, ""]},
                                                  {"Fn::Equals": [{"Ref": "HooksReservedConcurrency"}, "0"]}]}]}
