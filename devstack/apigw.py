"""A local API Gateway HTTP API (payload format 2.0) that runs the Lambda handlers in this process.

Everything it serves comes from the SAM template, so it cannot drift from what is deployed: the routes
(`AWS::Serverless::Function` events of type `HttpApi`), the handler of each route (`CodeUri` + `Handler`),
the layers each function uses, the environment (`Globals.Function.Environment` merged under the
function's own), `Timeout` and `MemorySize`, and the Lambda authorizer of the HTTP API
(`Auth.DefaultAuthorizer` -> `Auth.Authorizers[name]`: function, identity headers, cache TTL, simple
responses).

What a request goes through, as in AWS:

1. Route matching: the exact route key first, then routes with path parameters (`/jobs/{job_id}`), the
   one with more literal segments winning, greedy `{proxy+}` last; `ANY` matches every method after the
   routes naming the method. No route -> 404 `{"message":"Not Found"}`.
2. The authorizer (when the route has one): a missing or empty identity source (e.g. no `Authorization`
   header) -> 401 `{"message":"Unauthorized"}` without calling it; otherwise it is invoked with a v2
   REQUEST event. Allowed -> its `context` lands at `requestContext.authorizer.lambda`; denied -> 403
   `{"message":"Forbidden"}`; an exception or a malformed answer -> 500. Answers are cached per identity
   source values for `ReauthorizeEvery` seconds (0 = no cache).
3. The route's function gets a v2 event (`rawQueryString` verbatim, `queryStringParameters` decoded and
   repeated keys joined with ",", lower-cased `headers` with repeated headers joined with ",",
   `cookies`, `pathParameters`, `requestContext`, `body`, base64 when the body is not UTF-8).
4. Its answer is mapped like API Gateway maps a 2.0 answer: a dict with `statusCode` gives status,
   headers, multiValueHeaders, cookies and body (base64-decoded when `isBase64Encoded`); anything else is
   inferred as 200 `application/json` with the JSON of the answer. An exception, a timeout or a malformed
   answer -> 500 `{"message":"Internal Server Error"}` (the traceback goes to stderr).

Lambda behaviour that matters to the handlers is kept: each function is one "container" (its module is
imported lazily on the first call, so the cold start happens as in Lambda, and calls into the same
function are serialised, because Powertools resolvers keep per-request state on module globals);
different functions run concurrently. The handler gets a LambdaContext whose
`get_remaining_time_in_millis()` counts down from the function's `Timeout`; when that runs out the
request gets a 500 and the "container" is replaced (the next call is a cold start), as Lambda does.
The answer goes through a JSON round trip as in the Lambda runtime, so a handler that returns something
Lambda cannot serialise fails here too.

What is not emulated: stages other than `$default` (no stage prefix in the path), CORS pre-flight,
JWT authorizers, payload format 1.0, per-function isolation of `os.environ` and of `sys.modules` (all
functions share this process: the environment is the union of the functions' environments, and the
layer packages are imported once). The query-string decoding follows form encoding (`+` is a space);
handlers that need the exact bytes read `rawQueryString`, which is verbatim.

Usage::

    gw = LocalApiGateway("template.yaml", port=3000, env={"MONGODB_URI": "..."}).start()
    print(gw.url)          # http://127.0.0.1:3000
    gw.invoke("AuthStatusFunction", event)   # bypass HTTP
    gw.stop()
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import decimal
import fnmatch
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

import yaml

__all__ = [
    "Api",
    "Authorizer",
    "CfnLoader",
    "Function",
    "FunctionTimeout",
    "IntegrationTimeout",
    "LambdaContext",
    "LocalApiGateway",
    "MalformedResponse",
    "Route",
    "load_api",
    "load_template",
]

log = logging.getLogger("devstack.apigw")

ACCOUNT_ID = "123456789012"
API_ID = "local"
STAGE = "$default"
MAX_REQUEST_BODY = 10 * 1024 * 1024  # API Gateway HTTP APIs accept payloads up to 10 MB
MAX_LAMBDA_RESPONSE = 6 * 1024 * 1024  # synchronous Lambda invocations return at most 6 MB
INIT_TIMEOUT_SECONDS = 10.0  # Lambda's init phase limit (module import)
DEFAULT_INTEGRATION_TIMEOUT_MS = 30_000  # HttpApi event TimeoutInMillis default (and maximum)
DEFAULT_FUNCTION_TIMEOUT = 3  # SAM/Lambda default Timeout (seconds)
DEFAULT_MEMORY_SIZE = 128  # SAM/Lambda default MemorySize (MB)
MAX_AUTHORIZER_TTL = 3600

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


# --------------------------------------------------------------------------------------------------
# Template loading
# --------------------------------------------------------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    """A YAML SafeLoader that understands CloudFormation's short-form intrinsic tags.

    `!Ref X` becomes `{"Ref": "X"}`, `!GetAtt X.Arn` becomes `{"Fn::GetAtt": ["X", "Arn"]}`, and every
    other `!Fn` tag becomes `{"Fn::Fn": <value>}` (the long form CloudFormation itself uses).
    """


_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{name: f"Fn::{name}" for name in (
        "GetAtt", "Sub", "If", "Join", "Select", "Equals", "Not", "And", "Or", "FindInMap", "Split",
        "ImportValue", "GetAZs", "Base64", "Cidr", "Transform", "Length", "ToJsonString",
    )},
}


def _intrinsic_constructor(key: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if key == "Fn::GetAtt":
                value = value.split(".", 1)  # "Res.Attr.Sub" -> ["Res", "Attr.Sub"], as CloudFormation
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag, _key in _SHORT_TAGS.items():
    CfnLoader.add_constructor(f"!{_tag}", _intrinsic_constructor(_key))


def load_template(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a CloudFormation/SAM YAML template (short-form tags mapped to their long form)."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=CfnLoader)  # CfnLoader is a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a CloudFormation template (top level is not a mapping)")
    return data


@dataclass(frozen=True)
class Function:
    """One `AWS::Serverless::Function`, with Globals applied."""

    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, str]
    skipped_environment: tuple[str, ...]  # variables whose value is an intrinsic we cannot resolve
    layer_dirs: tuple[Path, ...]  # what Lambda would mount at /opt/python
    memory_size: int
    timeout: float
    runtime: str | None
    function_name: str  # FunctionName when it is a plain string, else the logical id

    @property
    def handler_file(self) -> Path:
        """The file of `Handler` ("app.lambda_handler" -> <CodeUri>/app.py; packages are supported)."""
        module = self.handler.rsplit(".", 1)[0].replace(".", "/")
        candidate = self.code_uri / f"{module}.py"
        package = self.code_uri / module / "__init__.py"
        return package if not candidate.exists() and package.exists() else candidate

    @property
    def handler_attr(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class Authorizer:
    """A Lambda authorizer of the HTTP API (payload format 2.0)."""

    name: str
    function_logical_id: str
    function: Function
    identity_headers: tuple[str, ...]
    identity_query_strings: tuple[str, ...] = ()
    ttl_seconds: int = 0
    simple_responses: bool = True
    payload_format_version: str = "2.0"


@dataclass(frozen=True)
class Route:
    """One `HttpApi` event of a function: `METHOD /path` -> the function."""

    method: str  # upper case; "ANY" matches every method
    path: str  # "/v1/jobs/{job_id}", "/files/{proxy+}" or "$default"
    function_logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, str]
    function: Function = field(repr=False, compare=False)
    authorizer: Authorizer | None = None
    event_name: str = ""
    integration_timeout_ms: int = DEFAULT_INTEGRATION_TIMEOUT_MS

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return self.path.split("/")

    @property
    def has_parameters(self) -> bool:
        return "{" in self.path

    def match(self, path: str) -> dict[str, str] | None:
        """The (decoded) path parameters when `path` (raw, percent-encoded) matches this route."""
        if self.path == "$default":
            return {}
        route_segs, req_segs = self.segments, path.split("/")
        params: dict[str, str] = {}
        for i, seg in enumerate(route_segs):
            if seg.startswith("{") and seg.endswith("+}"):
                rest = "/".join(req_segs[i:])
                if not rest:
                    return None
                params[seg[1:-2]] = unquote(rest)
                return params
            if i >= len(req_segs):
                return None
            if seg.startswith("{") and seg.endswith("}"):
                if not req_segs[i]:
                    return None
                params[seg[1:-1]] = unquote(req_segs[i])
            elif unquote(req_segs[i]) != seg:
                return None
        return params if len(req_segs) == len(route_segs) else None

    def _specificity(self) -> tuple[int, int, int, int]:
        segs = self.segments
        literal = sum(1 for s in segs if not s.startswith("{"))
        greedy = any(s.endswith("+}") for s in segs)
        return (self.path == "$default", greedy, -literal, -len(segs))


@dataclass
class Api:
    """What the template defines for the HTTP API: routes, functions and authorizers."""

    template_path: Path
    routes: list[Route]
    functions: dict[str, Function]
    authorizers: dict[str, Authorizer]
    parameters: dict[str, str]

    @property
    def authorizer(self) -> Authorizer | None:
        """The authorizer of the routes (the first one found), for introspection."""
        return next((r.authorizer for r in self.routes if r.authorizer), None)

    def environment(self) -> dict[str, str]:
        """The union of every function's resolved environment (later functions don't override)."""
        merged: dict[str, str] = {}
        for fn in self.functions.values():
            for name, value in fn.environment.items():
                if name in merged and merged[name] != value:
                    log.warning("environment variable %s differs between functions (%r vs %r); all "
                                "functions share one process here, keeping the first", name,
                                merged[name], value)
                    continue
                merged.setdefault(name, value)
        return merged

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route API Gateway would pick for `method path`, with its path parameters."""
        method = method.upper()
        for route in self.routes:  # exact route key first
            if not route.has_parameters and route.path == path and route.method == method:
                return route, {}
        candidates: list[tuple[tuple, Route, dict[str, str]]] = []
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            params = route.match(path)
            if params is not None:
                candidates.append(((*route._specificity(), route.method == "ANY"), route, params))
        if not candidates:
            return None
        candidates.sort(key=lambda c: c[0])
        return candidates[0][1], candidates[0][2]


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (resource wins), lists concatenate, scalars are overridden."""
    merged: dict[str, Any] = copy.deepcopy(dict(global_props))
    for key, value in props.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = base + value
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in (
        {"Ref", "Condition"} | {k for k in _SHORT_TAGS.values() if k.startswith("Fn::")})


def _resolve(value: Any, parameters: Mapping[str, str], region: str) -> Any:
    """A plain value, or a `Ref` to a template parameter (its value) or to AWS::Region; else None."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            name = value["Ref"]
            if name in parameters:
                return parameters[name]
            if name == "AWS::Region":
                return region
            if name == "AWS::AccountId":
                return ACCOUNT_ID
        return None
    return value


