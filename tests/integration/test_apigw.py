"""The local API Gateway (devstack.apigw) against a tiny SAM template written for these tests.

Independent of the real template and handlers: the template, a layer and a few dummy functions are
written to a temporary directory, and every behaviour is checked through real HTTP on loopback.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import textwrap
import threading
from pathlib import Path

import pytest
import requests

from devstack.apigw import MAX_REQUEST_BODY, FunctionTimeout, LocalApiGateway, load_api, load_template

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  AuthTtl:
    Type: Number
    Default: {ttl}
  ParamValue:
    Type: String
    Default: from-param
Globals:
  Function:
    Runtime: python3.13
    Handler: app.lambda_handler
    Timeout: 5
    MemorySize: 256
    Layers:
      - !Ref TestLayer
    Environment:
      Variables:
        APIGW_TEST_GLOBAL: from-globals
        APIGW_TEST_OVERRIDDEN: globals
        APIGW_TEST_PARAM: !Ref ParamValue
        APIGW_TEST_ARN: !GetAtt SomeQueue.Arn
Resources:
  SomeQueue:
    Type: AWS::SQS::Queue
  TestLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
    Metadata:
      BuildMethod: python3.13
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: TestAuthorizer
        Authorizers:
          TestAuthorizer:
            FunctionArn: !GetAtt AuthFn.Arn
            AuthorizerPayloadFormatVersion: "2.0"
            EnableSimpleResponses: true
            Identity:
              Headers: [Authorization]
              ReauthorizeEvery: !Ref AuthTtl
  AuthFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/authorizer/
      Timeout: 2
  EchoFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/echo/
      MemorySize: 512
      Environment:
        Variables:
          APIGW_TEST_OVERRIDDEN: echo
      Events:
        Get:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: /v1/echo, Method: GET}}
        Post:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: /v1/echo, Method: post}}
  JobsFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/jobs/
      Events:
        Job:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: "/v1/jobs/{{job_id}}", Method: GET}}
        Latest:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: /v1/jobs/latest, Method: GET}}
        Files:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: "/v1/files/{{proxy+}}", Method: GET}}
  BoomFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/boom/
      Events:
        Boom:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: /v1/boom, Method: GET}}
  BareFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/bare/
      Events:
        Bare:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: /v1/bare, Method: GET}}
        Public:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Path: /v1/public
            Method: GET
            Auth: {{Authorizer: NONE}}
  ReplyFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/reply/
      Events:
        Reply:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: /v1/reply, Method: GET}}
  SlowFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/slow/
      Timeout: 1
      Events:
        Slow:
          Type: HttpApi
          Properties: {{ApiId: !Ref Api, Path: /v1/slow, Method: GET}}
"""

FUNCTIONS = {
    "authorizer": '''
        import json
        from pathlib import Path

        CALLS = Path(__file__).with_name("calls.log")
        LAST_EVENT = Path(__file__).with_name("last_event.json")

        def lambda_handler(event, context):
            token = (event.get("identitySource") or [""])[0]
            with CALLS.open("a") as fh:
                fh.write(token + "\\n")
            LAST_EVENT.write_text(json.dumps(event))
            if token == "Bearer explode":
                raise RuntimeError("authorizer bug")
            if token == "Bearer malformed":
                return {"allow": True}
            ok = token == "Bearer good" or token.startswith("Bearer good-")
            return {"isAuthorized": ok, "context": {"uid": "u1"} if ok else {}}
    ''',
    "echo": '''
        import json
        import os
        import threading
        import time

        from apigw_test_layer import tag

        ACTIVE = MAX_ACTIVE = 0
        LOCK = threading.Lock()

        def lambda_handler(event, context):
            global ACTIVE, MAX_ACTIVE
            with LOCK:
                ACTIVE += 1
                MAX_ACTIVE = max(MAX_ACTIVE, ACTIVE)
            try:
                first = context.get_remaining_time_in_millis()
                time.sleep(0.05)
                second = context.get_remaining_time_in_millis()
            finally:
                with LOCK:
                    ACTIVE -= 1
            info = {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "invoked_function_arn": context.invoked_function_arn,
                "aws_request_id": context.aws_request_id,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "remaining": [first, second],
                "max_active": MAX_ACTIVE,
            }
            env = {k: v for k, v in os.environ.items() if k.startswith("APIGW_TEST_")}
            return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"event": event, "context": info, "env": env, "layer": tag()})}
    ''',
    "jobs": '''
        import json

        def lambda_handler(event, context):
            return {"statusCode": 200, "headers": {"content-type": "application/json"},
                    "body": json.dumps({"routeKey": event["routeKey"],
                                        "pathParameters": event.get("pathParameters")})}
    ''',
    "boom": '''
        def lambda_handler(event, context):
            raise ValueError("handler bug")
    ''',
    "bare": '''
        def lambda_handler(event, context):
            return {"hello": "world", "n": 1}
    ''',
    "reply": '''
        import base64

        def lambda_handler(event, context):
            if (event.get("queryStringParameters") or {}).get("binary"):
                return {"statusCode": 201, "headers": {"content-type": "image/png"}, "isBase64Encoded": True,
                        "body": base64.b64encode(bytes(range(256))).decode()}
            return {"statusCode": 202, "headers": {"x-one": "1", "content-type": "text/plain"},
                    "multiValueHeaders": {"x-many": ["a", "b"]}, "cookies": ["c1=v1; Path=/", "c2=v2"],
                    "body": "accepted"}
    ''',
    "slow": '''
        import time

        def lambda_handler(event, context):
            time.sleep(1.5)
            return {"statusCode": 200, "body": "too late"}
    ''',
}

