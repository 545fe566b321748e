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
