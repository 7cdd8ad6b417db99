"""Raw JSON-RPC admin calls to a vpnd on 127.0.0.1, as documents: unlike
tools/vpnctl/client.py `AdminClient`, an error comes back as the decoded
`{"error": ...}` document (or `{"http_status": N}`), so tests and labs can
look at exactly what the server answered."""

from __future__ import annotations

import http.client
import json
from typing import Any

from node.state.tlscert import client_context


def rpc_raw(port: int, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, bytes]:
    """POST /api/ and return (HTTP status, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=client_context())
    try:
        conn.request("POST", "/api/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def rpc(port: int, password: str, method: str, params: dict[str, Any] | None = None,
        hub: str = "") -> dict[str, Any]:
    """One JSON-RPC call; returns the decoded document (result or error)."""
    body = json.dumps({"jsonrpc": "2.0", "id": "t", "method": method, "params": params or {}}).encode()
    status, data = rpc_raw(port, body, {"X-VPNADMIN-PASSWORD": password, "X-VPNADMIN-HUBNAME": hub})
    if status != 200:
        return {"http_status": status}
    return json.loads(data)
