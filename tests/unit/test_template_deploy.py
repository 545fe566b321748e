"""template.yaml's deployment pieces: the database setup run by the MongoIndexes custom resource (and
switchable off), the optional custom domain, and HooksBaseUrl defaulting to it."""

from __future__ import annotations

from pathlib import Path

from devstack.apigw import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def template() -> dict:
    return load_template(TEMPLATE)


def test_the_setup_function_runs_in_the_functions_vpc_with_their_settings():
    tpl = template()
    fn = tpl["Resources"]["SetupDbFunction"]["Properties"]
    assert fn["CodeUri"] == "functions/setup_db/" and fn["Handler"] == "app.lambda_handler"
    assert "VpcConfig" not in fn                        # Globals' VpcConfig applies, as to every function
    env = fn["Environment"]["Variables"]
    assert env["MONGODB_URI_SECRET_ARN"] == {"Ref": "MongoUriSecretArn"}
    assert {"LIVE_COLLECTION", "CHANGES_COLLECTION", "CHANGES_TTL_DAYS"} <= set(env)
    statements = next(p["Statement"] for p in fn["Policies"] if "Statement" in p)
    assert statements == [{"Effect": "Allow", "Action": "cloudformation:DescribeStacks",
                           "Resource": {"Ref": "AWS::StackId"}}]


def test_the_custom_resource_never_waits_an_hour_and_reruns_when_the_layer_or_a_setting_changes():
    tpl = template()
    resource = tpl["Resources"]["MongoIndexes"]
    assert resource["Condition"] == "SetupDbOnDeploy"
    assert resource["DependsOn"] == "SetupDbFunctionLogGroup"   # else Lambda makes the group first
    props = resource["Properties"]
    assert props["ServiceToken"] == {"Ref": "SetupDbFunction.Alias"}           # this deploy's code
    timeout = tpl["Resources"]["SetupDbFunction"]["Properties"]["Timeout"]
    assert timeout < props["ServiceTimeout"] <= 3600
    assert props["Layer"] == {"Ref": "CommonLayer"}
    for name in ("MongoUriSecretArn", "MongoDatabase", "CredentialsCollection", "JobsCollection",
                 "LiveCollection", "ChangesCollection", "ChangesTtlDays"):
        assert props[name] == {"Ref": name}
    assert tpl["Conditions"]["SetupDbOnDeploy"] == {"Fn::Equals": [{"Ref": "SetupDbOnDeploy"}, "true"]}
    assert tpl["Parameters"]["SetupDbOnDeploy"]["Default"] == "true"


def test_the_custom_domain_is_optional_and_needs_its_certificate():
    tpl = template()
    params = tpl["Parameters"]
    assert params["DomainName"]["Default"] == params["CertificateArn"]["Default"] == ""
    assert params["HostedZoneId"]["Default"] == ""
    resources = tpl["Resources"]
    assert resources["ApiDomain"]["Condition"] == "HasDomain"
    assert resources["ApiDomainMapping"]["Condition"] == "HasDomain"
    assert resources["ApiDomainMapping"]["Properties"]["Stage"] == "$default"
    assert resources["ApiDomainRecord"]["Condition"] == "HasDomainRecord"
    config = resources["ApiDomain"]["Properties"]["DomainNameConfigurations"][0]
    assert config["EndpointType"] == "REGIONAL" and config["SecurityPolicy"] == "TLS_1_2"
    rule = tpl["Rules"]["DomainNeedsCertificate"]
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]}
    assert tpl["Outputs"]["ApiDomainUrl"]["Condition"] == "HasDomain"


def test_hooks_base_url_defaults_to_the_custom_domain():
    env = template()["Resources"]["LiveEnableFunction"]["Properties"]["Environment"]["Variables"]
    assert env["HOOKS_BASE_URL"] == {"Fn::If": ["HasHooksBaseUrl", {"Ref": "HooksBaseUrl"}, {
        "Fn::If": ["HasDomain", {"Fn::Sub": "https://${DomainName}"}, ""]}]}
