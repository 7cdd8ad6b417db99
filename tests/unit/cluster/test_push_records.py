"""The records a configuration sync carries (controller/messages.py HubConfig,
UserConfig) and the config records they come from and become
(node/state/model.py Hub, User) stay one shape: same fields, same types,
every field carried through hub_configs -> the bus -> hub_from_push."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from controller import messages as msg
from node.cluster.controller_bus import HubConfigCache, hub_configs
from node.cluster.member_role import hub_from_push
from node.state import model
from vpnbus.envelope import Envelope, decode, encode
from vpnbus.records import RecordError

PAIRS = [(model.Hub, msg.HubConfig), (model.User, msg.UserConfig)]
SAME_RECORD = {msg.HubConfig: model.Hub, msg.UserConfig: model.User}


def _fields(cls: type) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _as_model_type(tp: typing.Any) -> typing.Any:
    """A message field type with message records replaced by their model records."""
    args = typing.get_args(tp)
    if args:
        return typing.get_origin(tp)[tuple(_as_model_type(a) for a in args)]
    return SAME_RECORD.get(tp, tp)


@pytest.mark.parametrize("config_cls,message_cls", PAIRS, ids=lambda c: c.__name__)
def test_config_and_message_records_have_the_same_fields(config_cls, message_cls):
    config_fields, message_fields = _fields(config_cls), _fields(message_cls)
    assert list(config_fields) == list(message_fields)
    assert config_fields == {name: _as_model_type(tp) for name, tp in message_fields.items()}


def _controller_config() -> model.Server:
    users = [model.User("alice", auth_type=model.AUTH_PASSWORD, hashed_key=b"\x03" * 20, group="staff",
                        realname="Alice", note="first", created_time=1_700_000_001.5,
                        updated_time=1_700_000_002.25, expire_time=1_900_000_000.0),
             model.User("guest", auth_type=model.AUTH_ANONYMOUS, created_time=1_700_000_003.0)]
    return model.Server(admin_password_hash=b"\x01" * 20, listeners=["127.0.0.1:5555"], hubs=[
        model.Hub("HUB1", hub_type=model.HUB_STATIC, online=False, max_session=8, no_enum=True,
                  hashed_password=b"\x04" * 20, secure_password=b"\x05" * 20, created_time=1_700_000_000.0,
                  users=users),
        model.Hub("DYN", hub_type=model.HUB_DYNAMIC, created_time=1_700_000_010.0),
        model.Hub("LOCAL", hub_type=model.HUB_STANDALONE),
    ])


def test_a_pushed_hub_arrives_whole_with_its_users_times():
    config = _controller_config()
    push = msg.ConfigChunk(sync_id=1, serial=4, index=0, count=1, hubs=hub_configs(config))
    received = decode(encode(Envelope(message=push, id=1))).message
    hubs = [hub_from_push(h) for h in received.hubs]
    assert hubs == config.hubs[:2]        # the standalone hub is not a cluster hub
    alice = hubs[0].find_user("alice")
    assert alice is not None
    assert (alice.created_time, alice.updated_time) == (1_700_000_001.5, 1_700_000_002.25)


def test_a_model_field_the_message_lacks_is_refused_not_dropped():
    @dataclasses.dataclass(frozen=True)
    class NewUser(model.User):
        last_login_time: float = 0.0

    config = _controller_config()
    config.hubs[0].users[0] = NewUser("bob", last_login_time=5.0)
    with pytest.raises(RecordError, match=r"undeclared field\(s\) \['last_login_time'\]"):
        hub_configs(config)


def test_the_record_cache_converts_only_the_hubs_that_changed():
    cache = HubConfigCache()
    config = _controller_config()
    first = cache.hub_configs(config)
    assert first == hub_configs(config)
    changed = model.clone(config)  # as NodeState.change makes the next config
    changed.hubs[0].users.append(model.User("bob", hashed_key=b"\x06" * 20))
    second = cache.hub_configs(changed)
    assert second == hub_configs(changed)
    assert second[0] is not first[0] and second[1] is first[1]  # DYN unchanged: the same record
