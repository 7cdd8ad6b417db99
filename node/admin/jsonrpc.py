"""JSON-RPC 2.0 framing with SoftEther's conventions (Admin.c JsonRpcProcPost).

- `jsonrpc` must be "2.0", `method` a non-empty string, `params` an object
  (absent is read as {}); anything else answers ERR_INVALID_PARAMETER (38).
- The response echoes `id` only when it is a JSON string; any other id comes
  back as "0", as SoftEther does.
- Errors travel as HTTP 200 with {"error": {"code": n, "message": "Error
  code n: text"}}.
Pure functions: bytes in, bytes out; the listener does the HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from node.softether.errors import Err, error_text


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    method: str
    params: dict[str, Any]


class RpcError(Exception):
    """An admin call failed with a SoftEther error code; the reply carries it."""

    def __init__(self, code: int, detail: str = ""):
        self.code = int(code)
        self.detail = detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"Error code {self.code}: {error_text(self.code)}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True, slots=True)
class BadRequest(Exception):
    """The body is not a usable JSON-RPC request; `id` is what could be read."""

    id: str
    error: RpcError


def _echo_id(raw: Any) -> str:
    return raw if isinstance(raw, str) else "0"


def parse_request(body: bytes) -> Request:
    """Decode one request; raises BadRequest with the error to answer."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("0", RpcError(Err.INVALID_PARAMETER, f"not JSON: {exc}")) from None
    except RecursionError:
        # json's decoder recurses per nesting level; "[[[[..." is garbage, not a bug here
        raise BadRequest("0", RpcError(Err.INVALID_PARAMETER, "JSON nested too deeply")) from None
    if not isinstance(doc, dict):
        raise BadRequest("0", RpcError(Err.INVALID_PARAMETER, "the request is not a JSON object"))
    rid = _echo_id(doc.get("id"))
    if doc.get("jsonrpc") != "2.0":
        raise BadRequest(rid, RpcError(Err.INVALID_PARAMETER, 'jsonrpc must be "2.0"'))
    method = doc.get("method")
    if not isinstance(method, str) or not method:
        raise BadRequest(rid, RpcError(Err.INVALID_PARAMETER, "method must be a non-empty string"))
    params = doc.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BadRequest(rid, RpcError(Err.INVALID_PARAMETER, "params must be an object"))
    return Request(rid, method, params)


def _dump(doc: dict[str, Any]) -> bytes:
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate stored before the API refused them (issue 13):
        # JSON's \u escapes carry it, so the caller still gets an answer
        return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def result_body(rid: str, result: dict[str, Any]) -> bytes:
    return _dump({"result": result, "jsonrpc": "2.0", "id": rid})


def error_body(rid: str, error: RpcError) -> bytes:
    return _dump({"error": {"code": error.code, "message": error.message},
                  "jsonrpc": "2.0", "id": rid})
