import json

import pytest

from node.admin.jsonrpc import BadRequest, Request, RpcError, error_body, parse_request, result_body
from node.softether.errors import Err


@pytest.mark.parametrize("body,rid", [
    (b"", "0"), (b"{", "0"), (b"null", "0"), (b'"x"', "0"), (b"\xff", "0"),
    (b'{"id":"a","method":"Test"}', "a"),                       # no jsonrpc
    (b'{"jsonrpc":2.0,"id":"a","method":"Test"}', "a"),         # number, not "2.0"
    (b'{"jsonrpc":"2.0","id":"a"}', "a"),                       # no method
    (b'{"jsonrpc":"2.0","id":"a","method":""}', "a"),
    (b'{"jsonrpc":"2.0","id":"a","method":5}', "a"),
    (b'{"jsonrpc":"2.0","id":"a","method":"Test","params":[]}', "a"),
    (b'{"jsonrpc":"2.0","id":1,"method":"Test","params":"x"}', "0"),  # numeric id → "0"
    (b"[" * 200_000, "0"),                                      # nesting past the decoder's recursion
    (b'{"jsonrpc":"2.0","id":"a","method":"Test","params":' + b'{"a":' * 200_000, "0"),
])
def test_bad_requests(body, rid):
    with pytest.raises(BadRequest) as exc:
        parse_request(body)
    assert exc.value.id == rid
    assert exc.value.error.code == Err.INVALID_PARAMETER


def test_good_request_and_id_echo():
    assert parse_request(b'{"jsonrpc":"2.0","id":"7","method":"EnumHub","params":{}}') == \
        Request("7", "EnumHub", {})
    assert parse_request(b'{"jsonrpc":"2.0","id":7,"method":"EnumHub"}') == Request("0", "EnumHub", {})
    assert parse_request(b'{"jsonrpc":"2.0","method":"X","params":null}').params == {}


def test_bodies_are_softether_shaped():
    assert json.loads(result_body("1", {"a_u32": 1})) == {"result": {"a_u32": 1}, "jsonrpc": "2.0", "id": "1"}
    doc = json.loads(error_body("z", RpcError(Err.HUB_NOT_FOUND, "no hub 'x'")))
    assert doc["id"] == "z" and doc["error"]["code"] == 8
    assert doc["error"]["message"].startswith("Error code 8: ")


def test_an_answer_carrying_a_lone_surrogate_is_still_an_answer():
    """Issue 13 finding 1: a note with a lone surrogate, stored before the API
    refused them, made every answer naming it fail to encode (an empty reply)."""
    body = result_body("1", {"Note_utf": "a\ud800b"})
    assert json.loads(body)["result"]["Note_utf"] == "a\ud800b"
    assert result_body("1", {"Note_utf": "é"}) == '{"result":{"Note_utf":"é"},"jsonrpc":"2.0","id":"1"}'.encode()