def _env_text(value: Any) -> str | None:
    """CloudFormation turns scalar environment values into strings; True -> "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _getatt_target(value: Any) -> str | None:
    """The logical id in `!GetAtt X.Arn`, `{"Fn::GetAtt": "X.Arn"}` or `!Sub "${X.Arn}"`."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        if isinstance(target, str):
            target = target.split(".", 1)
        if isinstance(target, list) and len(target) == 2 and target[1] == "Arn":
            return str(target[0])
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text = value["Fn::Sub"].strip()
        if text.startswith("${") and text.endswith(".Arn}"):
            return text[2:-5]
    return None


def _version_text(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def load_api(template_path: str | os.PathLike[str], *,
             parameter_overrides: Mapping[str, str] | None = None) -> Api:
    """Read the routes, functions and authorizers of the HTTP API from a SAM template.

    Environment values are kept when they are plain scalars or a `!Ref` to a template parameter that
    has a `Default` (or is given in `parameter_overrides`, like `sam --parameter-overrides`); any other
    intrinsic (`!GetAtt`, `!Sub`, a parameter without default...) is skipped and listed in
    `Function.skipped_environment` — the local stack supplies those values.
    """
    path = Path(template_path).resolve()
    reader = _TemplateReader(path, load_template(path), parameter_overrides)
    routes = reader.routes()
    seen: dict[str, str] = {}
    for route in routes:
        if route.route_key in seen:
            raise ValueError(f"route {route.route_key} is defined twice ({seen[route.route_key]} and "
                             f"{route.function_logical_id})")
        seen[route.route_key] = route.function_logical_id
    return Api(template_path=path, routes=routes, functions=reader.functions,
               authorizers={a.name: a for a in reader.authorizers.values()}, parameters=reader.parameters)


class _TemplateReader:
    """One pass over a SAM template for `load_api`: parameters, layers, functions, then routes and the
    authorizers they name."""

    def __init__(self, path: Path, template: dict[str, Any], overrides: Mapping[str, str] | None) -> None:
        self.base = path.parent
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.parameters = _parameters(template, overrides)
        self.resources: dict[str, Any] = template.get("Resources") or {}
        globals_ = template.get("Globals") or {}
        self.global_api = globals_.get("HttpApi") or {}
        self.layers = self._layers()
        self.function_props = {lid: _merge_globals(globals_.get("Function") or {}, res.get("Properties") or {})
                               for lid, res in self._of_type("AWS::Serverless::Function")}
        self.functions = {lid: self._function(lid, props) for lid, props in self.function_props.items()}
        self.http_apis = {lid: _merge_globals(self.global_api, res.get("Properties") or {})
                          for lid, res in self._of_type("AWS::Serverless::HttpApi")}
        self.authorizers: dict[str, Authorizer] = {}

    def _of_type(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(lid, res) for lid, res in self.resources.items() if isinstance(res, dict) and res.get("Type") == kind]

    def _resolve(self, value: Any) -> Any:
        return _resolve(value, self.parameters, self.region)

    def _layers(self) -> dict[str, Path]:
        layers: dict[str, Path] = {}
        for lid, res in self._of_type("AWS::Serverless::LayerVersion"):
            content = (res.get("Properties") or {}).get("ContentUri")
            if not isinstance(content, str):
                continue
            layer_dir = (self.base / content).resolve()
            # Without a BuildMethod, the zip must hold python/ itself (that is what lands on /opt/python).
            if not (res.get("Metadata") or {}).get("BuildMethod") and (layer_dir / "python").is_dir():
                layer_dir = layer_dir / "python"
            layers[lid] = layer_dir
        return layers

    def _function(self, lid: str, props: dict[str, Any]) -> Function:
        if props.get("PackageType") == "Image":
            raise ValueError(f"{lid}: image functions are not supported by the local API Gateway")
        code_uri, handler = props.get("CodeUri"), props.get("Handler")
        if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
            raise ValueError(f"{lid}: needs a local CodeUri directory and a Handler like "
                             "'app.lambda_handler'")
        environment: dict[str, str] = {}
        skipped: list[str] = []
        for name, raw in (((props.get("Environment") or {}).get("Variables")) or {}).items():
            text = _env_text(self._resolve(raw))
            if text is None:
                skipped.append(name)
            else:
                environment[name] = text
        # Layer ARNs (public layers such as Powertools) are served by the local virtualenv instead.
        refs = [ref.get("Ref") if isinstance(ref, dict) else None for ref in props.get("Layers") or []]
        layer_dirs = [self.layers[ref] for ref in refs if ref in self.layers]
        timeout = self._resolve(props.get("Timeout", DEFAULT_FUNCTION_TIMEOUT))
        memory = self._resolve(props.get("MemorySize", DEFAULT_MEMORY_SIZE))
        name = props.get("FunctionName")
        return Function(
            logical_id=lid,
            code_uri=(self.base / code_uri).resolve(),
            handler=handler,
            environment=environment,
            skipped_environment=tuple(skipped),
            layer_dirs=tuple(dict.fromkeys(layer_dirs)),
            memory_size=int(memory or DEFAULT_MEMORY_SIZE),
            timeout=float(timeout or DEFAULT_FUNCTION_TIMEOUT),
            runtime=props.get("Runtime"),
            function_name=name if isinstance(name, str) else lid,
        )

    def authorizer(self, api_id: str, api_props: Mapping[str, Any], name: str) -> Authorizer:
        key = f"{api_id}.{name}"
        if key not in self.authorizers:
            self.authorizers[key] = self._authorizer(api_id, api_props, name)
        return self.authorizers[key]

    def _authorizer(self, api_id: str, api_props: Mapping[str, Any], name: str) -> Authorizer:
        spec = ((api_props.get("Auth") or {}).get("Authorizers") or {}).get(name)
        if not isinstance(spec, dict):
            raise ValueError(f"{api_id}: authorizer {name!r} is not defined under Auth.Authorizers")
        if "JwtConfiguration" in spec:
            raise ValueError(f"{api_id}: JWT authorizer {name!r} is not supported locally "
                             "(Lambda authorizers are)")
        fn_id = _getatt_target(spec.get("FunctionArn"))
        if fn_id is None or fn_id not in self.functions:
            raise ValueError(f"{api_id}: authorizer {name!r} FunctionArn must be !GetAtt <Function>.Arn "
                             "of a function in this template")
        version = _version_text(spec.get("AuthorizerPayloadFormatVersion", "2.0"))
        if version != "2.0":
            raise ValueError(f"{api_id}: authorizer {name!r} uses payload format {version}; "
                             "only 2.0 is emulated")
        identity = spec.get("Identity") or {}
        ttl = self._resolve(identity.get("ReauthorizeEvery", 0))
        try:
            ttl_seconds = max(0, min(MAX_AUTHORIZER_TTL, int(float(ttl or 0))))
        except (TypeError, ValueError):
            raise ValueError(f"{api_id}: authorizer {name!r} ReauthorizeEvery cannot be resolved: {ttl!r}") \
                from None
        return Authorizer(
            name=name,
            function_logical_id=fn_id,
            function=self.functions[fn_id],
            identity_headers=tuple(str(h) for h in identity.get("Headers") or ()),
            identity_query_strings=tuple(str(q) for q in identity.get("QueryStrings") or ()),
            ttl_seconds=ttl_seconds,
            simple_responses=bool(spec.get("EnableSimpleResponses", False)),
            payload_format_version=version,
        )

    def routes(self) -> list[Route]:
        implicit_api = copy.deepcopy(dict(self.global_api))  # events without ApiId go to SAM's implicit API
        routes: list[Route] = []
        for lid, props in self.function_props.items():
            for event_name, event in (props.get("Events") or {}).items():
                if isinstance(event, dict) and event.get("Type") == "HttpApi":
                    routes.append(self._route(lid, event_name, event.get("Properties") or {}, implicit_api))
        return routes

    def _route(self, lid: str, event_name: str, ev: dict[str, Any], implicit_api: dict[str, Any]) -> Route:
        api_ref = ev.get("ApiId")
        api_id = api_ref.get("Ref") if isinstance(api_ref, dict) else None
        if api_ref is not None and api_id not in self.http_apis:
            raise ValueError(f"{lid}.{event_name}: ApiId must be !Ref to an AWS::Serverless::HttpApi")
        api_props = self.http_apis[api_id] if api_id else implicit_api
        version = _version_text(ev.get("PayloadFormatVersion", "2.0"))
        if version != "2.0":
            raise ValueError(f"{lid}.{event_name}: payload format {version}; only 2.0 is emulated")
        auth_name = (ev.get("Auth") or {}).get("Authorizer") or (api_props.get("Auth") or {}).get("DefaultAuthorizer")
        authorizer = None
        if auth_name and auth_name not in ("NONE", "AWS_IAM"):
            authorizer = self.authorizer(api_id or "ServerlessHttpApi", api_props, auth_name)
        method = str(ev.get("Method", "ANY")).upper()
        fn = self.functions[lid]
        return Route(
            method="ANY" if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method,
            path=str(ev.get("Path", "$default")), function_logical_id=lid, code_uri=fn.code_uri,
            handler=fn.handler, environment=fn.environment, function=fn, authorizer=authorizer,
            event_name=event_name,
            integration_timeout_ms=int(ev.get("TimeoutInMillis") or DEFAULT_INTEGRATION_TIMEOUT_MS),
        )


def _parameters(template: dict[str, Any], overrides: Mapping[str, str] | None) -> dict[str, str]:
    """Each parameter's Default (a list joined with commas, as CloudFormation does), then the overrides."""
    parameters: dict[str, str] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if isinstance(spec, dict) and "Default" in spec:
            default = spec["Default"]
            parameters[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
    parameters.update({k: str(v) for k, v in (overrides or {}).items()})
    return parameters


# --------------------------------------------------------------------------------------------------
# Lambda runtime emulation
# --------------------------------------------------------------------------------------------------

class FunctionTimeout(RuntimeError):
    """The function ran past its Timeout (Lambda: "Task timed out after N seconds")."""


class IntegrationTimeout(RuntimeError):
    """API Gateway stopped waiting for the integration (TimeoutInMillis, at most 30 s)."""


class MalformedResponse(RuntimeError):
    """The function's answer cannot be serialised or mapped (Runtime.MarshalError / bad proxy response)."""


class LambdaContext:
    """The context object the Lambda Python runtime passes to a handler."""

    def __init__(self, function: Function, *, region: str, started: float | None = None) -> None:
        self.function_name = function.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function.function_name}"
        # The real runtime reads AWS_LAMBDA_FUNCTION_MEMORY_SIZE, so this is a string there too.
        self.memory_limit_in_mb = str(function.memory_size)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.function_name}"
        self.log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = (started if started is not None else time.monotonic()) + function.timeout

    @property
    def deadline(self) -> float:
        """time.monotonic() at which the invocation times out."""
        return self._deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext({self.function_name!r}, request_id={self.aws_request_id!r})"


