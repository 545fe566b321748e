"""Response bodies are encoded with orjson, and still when orjson refuses a value (acexport.api.encode)."""

import json

from acexport.api import encode, ok


def test_a_page_encodes_to_the_same_json_as_the_standard_library():
    body = {"success": True, "data": [{"id": "1", "email": "zoë@example.com", "score": 1.5, "tags": [], "x": None}],
            "meta": {"total": 1, "nested": {"a": [1, 2, {"b": False}]}}}
    text = encode(body)
    assert json.loads(text) == body
    assert "zoë" in text            # UTF-8 as JSON.stringify writes it, not \\u00eb


def test_an_integer_beyond_64_bits_from_ac_still_answers():
    """orjson refuses integers outside 64 bits; a hostile AC host may send one: json takes over."""
    huge = 2 ** 70
    assert json.loads(encode({"data": [{"id": huge}]})) == {"data": [{"id": huge}]}


def test_the_success_envelope_is_encoded_with_it():
    reply = ok([{"name": "Björn"}], total=1)
    assert json.loads(reply.body) == {"success": True, "message": "SUCCESS", "data": [{"name": "Björn"}], "total": 1}


def test_routes_that_return_a_dict_are_encoded_by_it_too():
    """The export routes return a dict; the resolver encodes it with `encode` (UTF-8, not \\u escapes)."""
    from acexport.api import http_app

    from tests.conftest import LambdaContext

    app = http_app()

    @app.get("/page")
    def page():
        return {"success": True, "data": [{"name": "Zoë", "id": 2 ** 70}]}

    event = {"version": "2.0", "routeKey": "GET /page", "rawPath": "/page", "rawQueryString": "", "headers": {},
             "requestContext": {"http": {"method": "GET", "path": "/page"}, "stage": "$default"},
             "isBase64Encoded": False}
    reply = app.resolve(event, LambdaContext())
    assert reply["statusCode"] == 200 and "Zoë" in reply["body"]
    assert json.loads(reply["body"])["data"] == [{"name": "Zoë", "id": 2 ** 70}]
