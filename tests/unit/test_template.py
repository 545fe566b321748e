"""template.yaml, samconfig.toml and events/ hold to the contract of docs/architecture.md.

The template is read as SAM source (cfn-lint 1.x validates SAM resources without running the SAM
transform), so SAM policy templates are checked by name and mapped to the IAM actions they grant. What runs a
tool (cfn-lint, the layer's build) is in tests/integration/test_template_tools.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
EVENTS = ROOT / "events"

BASE = "/v1/integrations/activecampaign"
AUTHORIZER = "AuthorizerFunction"
ROUTES = {  # logical id -> (directory under functions/ and events/, route key)
    "SaveAuthFunction": ("save_auth", f"POST {BASE}/auth"),
    "DeleteAuthFunction": ("delete_auth", f"DELETE {BASE}/auth"),
    "AuthStatusFunction": ("auth_status", f"GET {BASE}/auth"),
    "ExportContactsFunction": ("export_contacts", f"GET {BASE}/export/contacts"),
    "ExportDealsFunction": ("export_deals", f"GET {BASE}/export/deals"),
    "ExportAccountsFunction": ("export_accounts", f"GET {BASE}/export/accounts"),
    "ExportJobStartFunction": ("export_job_start", f"POST {BASE}/export/{{resource}}/jobs"),
    "ExportJobStatusFunction": ("export_job_status", f"GET {BASE}/export/jobs/{{job_id}}"),
    "ExportJobListFunction": ("export_job_list", f"GET {BASE}/export/jobs"),
    "ExportJobCancelFunction": ("export_job_cancel", f"DELETE {BASE}/export/jobs/{{job_id}}"),
    "LiveEnableFunction": ("live_enable", f"PUT {BASE}/live"),
    "LiveStatusFunction": ("live_status", f"GET {BASE}/live"),
    "LiveDisableFunction": ("live_disable", f"DELETE {BASE}/live"),
    "LiveChangesFunction": ("live_changes", f"GET {BASE}/changes"),
    "HooksReceiverFunction": ("hooks_receiver", f"POST {BASE}/hooks/{{secret}}"),
    "ChangesReconcileFunction": ("changes_reconcile", f"POST {BASE}/changes/reconcile"),
}
# The one route without the JWT authorizer: AC posts webhook deliveries and cannot send a token (the live-changes work);
# the path secret is the credential, and the route has its own throttling.
RECEIVER = "HooksReceiverFunction"
LIVE_AC = {"LiveEnableFunction", "LiveStatusFunction", "LiveDisableFunction"}
WORKER = "ExportWorkerFunction"
EVENT_FUNCTIONS = {  # functions without a route: logical id -> directory
    WORKER: "export_worker",
    "ExportJobEventsFunction": "export_job_events",
    "ExportJobDeadLettersFunction": "export_job_dead_letters",
    "SetupDbFunction": "setup_db",   # the MongoDB indexes: custom resource MongoIndexes, or sam remote invoke
    "ReconcileScheduleFunction": "reconcile_schedule",
}
DIRS = {AUTHORIZER: "authorizer", **{fn: d for fn, (d, _) in ROUTES.items()}, **EVENT_FUNCTIONS}
EXPORTS = {"ExportContactsFunction", "ExportDealsFunction", "ExportAccountsFunction"}
KMS_DECRYPT = EXPORTS | {WORKER} | LIVE_AC | {"DeleteAuthFunction"}  # whatever calls AC with a stored key
# (DELETE /auth removes the connection's live webhooks at AC before forgetting the key: the live-changes work)
MONGO_FUNCTIONS = set(ROUTES)
QUEUE_ARN = {"Fn::GetAtt": ["ExportJobQueue", "Arn"]}
DLQ_ARN = {"Fn::GetAtt": ["ExportJobDeadLetterQueue", "Arn"]}
EXPORT_FILES = {"Fn::Sub": "${ExportBucket.Arn}/exports/*"}
ID_SETS = {"Fn::Sub": "${ExportBucket.Arn}/reconcile/*"}      # the reconcile's id sets (docs/live.md)
EVENT_BUS_ARN = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"}
SECRET = "secretsmanager:getsecretvalue"

# SAM policy templates this template may use, and the IAM actions each expands to
# (aws/serverless-application-model samtranslator/policy_templates_data/policy_templates.json).
POLICY_TEMPLATE_ACTIONS = {
    "AWSSecretsManagerGetSecretValuePolicy": {"secretsmanager:getsecretvalue"},
    "KMSEncryptPolicy": {"kms:encrypt"},
    "KMSDecryptPolicy": {"kms:decrypt"},
}
KEY = {"Ref": "ApiKeyEncryptionKey"}
KEY_ARN = {"Fn::GetAtt": ["ApiKeyEncryptionKey", "Arn"]}


# ----------------------------------------------------------------------------- loading


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short tags as their long form: `!Ref X` -> {"Ref": "X"},
    `!GetAtt A.B` -> {"Fn::GetAtt": ["A", "B"]}, `!Sub s` -> {"Fn::Sub": s}, and so on."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    key = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # CfnLoader is a SafeLoader


def resources(type_: str | None = None) -> dict[str, dict[str, Any]]:
    res = template()["Resources"]
    return {k: v for k, v in res.items() if type_ is None or v["Type"] == type_}


def props(logical_id: str) -> dict[str, Any]:
    return template()["Resources"][logical_id].get("Properties", {})


def effective(logical_id: str) -> dict[str, Any]:
    """A function's properties with Globals.Function merged in (maps merged, local values win)."""
    merged = dict(template().get("Globals", {}).get("Function", {}))
    for key, value in props(logical_id).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key == "Environment":
            merged[key] = {"Variables": {**merged[key].get("Variables", {}), **value.get("Variables", {})}}
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + value
        else:
            merged[key] = value
    return merged


