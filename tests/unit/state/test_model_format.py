"""node/state/model.py: the on-disk config format stays the one earlier
versions wrote (bytes as hex text, unknown keys skipped), now through the
shared record codec (vpnbus/records.py)."""

import json

import pytest

from node.state import model
from node.state.node_state import CONFIG_NAME, NodeState
from node.state.store import ConfigCorrupt
from vpnbus.records import RecordError

# Written by the config code before the shared codec (json.dumps, sort_keys):
# every record type, every field, bytes as hex, an empty hash.
TODAYS_FILE = (
    '{"admin_password_hash": "000102030405060708090a0b0c0d0e0f10111213", "bridges": [{"device": "tap0",'
    ' "hub": "HUB1", "tap": true}], "farm": {"bus_port": 6000, "controller_host": "ctl.example",'
    ' "controller_only": true, "controller_port": 5555, "member_password_hash":'
    ' "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "public_ip": "192.0.2.1", "public_ports": [443, 992],'
    ' "server_type": 1, "weight": 150}, "format": "vpncluster-config", "hubs": [{"created_time":'
    ' 1700000000.25, "hashed_password": "0101010101010101010101010101010101010101", "hub_type": 1,'
    ' "max_session": 10, "name": "HUB1", "no_enum": true, "online": false, "secure_password":'
    ' "0202020202020202020202020202020202020202", "users": [{"auth_type": 1, "created_time": 1700000001.5,'
    ' "expire_time": 0.0, "group": "g", "hashed_key": "0303030303030303030303030303030303030303",'
    ' "name": "alice", "note": "n", "realname": "Alice", "updated_time": 1700000002.5}, {"auth_type": 0,'
    ' "created_time": 0.0, "expire_time": 0.0, "group": "", "hashed_key": "", "name": "anon", "note": "",'
    ' "realname": "", "updated_time": 0.0}]}], "listeners": ["127.0.0.1:5555", "[::1]:443"], "serial": 7,'
    ' "version": 1}\n'
)

EXPECTED = model.Server(
    admin_password_hash=bytes(range(20)), listeners=["127.0.0.1:5555", "[::1]:443"], serial=7,
    farm=model.Farm(server_type=1, weight=150, controller_only=True, controller_host="ctl.example",
                    controller_port=5555, member_password_hash=b"\xaa" * 20, public_ip="192.0.2.1",
                    public_ports=[443, 992], bus_port=6000),
    hubs=[model.Hub("HUB1", hub_type=1, online=False, max_session=10, no_enum=True,
                    hashed_password=b"\x01" * 20, secure_password=b"\x02" * 20, created_time=1700000000.25,
                    users=[model.User("alice", auth_type=1, hashed_key=b"\x03" * 20, group="g",
                                      realname="Alice", note="n", created_time=1700000001.5,
                                      updated_time=1700000002.5),
                           model.User("anon", auth_type=0)])],
    bridges=[model.Bridge("HUB1", "tap0", tap=True)])


def test_a_state_dir_written_before_the_shared_codec_loads(tmp_path):
    (tmp_path / CONFIG_NAME).write_text(TODAYS_FILE)
    state = NodeState.open(tmp_path)
    assert state.config == EXPECTED
    assert type(state.config.hubs[0].users[0].hashed_key) is bytes


# Fields added since (issue 12: the scrape credential; the TLS cipher name)
# are written with their default and read as it from a file that predates them.
WRITTEN_NOW = TODAYS_FILE.replace(
    ' "farm":', ' "cipher_name": "~DEFAULT~", "farm":').replace(
    ' "serial": 7,', ' "metrics_password_hash": "", "serial": 7,')


def test_the_file_written_is_byte_for_byte_todays(tmp_path):
    # Plus the fields added since (farm.drains), in their place among the sorted keys.
    config = model.clone(EXPECTED)
    config.farm.drains = [model.Drain(member_key=b"\x04" * 32, rate=7)]
    NodeState.create(tmp_path, config)
    drains = '"drains": [{"member_key": "' + "04" * 32 + '", "rate": 7}], '
    assert (tmp_path / CONFIG_NAME).read_text() == WRITTEN_NOW.replace('"controller_port": 5555, ',
                                                                       '"controller_port": 5555, ' + drains)


def test_unknown_keys_are_skipped_and_int_times_widen():
    doc = json.loads(TODAYS_FILE)
    doc["retired_setting"] = 1
    doc["hubs"][0]["users"][0]["created_time"] = 1700000001
    doc["hubs"][0]["users"][0]["old_field"] = "x"
    server = model.from_doc(doc)
    assert server.hubs[0].users[0].created_time == 1700000001.0
    assert type(server.hubs[0].users[0].created_time) is float


@pytest.mark.parametrize("path,value,problem", [
    (("admin_password_hash",), 7, "config.admin_password_hash: expected hex text, got int"),
    (("admin_password_hash",), "zz", "config.admin_password_hash: not hex"),
    (("farm", "weight"), True, "config.farm.weight: expected int, got bool"),
    (("farm", "public_ports"), [443, "992"], "config.farm.public_ports[1]: expected int, got str"),
    (("hubs", 0, "users", 1, "name"), None, "config.hubs[0].users[1].name: expected str, got NoneType"),
    (("bridges", 0), [], "config.bridges[0]: expected dict, got list"),
])
def test_a_bad_value_is_refused_naming_its_path(path, value, problem):
    doc = json.loads(TODAYS_FILE)
    inner = doc
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    with pytest.raises(RecordError) as exc:
        model.from_doc(doc)
    assert str(exc.value) == problem and isinstance(exc.value, ValueError)


def test_a_damaged_file_is_refused_naming_file_and_field(tmp_path):
    doc = json.loads(TODAYS_FILE)
    del doc["hubs"][0]["users"][0]["name"]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(doc))
    with pytest.raises(ConfigCorrupt) as exc:
        NodeState.open(tmp_path)
    assert "config.hubs[0].users[0].name: missing" in str(exc.value)
    assert str(tmp_path / CONFIG_NAME) in str(exc.value)
