"""Every JSON-RPC method of a real vpnd, given random JSON values for every
field it reads, answers a JSON-RPC result or a SoftEther error -- never an
empty reply, never an HTTP error, never error 23 (an internal error is a
bug) -- while a good client keeps working (issue 13).

The field names are the ones the methods read (found in the source of the
module that defines each method, by its Params accessor, so a new field is
fuzzed without listing it here), with some of any other method's;
the values are any JSON, plus what JSON can smuggle to Python: lone
surrogates, NUL, NaN and Infinity, integers past 2^64, megabyte texts.
Left out: SetServerPassword (a random password locks the good client out,
as it should) and AddLocalBridge (it creates network devices on the host);
SetFarmSetting's controller is always loopback (a random name would be
looked up and connected to).

FUZZ_EXAMPLES calls per method (10 in CI, ~8 s in all, on one vpnd;
VPNCLUSTER_FUZZ_EXAMPLES for a long run).
"""

from __future__ import annotations

import http.client
import inspect
import json
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.admin.api import handle_admin_post
from node.admin.dispatch import METHODS
from node.softether.errors import Err
from node.state.tlscert import client_context
from tests.vpnd_proc import Vpnd

assert handle_admin_post   # importing the API registers every method

FUZZ_EXAMPLES = int(os.environ.get("VPNCLUSTER_FUZZ_EXAMPLES", "10"))
SKIPPED = {"setserverpassword", "addlocalbridge"}
_SUFFIX = {"str": "_str", "password": "_str", "utf": "_utf", "u32": "_u32", "u32_list": "_u32", "u64": "_u64",
           "bool": "_bool", "bin": "_bin", "dt": "_dt", "ip": "_ip"}


_READ = re.compile(r"\.(str|password|utf|u32_list|u32|u64|bool|bin|dt|ip)\(\s*\"(\w+)\"(?:,\s*\"(_\w+)\")?")


def _fields_of(method: str) -> list[str]:
    """Every `Name_suffix` read through Params in the module that defines `method`."""
    found = METHODS[method.lower()]
    handler = found.handler or found.coroutine
    text = inspect.getsource(inspect.getmodule(handler))   # type: ignore[arg-type]
    return sorted({name + (suffix or _SUFFIX[kind]) for kind, name, suffix in _READ.findall(text)} | {"HubName_str"})


METHOD_NAMES = sorted(m.name for k, m in METHODS.items() if k not in SKIPPED)
METHOD_FIELDS = {name: _fields_of(name) for name in METHOD_NAMES}
FIELDS = sorted({f for fields in METHOD_FIELDS.values() for f in fields})
HUBS = ["HUB1", "hub1", "NOPE"]
HOSTILE = st.sampled_from(["\ud800", "a\udfffb", "x\x00y", "1²", "١", "yes", "10000-01-01T00:00:00Z",
                           "1.2.3.4", "::1", "AAAA", "x" * 70_000, 2 ** 64, 10 ** 30, -1, 1e308,
                           float("nan"), float("inf"), float("-inf")])
SCALAR = (HOSTILE | st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.sampled_from([0, 1, 65536])
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)


PLAUSIBLE = {"_str": st.sampled_from(["user1", "HUB1", "127.0.0.1", "pw"]), "_utf": st.text(max_size=8),
             "_u32": st.sampled_from([1, 0, 443]), "_u64": st.integers(0, 2 ** 64 - 1),
             "_bool": st.booleans(), "_dt": st.sampled_from(["2030-01-01T00:00:00.000Z", 0, 1_900_000_000_000]),
             "_bin": st.sampled_from(["", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "AA=="]), "_ip": st.sampled_from(["0.0.0.0", "127.0.0.1"])}


@st.composite
def params_for(draw: st.DrawFn, method: str) -> dict[str, Any]:
    """The fields the method reads, absent or plausible (so the call gets
    past their checks), then one or two of them hostile or any JSON; plus
    maybe a field of another method."""
    fields = METHOD_FIELDS[method]
    params: dict[str, Any] = {}
    for field in fields:
        plausible = st.sampled_from(HUBS) if field == "HubName_str" else PLAUSIBLE[field[field.rindex("_"):]]
        if draw(st.integers(0, 5)):
            params[field] = draw(plausible)
    for field in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=2, unique=True)):
        params[field] = draw(HOSTILE if draw(st.integers(0, 3)) else JSON)
    params.update(draw(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=1)))
    if method == "SetFarmSetting":
        params["ControllerName_str"] = "127.0.0.1"
    return params


class _Client:
    """JSON-RPC over one kept-alive TLS connection (reopened when vpnd closes it)."""

    def __init__(self, port: int, password: str) -> None:
        self.port, self.password = port, password
        self.conn: http.client.HTTPSConnection | None = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        """One request. No retry: a connection vpnd drops while answering
        is the empty reply this test is about (one it closes on purpose says
        "Connection: close" first, and the next request opens a new one)."""
        if self.conn is None:
            self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=client_context())
        try:
            self.conn.request("POST", "/api/", body=body, headers={"X-VPNADMIN-PASSWORD": self.password})
            resp = self.conn.getresponse()
            data = resp.read()
        except (http.client.RemoteDisconnected, ConnectionError):
            self.close()
            return 0, b""
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        return resp.status, data

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"jsonrpc": "2.0", "id": "p", "method": method, "params": params}).encode()
        status, data = self.post(body)
        assert status == 200, (method, status, data[:200])
        assert data, f"{method}: an empty reply"
        return json.loads(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One vpnd for every method's examples, with a hub to work on."""
    started = Vpnd(tmp_path_factory.mktemp("property") / "node").start()
    good = _Client(started.port, started.password)
    assert "result" in good.call("CreateHub", {"HubName_str": "HUB1", "Online_bool": True})
    good.close()
    yield started
    started.stop()
    assert "Traceback" not in started.log(), started.log()[-3000:]


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_random_fields_get_a_result_or_a_softether_error(node, method):
    fuzzer, good = _Client(node.port, node.password), _Client(node.port, node.password)

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(params_for(method))
    def one(params: dict[str, Any]) -> None:
        doc = fuzzer.call(method, params)
        assert "result" in doc or "error" in doc, (method, doc)
        if "error" in doc:
            assert doc["error"]["code"] != Err.INTERNAL_ERROR, (method, params, doc)

    try:
        one()
        assert "result" in good.call("GetServerInfo", {})
        assert "result" in good.call("EnumHub", {})
    finally:
        fuzzer.close()
        good.close()