def _decimal_default(obj: Any) -> Any:
    # The Python runtime serialises Decimal (e.g. from DynamoDB); anything else non-JSON is a MarshalError.
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _marshal(result: Any) -> Any:
    """What the caller of Lambda receives: the handler's answer after a JSON round trip."""
    try:
        text = json.dumps(result, default=_decimal_default)
    except (TypeError, ValueError) as exc:
        raise MalformedResponse(f"Runtime.MarshalError: Unable to marshal response: {exc}") from exc
    if len(text.encode()) > MAX_LAMBDA_RESPONSE:
        raise MalformedResponse("Response payload size exceeded the 6 MB limit of synchronous invocations")
    return json.loads(text)


_import_lock = threading.RLock()


class _Container:
    """One warm execution environment of a function: its handler (once imported) and its lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handler: Any = None
        self.module: Any = None


class FunctionRuntime:
    """Runs one function like Lambda runs it: lazy cold start, one request at a time, Timeout enforced."""

    def __init__(self, function: Function, *, region: str) -> None:
        self.function = function
        self.region = region
        self._container = _Container()
        self._swap_lock = threading.Lock()
        self.cold_starts = 0
        self.invocations = 0

    @property
    def module_name(self) -> str:
        return f"lambda_fn_{self.function.logical_id}"

    def _acquire(self) -> _Container:
        """Wait for the current container; if it is replaced meanwhile (a timeout), move to the new one."""
        while True:
            container = self._container
            if container.lock.acquire(timeout=0.05):
                if container is self._container:
                    return container
                container.lock.release()

    def _retire(self, container: _Container) -> None:
        with self._swap_lock:
            if self._container is container:
                self._container = _Container()

    def _load(self, container: _Container) -> Any:
        """Import the handler module under a unique name, with the layers and the code dir on sys.path."""
        fn = self.function
        with _import_lock:
            for entry in (*fn.layer_dirs, fn.code_uri):
                if str(entry) not in sys.path:
                    sys.path.insert(0, str(entry))
            handler_file = fn.handler_file
            if not handler_file.is_file():
                raise ImportError(f"Runtime.ImportModuleError: Unable to import module for handler "
                                  f"{fn.handler!r}: {handler_file} does not exist")
            name = self.module_name
            spec = importlib.util.spec_from_file_location(name, handler_file)
            if spec is None or spec.loader is None:
                raise ImportError(f"Runtime.ImportModuleError: cannot load {handler_file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses, pickling etc. look the module up by name
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        handler = getattr(module, fn.handler_attr, None)
        if not callable(handler):
            raise AttributeError(f"Runtime.HandlerNotFound: {handler_file.name} has no callable "
                                 f"{fn.handler_attr!r}")
        container.handler = handler
        container.module = module
        self.cold_starts += 1
        return handler

    def invoke(self, event: Any, *, wait_seconds: float | None = None) -> Any:
        """Invoke synchronously; returns the (JSON round-tripped) answer.

        Raises the handler's own exception, FunctionTimeout when the function runs past its Timeout,
        IntegrationTimeout when `wait_seconds` (API Gateway's integration timeout) runs out first, or
        MalformedResponse when the answer cannot be serialised.
        """
        container = self._acquire()
        self.invocations += 1
        box: dict[str, Any] = {}
        started = threading.Event()
        done = threading.Event()
        payload = json.loads(json.dumps(event))  # the function gets its own copy, as over the wire

        def run() -> None:
            try:
                try:
                    handler = container.handler or self._load(container)
                except BaseException:
                    box["init_failed"] = True
                    raise
                finally:
                    # The invocation (and its Timeout) starts once the init phase is over.
                    box["context"] = LambdaContext(self.function, region=self.region)
                    started.set()
                box["result"] = handler(payload, box["context"])
            except BaseException as exc:
                box["error"] = exc
            finally:
                container.lock.release()
                done.set()

        worker = threading.Thread(target=run, name=f"lambda-{self.function.logical_id}", daemon=True)
        t0 = time.monotonic()
        worker.start()
        if not started.wait(INIT_TIMEOUT_SECONDS):
            self._retire(container)
            raise FunctionTimeout(f"Init phase of {self.function.logical_id} exceeded "
                                  f"{INIT_TIMEOUT_SECONDS:.0f} s")
        context: LambdaContext = box["context"]
        limit = context.deadline
        gateway_limit = t0 + wait_seconds if wait_seconds is not None else None
        if gateway_limit is not None and gateway_limit < limit:
            if not done.wait(max(0.0, gateway_limit - time.monotonic())):
                raise IntegrationTimeout(f"{self.function.logical_id}: no answer within the "
                                         f"integration timeout of {wait_seconds:.1f} s")
        elif not done.wait(max(0.0, limit - time.monotonic())):
            self._retire(container)  # Lambda throws the timed-out environment away
            raise FunctionTimeout(f"{context.aws_request_id} Task timed out after "
                                  f"{self.function.timeout:.2f} seconds")
        if "error" in box:
            if box.get("init_failed"):
                self._retire(container)  # a failed init: the next call starts from scratch, as in Lambda
            raise box["error"]
        return _marshal(box.get("result"))

    def unload(self) -> None:
        """Forget the imported module (the next call is a cold start)."""
        container = self._container
        if container.module is not None and sys.modules.get(self.module_name) is container.module:
            sys.modules.pop(self.module_name, None)  # only ours: another gateway may use the same name
        self._retire(container)


# --------------------------------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------------------------------

@dataclass
class Reply:
    """An HTTP answer: status, header list (repeats allowed) and body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json_reply(status: int, message: str) -> Reply:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return Reply(status, [("Content-Type", "application/json")], body)


NOT_FOUND = (404, "Not Found")
UNAUTHORIZED = (401, "Unauthorized")
FORBIDDEN = (403, "Forbidden")
INTERNAL_ERROR = (500, "Internal Server Error")
SERVICE_UNAVAILABLE = (503, "Service Unavailable")
TOO_LARGE = (413, "Request Entity Too Large")


def _query_parameters(raw_query: str) -> dict[str, str] | None:
    """Decoded query parameters; repeated keys joined with "," (payload 2.0). None without a query."""
    if not raw_query:
        return None
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params or None


def _identity(auth: Authorizer, headers: Mapping[str, str], query: Mapping[str, str] | None) -> list[str] | None:
    """The authorizer's identity sources, headers then query strings; None when one is missing or blank
    (API Gateway answers 401 without calling the authorizer)."""
    identity: list[str] = []
    for name in auth.identity_headers:
        value = headers.get(name.lower(), "")
        if not value.strip():
            return None
        identity.append(value)
    for name in auth.identity_query_strings:
        value = (query or {}).get(name, "")
        if not value.strip():
            return None
        identity.append(value)
    return identity


def _authorizer_event(event: dict[str, Any], identity: list[str], route_arn: str) -> dict[str, Any]:
    """The REQUEST authorizer's payload-2.0 event for a request's event (keys in API Gateway's order)."""
    auth_event: dict[str, Any] = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": identity,
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
    }
    if "cookies" in event:
        auth_event["cookies"] = event["cookies"]
    auth_event["headers"] = event["headers"]
    if "queryStringParameters" in event:
        auth_event["queryStringParameters"] = event["queryStringParameters"]
    auth_event["requestContext"] = copy.deepcopy(event["requestContext"])
    if "pathParameters" in event:
        auth_event["pathParameters"] = event["pathParameters"]
    return auth_event