GOOD = {"Authorization": "Bearer good"}


def write_project(root: Path, *, ttl: int) -> Path:
    (root / "layer").mkdir(parents=True)
    (root / "layer" / "apigw_test_layer.py").write_text("def tag():\n    return 'layer-ok'\n")
    for name, code in FUNCTIONS.items():
        fn_dir = root / "functions" / name
        fn_dir.mkdir(parents=True)
        (fn_dir / "app.py").write_text(textwrap.dedent(code))
    template = root / "template.yaml"
    template.write_text(TEMPLATE.format(ttl=ttl))
    return template


def authorizer_calls(template: Path) -> list[str]:
    log = template.parent / "functions" / "authorizer" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return write_project(tmp_path_factory.mktemp("apigw"), ttl=300)


@pytest.fixture(scope="module")
def gateway(project):
    gw = LocalApiGateway(project, env={"APIGW_TEST_EXTRA": "from-env"}).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def session():
    with requests.Session() as http_session:
        yield http_session


def echo(gateway, session, path="/v1/echo", **kwargs) -> dict:
    headers = {**GOOD, **kwargs.pop("headers", {})}
    reply = session.request(kwargs.pop("method", "GET"), gateway.url + path, headers=headers, timeout=10, **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()


# ---------------------------------------------------------------- template reading

def test_short_tags_become_long_form_intrinsics(project):
    template = load_template(project)
    auth = template["Resources"]["Api"]["Properties"]["Auth"]["Authorizers"]["TestAuthorizer"]
    assert auth["FunctionArn"] == {"Fn::GetAtt": ["AuthFn", "Arn"]}
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "TestLayer"}]


def test_routes_functions_and_authorizer_come_from_the_template(project):
    api = load_api(project)
    assert sorted(r.route_key for r in api.routes) == [
        "GET /v1/bare", "GET /v1/boom", "GET /v1/echo", "GET /v1/files/{proxy+}", "GET /v1/jobs/latest",
        "GET /v1/jobs/{job_id}", "GET /v1/public", "GET /v1/reply", "GET /v1/slow", "POST /v1/echo",
    ]
    by_key = {r.route_key: r for r in api.routes}
    assert by_key["GET /v1/public"].authorizer is None  # Auth: {Authorizer: NONE}
    auth = by_key["GET /v1/echo"].authorizer
    assert auth is not None
    assert (auth.function_logical_id, auth.identity_headers, auth.ttl_seconds, auth.simple_responses) == (
        "AuthFn", ("Authorization",), 300, True)
    echo_fn = api.functions["EchoFn"]
    assert by_key["GET /v1/echo"].handler == "app.lambda_handler"
    assert by_key["GET /v1/echo"].code_uri == project.parent / "functions" / "echo"
    assert (echo_fn.memory_size, echo_fn.timeout) == (512, 5.0)  # own MemorySize, Globals Timeout
    assert api.functions["SlowFn"].timeout == 1.0
    assert echo_fn.layer_dirs == (project.parent / "layer",)
    assert echo_fn.environment == {"APIGW_TEST_GLOBAL": "from-globals", "APIGW_TEST_OVERRIDDEN": "echo",
                                   "APIGW_TEST_PARAM": "from-param"}
    assert echo_fn.skipped_environment == ("APIGW_TEST_ARN",)


