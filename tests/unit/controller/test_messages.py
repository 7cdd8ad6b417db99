import dataclasses

import msgpack
import pytest

import controller.messages as m
from vpnbus.envelope import REGISTRY, BadMessage, Envelope, decode, encode

SAMPLES = [
    m.JoinHello(version=1, nonce=b"n" * 32, hostname="h", public_ip="", public_ports=[443, 5555],
                weight=100, max_sessions=100000, server_cert=b"\x30\x82"),
    m.JoinChallenge(nonce=b"c" * 32),
    m.JoinAccepted(member_id=7, controller_hostname="ctl", proof=b"p" * 32),
    m.ConfigChunk(sync_id=2, serial=3, index=0, count=1, hubs=[m.HubConfig(
        name="H", hub_type=1, online=True, max_session=0, no_enum=False, hashed_password=b"x" * 20,
        secure_password=b"y" * 20, created_time=1.5,
        users=[m.UserConfig(name="u", auth_type=1, hashed_key=b"k" * 20)])]),
    m.ConfigDelta(base_serial=3, serial=4, changes=[
        m.HubChange(hub="H", users_put=[m.UserConfig(name="v", auth_type=1, hashed_key=b"k" * 20)],
                    users_deleted=["u"]),
        m.HubChange(hub="G", deleted=True)]),
    m.ConfigAck(serial=4),
    m.ChunkAck(sync_id=2, next_index=1, serial=3),
    m.StatusReport(points=99900, sessions=1, tcp_connections=1, max_sessions=100000,
                   hubs=[m.HubReport(name="H", dynamic=False, sessions=1)]),
    m.CreateTicket(hub="H", ticket=b"t" * 20, user_name="u", real_user_name="u", group="",
                   session_name="SID-U-1", policy={"MaxConnection": 32, "Access": True, "Ver3": False}),
    m.Ack(),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x).__name__)
def test_round_trip(msg):
    env = Envelope(message=msg, id=5, reply_to=None)
    assert decode(encode(env)) == env


def test_every_message_is_registered_and_frozen():
    for name in dir(m):
        cls = getattr(m, name)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            assert cls in REGISTRY, name
            assert cls.__dataclass_params__.frozen, name


def test_mistyped_and_missing_fields_are_refused():
    good = {"v": 1, "type": "cluster.join_accepted", "id": 1, "reply_to": None,
            "body": {"member_id": 7, "controller_hostname": "ctl", "proof": b"p"}}
    assert decode(msgpack.packb(good)).message == m.JoinAccepted(member_id=7, controller_hostname="ctl", proof=b"p")
    for body in ({"member_id": "7", "controller_hostname": "ctl", "proof": b"p"},
                 {"member_id": 7, "controller_hostname": "ctl"},
                 {"member_id": 7, "controller_hostname": "ctl", "proof": b"p", "extra": 1}):
        with pytest.raises(BadMessage):
            decode(msgpack.packb(dict(good, body=body)))