def _policy_allows(policy: Any, route_arn: str) -> bool:
    """IAM-policy authorizer answers: allowed when an Allow matches the route and no Deny does."""
    statements = (policy or {}).get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for st in statements:
        if not isinstance(st, dict):
            continue
        actions = st.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        resources = st.get("Resource") or []
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(route_arn, r) for r in resources):
            continue
        if str(st.get("Effect", "")).lower() == "deny":
            return False
        if str(st.get("Effect", "")).lower() == "allow":
            allowed = True
    return allowed


class LocalApiGateway:
    """API Gateway HTTP API (payload 2.0) + Lambda authorizer, served on loopback from the SAM template.

    `env` is applied to `os.environ` once, when the gateway starts (or on the first `invoke`): all
    functions share this process. Template environment values are applied first with setdefault
    semantics (a variable you exported wins over the template's value), then `env` overrides both.
    `stop()` restores what it changed.
    """

    def __init__(self, template_path: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 0,
                 env: Mapping[str, str] | None = None,
                 parameter_overrides: Mapping[str, str] | None = None) -> None:
        self.api = load_api(template_path, parameter_overrides=parameter_overrides)
        self.host = host
        self._requested_port = port
        self.env = dict(env or {})
        self.region = (self.env.get("AWS_REGION") or self.env.get("AWS_DEFAULT_REGION")
                       or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
        self.runtimes = {lid: FunctionRuntime(fn, region=self.region)
                         for lid, fn in self.api.functions.items()}
        self._auth_cache: dict[tuple, tuple[float, bool, dict[str, Any]]] = {}
        self._auth_cache_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._env_restore: dict[str, str | None] = {}
        self._env_applied: dict[str, str] = {}
        self._sys_path_added: list[str] = []

    # ---------------------------------------------------------------- lifecycle
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def routes(self) -> list[Route]:
        return self.api.routes

    def _prepare(self) -> None:
        """Apply the environment and the layers' sys.path entries, once."""
        with self._prepare_lock:
            if self._prepared:
                return
            wanted: dict[str, str] = {}
            for name, value in self.api.environment().items():
                if name not in os.environ:
                    wanted[name] = value
            wanted.update({k: str(v) for k, v in self.env.items()})
            for name, value in wanted.items():
                self._env_restore.setdefault(name, os.environ.get(name))
                os.environ[name] = value
            self._env_applied = wanted
            for fn in self.api.functions.values():
                for entry in (*fn.layer_dirs, fn.code_uri):
                    if str(entry) not in sys.path:
                        self._sys_path_added.append(str(entry))
            self._prepared = True

    def start(self) -> LocalApiGateway:
        """Serve on (host, port) in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._prepare()
        handler = type("_BoundHandler", (_RequestHandler,), {"gateway": self})
        server = _Server((self.host, self._requested_port), handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-apigw", daemon=True)
        self._thread.start()
        log.info("local API Gateway on %s (%d routes)", self.url, len(self.api.routes))
        return self

    def stop(self) -> None:
        """Stop serving, forget the imported handlers and restore the environment and sys.path."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for runtime in self.runtimes.values():
            runtime.unload()
        with self._prepare_lock:
            for name, previous in self._env_restore.items():
                if os.environ.get(name) != self._env_applied.get(name):
                    continue  # changed by someone else since: leave it
                if previous is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = previous
            self._env_restore.clear()
            for entry in self._sys_path_added:
                with contextlib.suppress(ValueError):
                    sys.path.remove(entry)
            self._sys_path_added.clear()
            self._prepared = False

    def __enter__(self) -> LocalApiGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- direct invocation
    def clear_authorizer_cache(self) -> None:
        """Forget cached authorizer answers (as a redeploy does); tests start from a clean cache."""
        with self._auth_cache_lock:
            self._auth_cache.clear()

    def invoke(self, function_logical_id: str, event: Any) -> Any:
        """Invoke a function directly (like `lambda invoke`), bypassing HTTP and the authorizer.

        Returns the handler's answer (after the JSON round trip Lambda does); raises what the handler
        raised, or FunctionTimeout / MalformedResponse.
        """
        if function_logical_id not in self.runtimes:
            raise KeyError(f"no function {function_logical_id!r} in {self.api.template_path.name}; "
                           f"known: {', '.join(sorted(self.runtimes))}")
        self._prepare()
        return self.runtimes[function_logical_id].invoke(event)

    # ---------------------------------------------------------------- request handling
    def handle(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
               *, source_ip: str = "127.0.0.1", protocol: str = "HTTP/1.1") -> Reply:
        """Answer one HTTP request exactly as API Gateway would (no sockets involved)."""
        raw_path, _, raw_query = target.partition("?")
        if raw_path.startswith(("http://", "https://")):  # absolute-form request target
            raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
        raw_path = raw_path or "/"
        request_id = str(uuid.uuid4())

        header_map: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in headers:
            lname = name.lower()
            if lname == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
                continue
            header_map[lname] = f"{header_map[lname]},{value}" if lname in header_map else value
        header_map.setdefault("x-forwarded-for", source_ip)
        header_map.setdefault("x-forwarded-proto", "http")
        if self._server is not None:
            header_map.setdefault("x-forwarded-port", str(self.port))
        header_map.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")

        matched = self.api.match(method, raw_path)
        if matched is None:
            return self._finish(_json_reply(*NOT_FOUND), request_id)
        route, path_params = matched

        now = datetime.now(UTC)
        host = header_map.get("host", f"{self.host}")
        request_context: dict[str, Any] = {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split(":")[0].split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": header_map.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": STAGE,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        query = _query_parameters(raw_query)

        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = header_map
        if query is not None:
            event["queryStringParameters"] = query
        event["requestContext"] = request_context
        if path_params:
            event["pathParameters"] = path_params
        if body:
            try:
                event["body"] = body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        else:
            event["isBase64Encoded"] = False

        if route.authorizer is not None:
            verdict = self._authorize(route, event, header_map, query)
            if isinstance(verdict, Reply):
                return self._finish(verdict, request_id)
            request_context["authorizer"] = {"lambda": verdict}

        runtime = self.runtimes[route.function_logical_id]
        try:
            result = runtime.invoke(event, wait_seconds=route.integration_timeout_ms / 1000)
        except IntegrationTimeout as exc:
            self._log_failure(route.function_logical_id, request_id, exc)
            return self._finish(_json_reply(*SERVICE_UNAVAILABLE), request_id)
        except BaseException as exc:
            self._log_failure(route.function_logical_id, request_id, exc)
            return self._finish(_json_reply(*INTERNAL_ERROR), request_id)
        try:
            reply = self._map_response(result)
        except MalformedResponse as exc:
            self._log_failure(route.function_logical_id, request_id, exc)
            reply = _json_reply(*INTERNAL_ERROR)
        return self._finish(reply, request_id)

    @staticmethod
    def _finish(reply: Reply, request_id: str) -> Reply:
        reply.headers.append(("apigw-requestid", request_id))
        return reply

    @staticmethod
    def _log_failure(function_id: str, request_id: str, exc: BaseException) -> None:
        print(f"[devstack.apigw] {function_id} failed (request {request_id}): "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        if not isinstance(exc, FunctionTimeout | IntegrationTimeout):
            traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()

    def _authorize(self, route: Route, event: dict[str, Any], headers: Mapping[str, str],
                   query: Mapping[str, str] | None) -> dict[str, Any] | Reply:
        """Run (or reuse the cached answer of) the route's authorizer: its context, or an error Reply."""
        auth = route.authorizer
        assert auth is not None
        identity = _identity(auth, headers, query)
        if identity is None:
            return _json_reply(*UNAUTHORIZED)

        cache_key = (auth.name, tuple(identity))
        use_cache = auth.ttl_seconds > 0 and bool(identity)
        if use_cache:
            with self._auth_cache_lock:
                hit = self._auth_cache.get(cache_key)
                if hit and hit[0] > time.monotonic():
                    return dict(hit[2]) if hit[1] else _json_reply(*FORBIDDEN)

        method = event["requestContext"]["http"]["method"]
        route_arn = (f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{API_ID}/{STAGE}/{method}"
                     f"{event['rawPath']}")
        auth_event = _authorizer_event(event, identity, route_arn)

        request_id = event["requestContext"]["requestId"]
        try:
            answer = self.runtimes[auth.function_logical_id].invoke(auth_event)
        except BaseException as exc:
            self._log_failure(auth.function_logical_id, request_id, exc)
            return _json_reply(*INTERNAL_ERROR)

        allowed: bool
        context: Any
        if auth.simple_responses:
            if not isinstance(answer, dict) or not isinstance(answer.get("isAuthorized"), bool):
                self._log_failure(auth.function_logical_id, request_id, MalformedResponse(
                    "authorizer answer must be {'isAuthorized': bool, 'context': {...}}, "
                    f"got {answer!r:.200}"))
                return _json_reply(*INTERNAL_ERROR)
            allowed, context = answer["isAuthorized"], answer.get("context") or {}
        else:
            if not isinstance(answer, dict) or not isinstance(answer.get("policyDocument"), dict):
                self._log_failure(auth.function_logical_id, request_id, MalformedResponse(
                    f"authorizer answer must hold a policyDocument, got {answer!r:.200}"))
                return _json_reply(*INTERNAL_ERROR)
            allowed = _policy_allows(answer["policyDocument"], route_arn)
            context = answer.get("context") or {}
        if not isinstance(context, dict):
            self._log_failure(auth.function_logical_id, request_id,
                              MalformedResponse(f"authorizer context must be a map, got {context!r:.200}"))
            return _json_reply(*INTERNAL_ERROR)

        if use_cache:
            with self._auth_cache_lock:
                self._auth_cache[cache_key] = (time.monotonic() + auth.ttl_seconds, allowed, dict(context))
        return dict(context) if allowed else _json_reply(*FORBIDDEN)

    @staticmethod
    def _map_response(result: Any) -> Reply:
        """Map a payload-2.0 Lambda answer to HTTP, as API Gateway does."""
        if not isinstance(result, dict) or "statusCode" not in result:
            # API Gateway infers: 200, application/json, the answer as the body.
            body = result if isinstance(result, str) else json.dumps(result)
            return Reply(200, [("Content-Type", "application/json")], body.encode())
        status = result["statusCode"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise MalformedResponse(f"statusCode must be an integer HTTP status, got {status!r}")
        headers: list[tuple[str, str]] = []
        for name, value in (result.get("headers") or {}).items():
            headers.append((str(name), _header_text(value)))
        for name, values in (result.get("multiValueHeaders") or {}).items():
            for value in values if isinstance(values, list) else [values]:
                headers.append((str(name), _header_text(value)))
        for cookie in result.get("cookies") or []:
            headers.append(("Set-Cookie", str(cookie)))
        body = result.get("body")
        if body is None:
            data = b""
        elif not isinstance(body, str):
            raise MalformedResponse(f"body must be a string, got {type(body).__name__}")
        elif result.get("isBase64Encoded"):
            try:
                data = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MalformedResponse("isBase64Encoded is true but body is not base64") from exc
        else:
            data = body.encode("utf-8")
        return Reply(status, headers, data)


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 makes concurrent clients retry their connects

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse-DNS lookup of the host (getfqdn), slow on some machines.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _RequestHandler(BaseHTTPRequestHandler):
    """Turns HTTP requests into `LocalApiGateway.handle` calls (HTTP/1.1, keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "LocalApiGateway/1.0"
    sys_version = ""
    gateway: LocalApiGateway  # set on the bound subclass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - " + format, self.address_string(), *args)

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            return max(0, int(raw))
        except ValueError:
            return -1

    def handle_expect_100(self) -> bool:
        length = self._content_length()
        if length is not None and length > MAX_REQUEST_BODY:
            self._send(_json_reply(*TOO_LARGE), close=True)
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes | None:
        """The request body, or None when it is over the 10 MB limit."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self._content_length()
        if length is None or length == 0:
            return b""
        if length < 0 or length > MAX_REQUEST_BODY:
            return None
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
        except ValueError:
            self._send(_json_reply(400, "Bad Request"), close=True)
            return
        if body is None:
            self._send(_json_reply(*TOO_LARGE), close=True)
            return
        try:
            reply = self.gateway.handle(self.command, self.path, self.headers.items(), body,
                                        source_ip=self.client_address[0], protocol=self.request_version)
        except Exception as exc:  # a bug in the emulator itself: still answer like API Gateway
            traceback.print_exception(exc, file=sys.stderr)
            reply = _json_reply(*INTERNAL_ERROR)
        self._send(reply)
        log.info("%s %s -> %d (%.1f ms)", self.command, self.path, reply.status,
                 (time.perf_counter() - started) * 1000)

    def _send(self, reply: Reply, *, close: bool = False) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def __getattr__(self, name: str):
        # Any other method (TRACE, PROPFIND, ...) is routed too: with no route for it API Gateway answers
        # 404 {"message":"Not Found"}, not http.server's 501 HTML page.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)