# ---------------------------------------------------------------- the authorizer

def test_missing_or_empty_authorization_is_401_without_calling_the_authorizer(gateway, session, project):
    before = len(authorizer_calls(project))
    for headers in ({}, {"Authorization": ""}):
        reply = session.get(gateway.url + "/v1/echo", headers=headers, timeout=10)
        assert reply.status_code == 401
        assert reply.json() == {"message": "Unauthorized"}
        assert reply.headers["Content-Type"] == "application/json"
    assert len(authorizer_calls(project)) == before


def test_denied_is_403(gateway, session):
    reply = session.get(gateway.url + "/v1/echo", headers={"Authorization": "Bearer bad"}, timeout=10)
    assert reply.status_code == 403
    assert reply.json() == {"message": "Forbidden"}


@pytest.mark.parametrize("token", ["Bearer explode", "Bearer malformed"])
def test_authorizer_failure_is_500(gateway, session, token):
    reply = session.get(gateway.url + "/v1/echo", headers={"Authorization": token}, timeout=10)
    assert reply.status_code == 500
    assert reply.json() == {"message": "Internal Server Error"}


def test_authorizer_context_reaches_the_handler(gateway, session):
    event = echo(gateway, session)["event"]
    assert event["requestContext"]["authorizer"] == {"lambda": {"uid": "u1"}}


