"""Admin API authentication (node/admin/auth.py): who the caller is."""

from __future__ import annotations

import base64

import pytest

from node.admin.auth import AdminAuthFailed, authenticate, credentials
from node.softether.sha0 import hash_admin_password, hash_password
from node.state import model


def _config(server_type: int) -> model.Server:
    hub = model.Hub("HUB1", hub_type=model.HUB_STATIC if server_type else model.HUB_STANDALONE,
                    hashed_password=hash_admin_password("hub-pw"),
                    secure_password=hash_password("administrator", "hub-pw"))
    return model.Server(admin_password_hash=hash_admin_password("server-pw"), listeners=[], hubs=[hub],
                        farm=model.Farm(server_type=server_type))


@pytest.mark.parametrize("server_type", [model.SERVER_STANDALONE, model.SERVER_CONTROLLER])
def test_hub_administrator_on_a_standalone_server_or_the_controller(server_type):
    config = _config(server_type)
    assert authenticate(config, "hub1", "hub-pw") == "HUB1"
    assert authenticate(config, "", "server-pw") is None
    with pytest.raises(AdminAuthFailed):
        authenticate(config, "hub1", "wrong")


def test_a_member_takes_only_its_server_administrator():
    config = _config(model.SERVER_MEMBER)
    assert authenticate(config, "", "server-pw") is None
    with pytest.raises(AdminAuthFailed, match="controller"):
        authenticate(config, "hub1", "hub-pw")


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("headers,expected", [
    ({"authorization": _basic("administrator:pw")}, ("", "pw")),
    ({"authorization": _basic("AdMiNiStRaToR:pw")}, ("", "pw")),
    ({"authorization": _basic(":pw")}, ("", "pw")),
    ({"authorization": _basic("HUB1:hub-pw")}, ("HUB1", "hub-pw")),        # a hub administrator
    ({"authorization": _basic("HUB1:a:b")}, ("HUB1", "a:b")),              # colons after the first are the password's
    ({"x-vpnadmin-hubname": "administrator", "x-vpnadmin-password": "pw"}, ("", "pw")),
    ({"x-vpnadmin-hubname": "HUB1", "x-vpnadmin-password": "pw"}, ("HUB1", "pw")),
    # the password header decides which credentials count, as HttpParseBasicAuthHeader
    ({"x-vpnadmin-hubname": "HUB1", "authorization": _basic("administrator:pw")}, ("", "pw")),
    ({"x-vpnadmin-password": "pw", "authorization": _basic("HUB1:x")}, ("", "pw")),
    ({}, ("", "")),
])
def test_credentials_as_softether_reads_them(headers, expected):
    assert credentials(headers) == expected