def env(logical_id: str) -> dict[str, Any]:
    return effective(logical_id).get("Environment", {}).get("Variables", {})


def http_routes(logical_id: str) -> list[str]:
    events = props(logical_id).get("Events", {}) or {}
    return [
        f"{e['Properties']['Method'].upper()} {e['Properties']['Path']}"
        for e in events.values()
        if e["Type"] == "HttpApi"
    ]


def load_event(directory: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{directory}.json").read_text())


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def mongo_secret(logical_id: str) -> Any:
    """The Mongo URI secret a function reads: the receiver may have its own, least-privilege database user
    (HooksMongoUriSecretArn, docs/deploy.md); every other function reads MongoUriSecretArn."""
    if logical_id == "HooksReceiverFunction":
        return {"Fn::If": ["HooksOwnMongoUser", {"Ref": "HooksMongoUriSecretArn"}, {"Ref": "MongoUriSecretArn"}]}
    return {"Ref": "MongoUriSecretArn"}


def granted(logical_id: str) -> dict[str, list[Any]]:
    """IAM actions (lower case) a function's Policies grant -> the resources they are granted on."""
    out: dict[str, list[Any]] = {}
    for policy in as_list(props(logical_id).get("Policies", [])):
        if isinstance(policy, dict) and "Statement" in policy:
            for stmt in as_list(policy["Statement"]):
                assert stmt.get("Effect") == "Allow", stmt
                for action in as_list(stmt["Action"]):
                    out.setdefault(action.lower(), []).extend(as_list(stmt["Resource"]))
            continue
        assert isinstance(policy, dict) and len(policy) == 1, f"{logical_id}: unreviewed policy {policy!r}"
        ((name, args),) = policy.items()
        assert name in POLICY_TEMPLATE_ACTIONS, f"{logical_id}: unreviewed policy template {name}"
        target = args.get("SecretArn", args.get("KeyId"))
        for action in POLICY_TEMPLATE_ACTIONS[name]:
            out.setdefault(action, []).append(target)
    return out


def statements() -> list[tuple[str, dict[str, Any]]]:
    """Every policy statement in the template: function policies, IAM resources, resource policies."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, res in resources().items():
        p = res.get("Properties", {})
        docs = [x for x in as_list(p.get("Policies", [])) if isinstance(x, dict) and "Statement" in x]
        docs += [x.get("PolicyDocument", {}) for x in as_list(p.get("Policies", [])) if isinstance(x, dict)]
        docs += [p[k] for k in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument") if k in p]
        for doc in docs:
            found += [(logical_id, s) for s in as_list(doc.get("Statement", []))]
    return found


# ----------------------------------------------------------------------------- lint


def test_no_blanket_lint_exceptions() -> None:
    assert "cfn-lint" not in template().get("Metadata", {}), "ignore rules per resource, with a reason"


# ----------------------------------------------------------------------------- functions and routes


def test_the_function_set_is_the_documented_one() -> None:
    assert set(resources("AWS::Serverless::Function")) == set(DIRS)
    assert template()["Transform"] == "AWS::Serverless-2016-10-31"


@pytest.mark.parametrize("logical_id", sorted(DIRS))
def test_code_uri_and_handler(logical_id: str) -> None:
    assert props(logical_id)["CodeUri"] == f"functions/{DIRS[logical_id]}/"
    assert effective(logical_id)["Handler"] == "app.lambda_handler"


@pytest.mark.parametrize("logical_id", sorted(ROUTES))
def test_each_route_function_serves_exactly_its_route(logical_id: str) -> None:
    assert http_routes(logical_id) == [ROUTES[logical_id][1]]
    for event in props(logical_id)["Events"].values():
        assert event["Properties"]["ApiId"] == {"Ref": "HttpApi"}
        if logical_id == RECEIVER:
            assert event["Properties"]["Auth"] == {"Authorizer": "NONE"}
            throttle = event["Properties"]["RouteSettings"]
            assert throttle["ThrottlingRateLimit"] == {"Ref": "HooksThrottlingRateLimit"}
            assert throttle["ThrottlingBurstLimit"] == {"Ref": "HooksThrottlingBurstLimit"}
        else:
            assert "Auth" not in event["Properties"], "no route but the receiver may opt out of the authorizer"


def test_every_route_is_served_once_and_the_authorizer_has_no_route() -> None:
    served = [route for fn in resources("AWS::Serverless::Function") for route in http_routes(fn)]
    assert sorted(served) == sorted(route for _, route in ROUTES.values())
    assert not props(AUTHORIZER).get("Events")


@pytest.mark.parametrize("logical_id", sorted(DIRS))
def test_runtime_architecture_tracing_and_layer(logical_id: str) -> None:
    fn = effective(logical_id)
    assert fn["Runtime"] == "python3.13"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Tracing"] == "Active"
    assert {"Ref": "CommonLayer"} in fn["Layers"]


def test_timeouts_fit_api_gateway_and_exports_get_more_memory() -> None:
    for logical_id in ROUTES:
        assert 0 < effective(logical_id)["Timeout"] < 30  # HTTP API waits 30 s at most
    assert effective(AUTHORIZER)["Timeout"] <= 10
    for logical_id in EXPORTS:
        assert effective(logical_id)["MemorySize"] >= 512


def test_layer_is_built_by_sam_for_python313_arm64() -> None:
    layer = resources()["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    p = layer["Properties"]
    assert p["ContentUri"] == "layers/common/"
    assert p["CompatibleRuntimes"] == ["python3.13"]
    assert p["CompatibleArchitectures"] == ["arm64"]
    assert p["RetentionPolicy"] == "Delete"
    assert layer["Metadata"]["BuildMethod"] == "makefile"      # layers/common/Makefile: bytecode in the layer
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert (ROOT / "layers/common/requirements.txt").is_file()


# ----------------------------------------------------------------------------- API and authorizer


def test_http_api_uses_the_lambda_authorizer_by_default() -> None:
    api = props("HttpApi")
    assert resources()["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert api["FailOnWarnings"] is True
    auth = api["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": [AUTHORIZER, "Arn"]}
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["EnableSimpleResponses"] is True
    assert authorizer["EnableFunctionDefaultPermissions"] is True
    assert authorizer["Identity"]["Headers"] == ["Authorization"]
    assert authorizer["Identity"]["ReauthorizeEvery"] == {"Ref": "AuthorizerCacheSeconds"}


def test_api_stage_is_default_so_paths_carry_no_stage_prefix() -> None:
    assert "StageName" not in props("HttpApi")
    url = template()["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    assert url.endswith(".execute-api.${AWS::Region}.${AWS::URLSuffix}/"), "no stage segment in the URL"


def test_parameters() -> None:
    params = template()["Parameters"]
    assert params["Stage"]["AllowedValues"] == ["dev", "prod"]
    for name in ("MongoUriSecretArn", "JwtSecretArn"):
        pattern = re.compile(params[name]["AllowedPattern"])
        assert pattern.match("arn:aws:secretsmanager:eu-west-1:123456789012:secret:activecampaign/x-AbCdEf")
        assert not pattern.match("activecampaign/x")
        assert not pattern.match("arn:aws:ssm:eu-west-1:123456789012:parameter/x")
    cache_seconds = params["AuthorizerCacheSeconds"]
    assert [cache_seconds[k] for k in ("Type", "MinValue", "MaxValue")] == ["Number", 0, 3600]
    assert params["LogRetentionDays"]["Default"] in params["LogRetentionDays"]["AllowedValues"]
    defaults = {
        "LogLevel": "INFO",
        "ApiVersion": "/api/3",
        "MongoDatabase": "platform",
        "CredentialsCollection": "integrations-activecampaign-keys",
        "AccountsCollection": "accounts",
        "AccountsIdField": "_id",
        "AccountsParentField": "parent_account",
    }
    assert {name: params[name]["Default"] for name in defaults} == defaults


# ----------------------------------------------------------------------------- environment


def test_global_environment_holds_no_secret_or_key() -> None:
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "activecampaign-integration"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "ActiveCampaignIntegration"
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert variables["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
    assert variables["ACTIVECAMPAIGN_API_VERSION"] == {"Ref": "ApiVersion"}
    secrets_and_keys = {"MONGODB_URI_SECRET_ARN", "JWT_SECRET_ARN", "KMS_KEY_ID", "MONGODB_URI", "JWT_SECRET"}
    assert not secrets_and_keys & set(variables)


def test_authorizer_environment_has_only_the_jwt_secret() -> None:
    variables = env(AUTHORIZER)
    assert variables["JWT_SECRET_ARN"] == {"Ref": "JwtSecretArn"}
    assert "MONGODB_URI_SECRET_ARN" not in variables
    assert "KMS_KEY_ID" not in variables


@pytest.mark.parametrize("logical_id", sorted(MONGO_FUNCTIONS))
def test_route_function_environment(logical_id: str) -> None:
    variables = env(logical_id)
    assert variables["MONGODB_URI_SECRET_ARN"] == mongo_secret(logical_id)
    assert variables["MONGODB_DATABASE"] == {"Ref": "MongoDatabase"}
    assert variables["CREDENTIALS_COLLECTION"] == {"Ref": "CredentialsCollection"}
    assert variables["ACCOUNTS_COLLECTION"] == {"Ref": "AccountsCollection"}
    assert variables["ACCOUNTS_ID_FIELD"] == {"Ref": "AccountsIdField"}
    assert variables["ACCOUNTS_PARENT_FIELD"] == {"Ref": "AccountsParentField"}
    assert "JWT_SECRET_ARN" not in variables
    needs_kms = logical_id == "SaveAuthFunction" or logical_id in KMS_DECRYPT
    assert ("KMS_KEY_ID" in variables) is needs_kms
    if needs_kms:
        assert variables["KMS_KEY_ID"] in (KEY, KEY_ARN)


# ----------------------------------------------------------------------------- IAM least privilege


def test_no_wildcard_action_or_resource_outside_the_key_policy() -> None:
    found = statements()
    assert found, "no policy statement found at all"
    for logical_id, stmt in found:
        actions = [a.lower() for a in as_list(stmt.get("Action", []))]
        if logical_id == "ExportBucketPolicy" and stmt["Effect"] == "Deny" and actions == ["s3:*"]:
            # Deny-only TLS guard: it grants nothing, and must cover every S3 action.
            assert stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            continue
        is_key_policy = logical_id == "ApiKeyEncryptionKey"
        if is_key_policy and actions == ["kms:*"]:
            # KMS's default key policy: the account root administers the key; IAM policies grant its use.
            root = "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
            assert stmt["Principal"] == {"AWS": {"Fn::Sub": root}}
            assert stmt["Resource"] == "*"
            continue
        assert not any(a == "*" or a.endswith(":*") for a in actions), (logical_id, stmt)
        assert "NotAction" not in stmt and "NotResource" not in stmt, (logical_id, stmt)
        assert "*" not in as_list(stmt.get("Resource", [])), (logical_id, stmt)


def test_policies_use_only_reviewed_templates_and_no_managed_policies() -> None:
    for logical_id in DIRS:
        granted(logical_id)  # asserts on anything it does not know
        assert "Role" not in props(logical_id), "a shared role would defeat per-function policies"


@pytest.mark.parametrize("logical_id", sorted(DIRS))
def test_each_function_reads_only_its_own_secret(logical_id: str) -> None:
    expected = {"Ref": "JwtSecretArn"} if logical_id == AUTHORIZER else mongo_secret(logical_id)
    secret_actions = {a: r for a, r in granted(logical_id).items() if a.startswith("secretsmanager:")}
    assert secret_actions == {"secretsmanager:getsecretvalue": [expected]}


@pytest.mark.parametrize("logical_id", sorted(DIRS))
def test_kms_permissions_follow_the_route(logical_id: str) -> None:
    kms = {a: r for a, r in granted(logical_id).items() if a.startswith("kms:")}
    if logical_id == "SaveAuthFunction":
        assert set(kms) == {"kms:encrypt"}
    elif logical_id in KMS_DECRYPT:
        assert set(kms) == {"kms:decrypt"}
    else:
        assert kms == {}, "status, the job routes, the feed, the receiver and the authorizer never touch the key"
    for targets in kms.values():
        assert all(t in (KEY, KEY_ARN) for t in targets), targets


def test_kms_key_rotates_is_retained_and_has_an_alias() -> None:
    key = resources()["ApiKeyEncryptionKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    assert key["UpdateReplacePolicy"] == "Retain"
    (alias,) = resources("AWS::KMS::Alias").values()
    assert alias["Properties"]["AliasName"] == {"Fn::Sub": "alias/${AWS::StackName}-api-keys"}
    assert alias["Properties"]["TargetKeyId"] == KEY


# ----------------------------------------------------------------------------- logs and outputs


@pytest.mark.parametrize("logical_id", sorted(DIRS))
def test_every_function_has_a_log_group_with_retention(logical_id: str) -> None:
    matching = [
        g["Properties"]
        for g in resources("AWS::Logs::LogGroup").values()
        if g["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{logical_id}}}"}
    ]
    assert len(matching) == 1
    assert matching[0]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_no_log_group_keeps_logs_forever() -> None:
    for logical_id, group in resources("AWS::Logs::LogGroup").items():
        assert "RetentionInDays" in group["Properties"], logical_id


def test_outputs() -> None:
    outputs = template()["Outputs"]
    api_url = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"
    assert outputs["ApiUrl"]["Value"] == {"Fn::Sub": api_url}
    assert outputs["ApiKeyEncryptionKeyArn"]["Value"] == KEY_ARN
    assert outputs["CommonLayerArn"]["Value"] == {"Ref": "CommonLayer"}
    for logical_id in DIRS:
        assert outputs[f"{logical_id}Arn"]["Value"] == {"Fn::GetAtt": [logical_id, "Arn"]}


# ----------------------------------------------------------------------------- events/


def _check_request_context(event: dict[str, Any], method: str, route_path: str) -> None:
    ctx = event["requestContext"]
    for key in ("accountId", "apiId", "domainName", "requestId", "time", "timeEpoch"):
        assert ctx[key], key
    assert ctx["routeKey"] == event["routeKey"] == f"{method} {route_path}"
    assert ctx["stage"] == "$default"
    params = event.get("pathParameters") or {}
    assert set(params) == set(re.findall(r"{(\w+)}", route_path)), "one path parameter per {name} of the route"
    path = route_path.format(**params)
    http = ctx["http"]
    assert (http["method"], http["path"]) == (method, path)
    assert {"protocol", "sourceIp", "userAgent"} <= set(http)
    assert event["rawPath"] == path
    assert all(name == name.lower() for name in event["headers"]), "v2 header names are lower case"
    assert event["headers"]["authorization"].startswith("Bearer ")
    query = event.get("queryStringParameters") or {}
    assert query == dict(parse_qsl(event["rawQueryString"], keep_blank_values=True))


def test_one_event_file_per_function_and_nothing_else() -> None:
    assert {p.stem for p in EVENTS.glob("*.json")} == set(DIRS.values())


@pytest.mark.parametrize("logical_id", sorted(ROUTES))
def test_route_event_matches_the_template_route(logical_id: str) -> None:
    directory, route = ROUTES[logical_id]
    event = load_event(directory)
    method, path = route.split(" ", 1)
    assert event["version"] == "2.0"
    assert http_routes(logical_id) == [event["routeKey"]]
    if logical_id == RECEIVER:   # what AC sends: no token, a form body
        assert "authorization" not in event["headers"] and "authorizer" not in event["requestContext"]
        assert event["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert dict(parse_qsl(event["body"]))["type"] == "update"
        return
    _check_request_context(event, method, path)
    caller = event["requestContext"]["authorizer"]["lambda"]
    assert (caller["uid"], caller["account_id"]) == ("dev-user", "dev-account")   # the seeded dev tenant
    assert all(isinstance(v, str) for v in caller.values())
    assert event["isBase64Encoded"] is False
    if method == "POST":
        assert event["headers"]["content-type"] == "application/json"
        body = json.loads(event["body"])
        if logical_id == "SaveAuthFunction":
            assert body == {"api_key": "sandbox-key", "base_url": "http://127.0.0.1:8010"}   # make dev's AC sandbox
        elif logical_id == "ChangesReconcileFunction":
            assert body == {}                                   # a reconcile takes no options
        else:
            assert body == {"format": "csv", "filters": {"firstName": "John"}}
    else:
        assert "body" not in event


def test_export_events_carry_the_documented_queries() -> None:
    assert load_event("export_contacts")["queryStringParameters"] == {
        "page": "1",
        "limit": "20",
        "orders[email]": "ASC",
        "filters[firstName]": "John",
    }
    assert load_event("export_deals")["rawQueryString"] == "page=1&limit=20"
    assert load_event("export_accounts")["queryStringParameters"] == {
        "filters[name]": "Acme Corporation",
        "orders[name]": "DESC",
    }


def test_authorizer_event_is_a_v2_request_for_a_template_route() -> None:
    event = load_event("authorizer")
    assert (event["version"], event["type"]) == ("2.0", "REQUEST")
    assert event["routeKey"] in {route for _, route in ROUTES.values()}
    method, path = event["routeKey"].split(" ", 1)
    _check_request_context(event, method, path)
    assert event["identitySource"] == [event["headers"]["authorization"]]
    assert event["routeArn"].startswith("arn:aws:execute-api:")
    assert event["routeArn"].endswith(f"/$default/{method}{path}")
    assert "authorizer" not in event["requestContext"]


# ----------------------------------------------------------------------------- samconfig.toml


@cache
def samconfig() -> dict[str, Any]:
    return tomllib.loads(SAMCONFIG.read_text())


def test_samconfig_defaults() -> None:
    config = samconfig()
    assert config["version"] == 0.1
    assert config["default"]["global"]["parameters"]["stack_name"]
    assert config["default"]["validate"]["parameters"]["lint"] is True


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_samconfig_environment(stage: str) -> None:
    config = samconfig()[stage]
    build = config["build"]["parameters"]
    assert build["cached"] is True and build["parallel"] is True
    deploy = config["deploy"]["parameters"]
    assert stage in deploy["stack_name"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is (stage == "prod")
    overrides = dict(item.split("=", 1) for item in as_list(deploy["parameter_overrides"]))
    assert overrides["Stage"] == stage
    params = template()["Parameters"]
    assert set(overrides) <= set(params)
    for name in ("MongoUriSecretArn", "JwtSecretArn"):
        assert re.match(params[name]["AllowedPattern"], overrides[name]), name
        assert f"/{stage}/" in overrides[name]


# ----------------------------------------------------------------------------- full exports (jobs)


def test_job_parameters() -> None:
    params = template()["Parameters"]
    assert params["JobsCollection"]["Default"] == "integrations-activecampaign-export-jobs"
    # the second security round: the service's own bus, never the account's default bus
    assert params["EventBusName"]["Default"] == "activecampaign-integration"
    assert not re.match(params["EventBusName"]["AllowedPattern"], "default")
    assert params["ExportFileDays"]["Type"] == "Number" and params["ExportFileDays"]["Default"] >= 1
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["JOBS_COLLECTION"] == {"Ref": "JobsCollection"}
    assert variables["EXPORT_FILE_DAYS"] == {"Ref": "ExportFileDays"}


def test_job_queue_is_fifo_with_a_dead_letter_queue() -> None:
    queue, dlq = props("ExportJobQueue"), props("ExportJobDeadLetterQueue")
    assert queue["FifoQueue"] is True and dlq["FifoQueue"] is True    # a FIFO queue's DLQ must be FIFO
    assert queue["QueueName"]["Fn::Sub"].endswith(".fifo") and dlq["QueueName"]["Fn::Sub"].endswith(".fifo")
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5}
    assert queue["VisibilityTimeout"] >= 6 * effective(WORKER)["Timeout"]   # AWS's advice for SQS event sources
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_worker_reads_the_queue_one_message_at_a_time_and_reports_partial_failures() -> None:
    worker = effective(WORKER)
    assert 60 <= worker["Timeout"] <= 900 and worker["MemorySize"] >= 512
    (event,) = props(WORKER)["Events"].values()
    assert event["Type"] == "SQS"
    source = dict(event["Properties"])
    # the operations round: capped at the reserved concurrency (test_template_operations.py)
    source.pop("ScalingConfig")
    assert source == {"Queue": QUEUE_ARN, "BatchSize": 1, "FunctionResponseTypes": ["ReportBatchItemFailures"]}
    (dead,) = props("ExportJobDeadLettersFunction")["Events"].values()
    assert dead["Type"] == "SQS" and dead["Properties"]["Queue"] == DLQ_ARN
    assert dead["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_export_requests_arrive_through_an_eventbridge_rule() -> None:
    (event,) = props("ExportJobEventsFunction")["Events"].values()
    assert event["Type"] == "EventBridgeRule"
    # the second security round: the rule also filters on `source` (ExportRequestSources), on the service's own bus
    assert event["Properties"] == {"EventBusName": {"Ref": "EventBusName"},
                                   "Pattern": {"source": {"Ref": "ExportRequestSources"},
                                               "detail-type": ["ActiveCampaign Export Requested"]}}
    assert template()["Parameters"]["ExportRequestSources"]["Type"] == "CommaDelimitedList"


def test_the_service_bus_denies_every_publisher_it_does_not_name() -> None:
    """The second security round, finding 4: a resource policy on the service's own bus lets only the named publishers
    and the service's own event-emitting functions put events."""
    bus = resources()["ExportEventBus"]
    assert bus["Type"] == "AWS::Events::EventBus" and bus["Properties"]["Name"] == {"Ref": "EventBusName"}
    (stmt,) = bus["Properties"]["Policy"]["Statement"]
    assert stmt["Effect"] == "Deny" and stmt["Principal"] == "*" and stmt["Action"] == "events:PutEvents"
    assert stmt["Resource"] == EVENT_BUS_ARN
    allowed = stmt["Condition"]["StringNotEquals"]["aws:PrincipalArn"]["Fn::Split"][1]["Fn::Join"][1]
    # every function allowed to put events (the job functions, and the webhook receiver: the live-changes work)
    emitting = {fn for fn in DIRS if "events:putevents" in granted(fn)}
    assert RECEIVER in emitting
    assert {"Fn::Join": [",", {"Ref": "EventPublisherArns"}]} in allowed
    assert {item["Fn::GetAtt"][0] for item in allowed if "Fn::GetAtt" in item} == {f"{fn}Role" for fn in emitting}
    assert resources()["ExportJobEventsFunction"]["DependsOn"] == "ExportEventBus"


def test_export_bucket_is_private_encrypted_tls_only_and_expires_files() -> None:
    bucket = props("ExportBucket")
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert all(bucket["PublicAccessBlockConfiguration"][k] is True for k in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (lifecycle,) = bucket["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled" and lifecycle["Prefix"] == "exports/"
    assert lifecycle["ExpirationInDays"] == {"Ref": "ExportFileDays"}
    assert lifecycle["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    policy = props("ExportBucketPolicy")
    assert policy["Bucket"] == {"Ref": "ExportBucket"}
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


JOB_PERMISSIONS = {  # function -> IAM action -> the resources it may act on (nothing else)
    "ExportJobStartFunction": {"sqs:sendmessage": [QUEUE_ARN]},
    "ExportJobStatusFunction": {"s3:getobject": [EXPORT_FILES]},     # the pre-signed download URL
    "ExportJobListFunction": {},
    "ExportJobCancelFunction": {},
    WORKER: {"kms:decrypt": [KEY], "s3:putobject": [EXPORT_FILES, ID_SETS], "s3:abortmultipartupload": [EXPORT_FILES],
             "s3:getobject": [EXPORT_FILES, ID_SETS], "s3:deleteobject": [EXPORT_FILES, ID_SETS],
             "sqs:sendmessage": [QUEUE_ARN],
             "sqs:changemessagevisibility": [QUEUE_ARN], "events:putevents": [EVENT_BUS_ARN]},
    "ExportJobEventsFunction": {"sqs:sendmessage": [QUEUE_ARN], "events:putevents": [EVENT_BUS_ARN]},
    "ExportJobDeadLettersFunction": {"events:putevents": [EVENT_BUS_ARN]},
}


@pytest.mark.parametrize("logical_id", sorted(JOB_PERMISSIONS))
def test_job_functions_get_exactly_what_they_use(logical_id: str) -> None:
    permissions = granted(logical_id)
    assert permissions.pop(SECRET) == [{"Ref": "MongoUriSecretArn"}]
    assert permissions == JOB_PERMISSIONS[logical_id]


@pytest.mark.parametrize("logical_id", sorted(JOB_PERMISSIONS))
def test_job_function_environment(logical_id: str) -> None:
    variables = env(logical_id)
    assert variables["MONGODB_URI_SECRET_ARN"] == {"Ref": "MongoUriSecretArn"}
    assert variables["JOBS_COLLECTION"] == {"Ref": "JobsCollection"}
    sends = {"sqs:sendmessage"} & set(JOB_PERMISSIONS[logical_id])
    assert ("EXPORT_QUEUE_URL" in variables) is bool(sends)
    if sends:
        assert variables["EXPORT_QUEUE_URL"] == {"Ref": "ExportJobQueue"}
    assert ("EVENT_BUS_NAME" in variables) is ("events:putevents" in JOB_PERMISSIONS[logical_id])
    assert ("EXPORT_BUCKET" in variables) is (logical_id == WORKER)
    assert ("KMS_KEY_ID" in variables) is (logical_id == WORKER)


def test_job_outputs() -> None:
    outputs = template()["Outputs"]
    assert outputs["ExportBucketName"]["Value"] == {"Ref": "ExportBucket"}
    assert outputs["ExportJobQueueUrl"]["Value"] == {"Ref": "ExportJobQueue"}
    assert outputs["ExportJobDeadLetterQueueUrl"]["Value"] == {"Ref": "ExportJobDeadLetterQueue"}


def test_event_source_events() -> None:
    worker = load_event("export_worker")
    (record,) = worker["Records"]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(".fifo")
    assert set(json.loads(record["body"])) == {"job_id", "seq"}
    assert record["attributes"]["MessageGroupId"] and record["attributes"]["ApproximateReceiveCount"]
    (dead,) = load_event("export_job_dead_letters")["Records"]
    assert dead["eventSourceARN"].endswith("-dlq.fifo")
    request = load_event("export_job_events")
    assert request["detail-type"] == "ActiveCampaign Export Requested"
    assert {"account_id", "owner", "resource", "options"} <= set(request["detail"])