def test_route_without_authorizer_needs_no_token(gateway, session):
    reply = session.get(gateway.url + "/v1/public", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {"hello": "world", "n": 1}


def test_authorizer_answers_are_cached_per_identity_source(gateway, session, project):
    token = "Bearer good-cache-test"
    for _ in range(2):
        assert session.get(gateway.url + "/v1/echo", headers={"Authorization": token}, timeout=10).status_code == 200
    assert session.get(gateway.url + "/v1/bare", headers={"Authorization": token}, timeout=10).status_code == 200
    assert authorizer_calls(project).count(token) == 1


def test_without_ttl_the_authorizer_runs_on_every_request(tmp_path, session):
    template = write_project(tmp_path, ttl=0)
    with LocalApiGateway(template) as gw:
        for _ in range(2):
            reply = session.get(gw.url + "/v1/bare", headers=GOOD, timeout=10)
            assert reply.status_code == 200
    assert authorizer_calls(template).count("Bearer good") == 2


def test_authorizer_event(gateway, session, project):
    token = "Bearer good-event"
    reply = session.get(gateway.url + "/v1/jobs/7?x=1&y=a%2Cb", headers={"Authorization": token}, timeout=10)
    assert reply.status_code == 200
    event = json.loads((project.parent / "functions" / "authorizer" / "last_event.json").read_text())
    assert (event["version"], event["type"]) == ("2.0", "REQUEST")
    assert event["routeArn"] == "arn:aws:execute-api:us-east-1:123456789012:local/$default/GET/v1/jobs/7"
    assert event["identitySource"] == [token]
    assert (event["routeKey"], event["rawPath"], event["rawQueryString"]) == (
        "GET /v1/jobs/{job_id}", "/v1/jobs/7", "x=1&y=a%2Cb")
    assert event["queryStringParameters"] == {"x": "1", "y": "a,b"}
    assert event["pathParameters"] == {"job_id": "7"}
    assert event["headers"]["authorization"] == token
    assert event["requestContext"]["routeKey"] == "GET /v1/jobs/{job_id}"
    assert "authorizer" not in event["requestContext"]


# ---------------------------------------------------------------- the event

def test_event_shape(gateway, session):
    reply = session.get(gateway.url + "/v1/echo", timeout=10,
                     headers={**GOOD, "X-Custom": "One", "Cookie": "a=1; b=2", "User-Agent": "pytest-ua"})
    event = reply.json()["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /v1/echo"
    assert event["rawPath"] == "/v1/echo"
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event
    assert "pathParameters" not in event
    assert event["isBase64Encoded"] is False
    assert event["cookies"] == ["a=1", "b=2"]
    headers = event["headers"]
    assert headers["x-custom"] == "One"
    assert headers["authorization"] == "Bearer good"
    assert "cookie" not in headers
    assert all(name == name.lower() for name in headers)
    ctx = event["requestContext"]
    assert (ctx["accountId"], ctx["apiId"], ctx["stage"], ctx["routeKey"]) == (
        "123456789012", "local", "$default", "GET /v1/echo")
    assert ctx["http"] == {"method": "GET", "path": "/v1/echo", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "pytest-ua"}
    assert ctx["domainName"] == f"127.0.0.1:{gateway.port}"
    assert isinstance(ctx["timeEpoch"], int)
    assert ctx["requestId"] == reply.headers["apigw-requestid"]


def test_repeated_headers_are_joined_with_commas(gateway):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.putrequest("GET", "/v1/echo")
    conn.putheader("Authorization", "Bearer good")
    conn.putheader("X-Multi", "a")
    conn.putheader("X-Multi", "b")
    conn.endheaders()
    reply = conn.getresponse()
    assert reply.status == 200
    assert json.loads(reply.read())["event"]["headers"]["x-multi"] == "a,b"
    conn.close()


def raw_get(gateway, target: str) -> dict:
    """GET with the request target sent byte for byte (requests re-encodes [ and ])."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.request("GET", target, headers=GOOD)
        reply = conn.getresponse()
        assert reply.status == 200
        return json.loads(reply.read())
    finally:
        conn.close()


def test_raw_query_string_is_verbatim_and_parameters_are_decoded(gateway, session):
    expected = {"page": "1", "limit": "5", "filters[firstName]": "John Doe", "orders[email]": "ASC",
                "orders[id]": "DESC", "tag": "a,b", "flag": ""}
    query = "page=1&limit=5&filters[firstName]=John%20Doe&orders[email]=ASC&orders[id]=DESC&tag=a&tag=b&flag"
    event = raw_get(gateway, f"/v1/echo?{query}")["event"]
    assert event["rawQueryString"] == query  # not re-encoded, order kept
    assert event["queryStringParameters"] == expected
    assert list(event["queryStringParameters"]) == list(expected)  # query-string order
    encoded = query.replace("[", "%5B").replace("]", "%5D")  # what requests and browsers send
    event = echo(gateway, session, f"/v1/echo?{encoded}")["event"]
    assert event["rawQueryString"] == encoded
    assert event["queryStringParameters"] == expected


def test_body_passes_through(gateway, session):
    payload = {"api_key": "k", "base_url": "https://acme.api-us1.com", "text": "żółw"}
    event = echo(gateway, session, method="POST", json=payload)["event"]
    assert event["routeKey"] == "POST /v1/echo"
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == payload
    assert event["headers"]["content-type"] == "application/json"


def test_binary_body_is_base64(gateway, session):
    data = bytes(range(256))
    event = echo(gateway, session, method="POST", data=data,
                 headers={"Content-Type": "application/octet-stream"})["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data


def test_too_large_body_is_413(gateway):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.putrequest("POST", "/v1/echo")
    conn.putheader("Authorization", "Bearer good")
    conn.putheader("Content-Length", str(MAX_REQUEST_BODY + 1))
    conn.endheaders()
    reply = conn.getresponse()
    assert reply.status == 413
    conn.close()


# ---------------------------------------------------------------- routing

def test_unknown_route_is_404(gateway, session):
    for method, path in (("GET", "/v1/nope"), ("DELETE", "/v1/echo"), ("GET", "/v1/echo/extra"), ("TRACE", "/v1/echo"),
                         ("PROPFIND", "/v1/echo")):
        reply = session.request(method, gateway.url + path, headers=GOOD, timeout=10)
        assert reply.status_code == 404
        assert reply.json() == {"message": "Not Found"}


def test_path_parameters(gateway, session):
    assert echo(gateway, session, "/v1/jobs/42") == {"routeKey": "GET /v1/jobs/{job_id}",
                                                   "pathParameters": {"job_id": "42"}}
    assert echo(gateway, session, "/v1/jobs/a%20b")["pathParameters"] == {"job_id": "a b"}
    # The literal route wins over the parameter one.
    assert echo(gateway, session, "/v1/jobs/latest") == {"routeKey": "GET /v1/jobs/latest", "pathParameters": None}
    assert echo(gateway, session, "/v1/files/a/b/c.txt") == {"routeKey": "GET /v1/files/{proxy+}",
                                                           "pathParameters": {"proxy": "a/b/c.txt"}}
    reply = session.get(gateway.url + "/v1/jobs/", headers=GOOD, timeout=10)
    assert reply.status_code == 404


# ---------------------------------------------------------------- the answer

def test_handler_exception_is_500(gateway, session, capfd):
    reply = session.get(gateway.url + "/v1/boom", headers=GOOD, timeout=10)
    assert reply.status_code == 500
    assert reply.json() == {"message": "Internal Server Error"}
    assert "ValueError: handler bug" in capfd.readouterr().err  # the traceback is logged, not returned
    assert "handler bug" not in reply.text


def test_bare_dict_is_200_json(gateway, session):
    reply = session.get(gateway.url + "/v1/bare", headers=GOOD, timeout=10)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"hello": "world", "n": 1}


def test_status_headers_cookies_and_binary_answers(gateway):
    reply = requests.get(gateway.url + "/v1/reply", headers=GOOD, timeout=10)  # no session: keep its jar clean
    assert (reply.status_code, reply.text) == (202, "accepted")
    assert reply.headers["x-one"] == "1"
    assert reply.headers["x-many"] == "a, b"  # two header lines, joined by requests
    assert reply.cookies.get("c1") == "v1"
    assert reply.cookies.get("c2") == "v2"
    binary = requests.get(gateway.url + "/v1/reply?binary=1", headers=GOOD, timeout=10)
    assert binary.status_code == 201
    assert binary.headers["content-type"] == "image/png"
    assert binary.content == bytes(range(256))


@pytest.mark.slow  # >= 1 s of real waiting
def test_timeout_is_500(gateway, session):
    reply = session.get(gateway.url + "/v1/slow", headers=GOOD, timeout=10)
    assert reply.status_code == 500
    assert reply.elapsed.total_seconds() < 1.45  # answered at the 1 s Timeout, not when the handler ends


# ---------------------------------------------------------------- the Lambda side

def test_context_and_remaining_time(gateway, session):
    body = echo(gateway, session)
    ctx = body["context"]
    first, second = ctx["remaining"]
    assert 4000 < first <= 5000  # Timeout: 5 from Globals
    assert second <= first - 40  # it counts down while the handler runs
    assert ctx["function_name"] == "EchoFn"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == "512"
    assert ctx["invoked_function_arn"].endswith(":function:EchoFn")
    assert ctx["log_group_name"] == "/aws/lambda/EchoFn"
    assert ctx["aws_request_id"] != echo(gateway, session)["context"]["aws_request_id"]


def test_environment_and_layer(gateway, session):
    body = echo(gateway, session)
    assert body["layer"] == "layer-ok"  # the layer directory is importable, like /opt/python
    env = body["env"]
    assert env["APIGW_TEST_GLOBAL"] == "from-globals"
    assert env["APIGW_TEST_PARAM"] == "from-param"  # !Ref to a parameter: its Default
    assert env["APIGW_TEST_EXTRA"] == "from-env"  # the gateway's env mapping
    assert "APIGW_TEST_ARN" not in env  # an intrinsic we cannot resolve is skipped


def test_environment_is_restored_on_stop(tmp_path):
    template = write_project(tmp_path, ttl=0)
    assert "APIGW_TEST_ONLY_HERE" not in os.environ
    gw = LocalApiGateway(template, env={"APIGW_TEST_ONLY_HERE": "1"}).start()
    assert os.environ["APIGW_TEST_ONLY_HERE"] == "1"
    gw.stop()
    assert "APIGW_TEST_ONLY_HERE" not in os.environ


def test_calls_into_one_function_are_serialised(gateway, session):
    results: list[int] = []

    def call(path: str) -> None:
        reply = requests.get(gateway.url + path, headers=GOOD, timeout=10)
        results.append(reply.status_code)

    # Two echo calls (50 ms each, one "container") plus a bare call (another function) in parallel.
    threads = [threading.Thread(target=call, args=(p,)) for p in ("/v1/echo", "/v1/echo", "/v1/bare")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(200) == 3
    assert echo(gateway, session)["context"]["max_active"] == 1  # never two requests at once in it
    assert gateway.runtimes["EchoFn"].cold_starts == 1  # one container, imported once


@pytest.mark.slow  # >= 1 s of real waiting
def test_invoke_bypasses_http(gateway):
    assert gateway.invoke("BareFn", {"any": "event"}) == {"hello": "world", "n": 1}
    with pytest.raises(ValueError, match="handler bug"):
        gateway.invoke("BoomFn", {})
    with pytest.raises(FunctionTimeout):
        gateway.invoke("SlowFn", {})
    with pytest.raises(KeyError):
        gateway.invoke("NoSuchFn", {})
