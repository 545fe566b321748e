"""docs/openapi.yaml stays the truth: it is a valid OpenAPI document, it has exactly the routes of
template.yaml and exactly the filters and orders of acexport.ac.resources, and the response check every
integration test runs (tests/openapi_check.py) really fails responses that break it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import yaml
from acexport.ac.resources import RESOURCES
from openapi_spec_validator import validate
from requests.structures import CaseInsensitiveDict

from devstack.apigw import load_api
from tests.integration.conftest import BASE
from tests.openapi_check import SPEC_LOCAL_SERVER, SPEC_PATH, check_response

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def _operations(spec: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item if method in METHODS}


def test_the_spec_is_a_valid_openapi_document(spec):
    validate(spec)


def test_every_route_of_the_template_is_in_the_spec_and_back(spec):
    routes = {(route.method, route.path) for route in load_api(ROOT / "template.yaml").routes}
    documented = _operations(spec)
    missing = sorted(routes - documented)
    extra = sorted(documented - routes)
    assert not missing, f"routes in template.yaml missing from docs/openapi.yaml: {missing}"
    assert not extra, f"operations in docs/openapi.yaml that template.yaml does not route: {extra}"


def _parameters(spec: dict, operation: dict) -> list[dict]:
    found = []
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            name = parameter["$ref"].rsplit("/", 1)[-1]
            parameter = spec["components"]["parameters"][name]
        found.append(parameter)
    return found


def _schema(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_filters_and_orders_are_exactly_what_the_resource_supports(spec, resource):
    operation = spec["paths"][f"{BASE}/export/{resource}"]["get"]
    query = {p["name"]: p for p in _parameters(spec, operation) if p["in"] == "query"}
    filters = {name[len("filters["):-1] for name in query if name.startswith("filters[")}
    orders = {name[len("orders["):-1] for name in query if name.startswith("orders[")}
    assert filters == set(RESOURCES[resource].filters), "docs/openapi.yaml filters differ from acexport.ac.resources"
    assert orders == set(RESOURCES[resource].orders), "docs/openapi.yaml orders differ from acexport.ac.resources"
    for name in (n for n in query if n.startswith("orders[")):
        assert _schema(spec, query[name]["schema"])["enum"] == ["ASC", "DESC"], name
    # custom fields: `filters` and `orders` as deepObjects of any name (docs/query.md, "Custom fields")
    assert set(query) == {"page", "limit", "filters", "orders"} | {f"filters[{f}]" for f in filters} | {
        f"orders[{o}]" for o in orders}
    assert query["filters"]["style"] == query["orders"]["style"] == "deepObject"
    assert not any(p.get("required") for p in query.values())


# ---- the response check fails what breaks the spec -------------------------------------------------

def _reply(method: str, path: str, status: int, body, headers: dict | None = None) -> requests.Response:
    reply = requests.Response()
    reply.status_code = status
    reply._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    reply.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})})
    reply.request = requests.Request(method, SPEC_LOCAL_SERVER + BASE + path).prepare()
    reply.url = reply.request.url
    return reply


PAGE = {"success": True, "message": "SUCCESS", "data": [{"id": "1", "name": "Acme", "customFields": {"Tier": "A"}}],
        "pagination": {"page": "1", "limit": "20", "total": "1", "next_page": None, "prev_page": None}}
CONTACT = {"id": "7", "email": "a@b.c", "fieldValues": [], "customFields": {"Interests": ["a", "b"], "Size": None},
           "customFieldsByTag": {}, "tags": ["VIP"], "lists": [{"id": "1", "name": "Newsletter", "status": "1"}]}
STUB = {"id": "2", "isDisabled": 1, "title": "Demo Requested", "pipelineTitle": None, "stageTitle": None,
        "ownerName": None, "customFields": None}


@pytest.mark.parametrize(("method", "path", "status", "body", "headers"), [
    ("GET", "/export/accounts", 200, PAGE, None),
    ("GET", "/export/contacts", 200, {**PAGE, "data": [CONTACT]}, None),
    ("GET", "/export/deals", 200, {**PAGE, "data": [{"id": "1", "pipelineTitle": None, "stageTitle": "Won",
                                                      "ownerName": "Demo User", "customFields": {}}, STUB]}, None),
    ("GET", "/export/deals", 403, {"success": False, "errno": 403,
                                   "message": "The ActiveCampaign user of this connection does not have permission "
                                              "to view deals"}, None),
    ("GET", "/auth", 200, {"success": True, "message": "SUCCESS", "data": {"connected": False}}, None),
    ("DELETE", "/auth", 200, {"success": True, "message": "SUCCESS"}, None),
    ("DELETE", "/auth", 404, {"success": False, "errno": 404, "message": "Unauthorised Access"}, None),
    ("GET", "/export/contacts", 403, {"success": False, "errno": 403, "message": "Invalid base_url or api_key",
                                      "reconnect": True}, None),
    ("GET", "/export/deals", 403, {"message": "Forbidden"}, None),
    ("POST", "/auth", 401, {"message": "Unauthorized"}, None),
    ("GET", "/export/contacts", 503, {"success": False, "errno": 503, "message": "x", "retry_after": 30},
     {"Retry-After": "30"}),
    ("GET", "/no/such/route", 404, {"message": "Not Found"}, None),
    ("PUT", "/auth", 404, {"message": "Not Found"}, None),
])
def test_conforming_responses_pass(method, path, status, body, headers):
    check_response(_reply(method, path, status, body, headers))


@pytest.mark.parametrize(("why", "method", "path", "status", "body", "headers"), [
    ("total as a number", "GET", "/export/accounts", 200,
     {**PAGE, "pagination": {**PAGE["pagination"], "total": 1}}, None),
    ("a record without its id", "GET", "/export/accounts", 200, {**PAGE, "data": [{"name": "Acme"}]}, None),
    ("contacts without customFields", "GET", "/export/contacts", 200,
     {**PAGE, "data": [{k: v for k, v in CONTACT.items() if k != "customFields"}]}, None),
    ("deals without stageTitle", "GET", "/export/deals", 200, {**PAGE, "data": [{"id": "1", "pipelineTitle": "P"}]},
     None),
    ("the key in the status", "GET", "/auth", 200,
     {"success": True, "message": "SUCCESS", "data": {"connected": False, "api_key": "k"}}, None),
    ("a status the route does not declare", "GET", "/auth", 404,
     {"success": False, "errno": 404, "message": "Unauthorised Access"}, None),
    ("a bare 500", "GET", "/export/contacts", 500, {"success": False, "errno": 500, "message": "Internal error"},
     None),
    ("errno not the status", "POST", "/auth", 409, {"success": False, "errno": 400, "message": "x"}, None),
    ("503 without Retry-After", "GET", "/auth", 503, {"success": False, "errno": 503, "message": "x"}, None),
    ("success true on an error", "POST", "/auth", 400, {"success": True, "errno": 400, "message": "x"}, None),
    ("not JSON", "GET", "/export/deals", 502, "<html>Bad gateway</html>", {"Content-Type": "text/html"}),
    ("an unknown route answering", "GET", "/export/tags", 200, PAGE, None),
])
def test_breaking_responses_fail(why, method, path, status, body, headers):
    with pytest.raises(AssertionError):
        check_response(_reply(method, path, status, body, headers))


# ---- inputs found while writing the spec: each was a 500 or reached AC, now a 400 before any AC call ----

@pytest.mark.parametrize(("resource", "query"), [
    ("contacts", "page=%C2%B2"),                       # "²": isdigit() but not int() -> was a 500
    ("contacts", "limit=%C2%B2"),
    ("contacts", "page=%D9%A1%D9%A2"),                 # Arabic-Indic "١٢"
    ("deals", "filters[stage]=%C2%B2"),                # was sent to AC, which ignores it
    ("deals", "filters[owner]=--5"),
    ("deals", "filters[stage]=-1"),
    ("contacts", "filters[listid]=%D9%A1"),
    ("deals", "filters[minimum_value]=nan"),           # float() took nan, inf and 1e308
    ("deals", "filters[maximum_value]=inf"),
    ("deals", "filters[minimum_value]=1e308"),
    ("deals", "filters[minimum_value]=-1"),
])
@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_odd_numbers_are_400_before_any_ac_call(api, resource, query):
    api.connect()
    api.sandbox.requests.clear()
    reply = api.export(resource, query)
    assert reply.status_code == 400, reply.text
    assert reply.json()["parameter"] in query.replace("%5B", "[").replace("%5D", "]")
    assert api.sandbox.count() == 0


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_amounts_in_whole_dollars_reach_ac(api):
    """AC takes whole dollars (an integer "In USD with dollar portion"); cents are refused before any call."""
    api.connect()
    reply = api.export("deals", "filters[minimum_value]=1500&limit=100")
    assert reply.status_code == 200, reply.text
    deals = reply.json()["data"]
    assert deals and all(int(d["value"]) >= 150000 for d in deals)
    api.sandbox.requests.clear()
    cents = api.export("deals", "filters[minimum_value]=1500.50")
    assert cents.status_code == 400 and "whole number of dollars" in cents.json()["message"]
    assert api.sandbox.count() == 0


def test_a_deeply_nested_body_is_400(api):
    reply = api.call("POST", "/auth", data=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"] == "Request body must be a JSON object"
