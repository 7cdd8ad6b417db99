"""Hub user admin methods: CreateUser, SetUser, GetUser, EnumUser, DeleteUser.

Password (1) and anonymous (0) authentication are supported; the password is
stored only as SoftEther stores it, HashPassword(name, pw) = SHA0(pw || NAME).
Certificate, RADIUS and NT domain types answer ERR_NOT_SUPPORTED.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from node.admin.dispatch import AdminContext, Scope, admin_method
from node.admin.fields import traffic
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import Params, dt
from node.admin.methods_hub import _SAFE, MAX_NAME_LEN, existing_hub, refuse_on_member
from node.softether.errors import Err
from node.softether.sha0 import hash_password
from node.state import model

_USER_CHARS = _SAFE | {"@"}
SUPPORTED_AUTH = (model.AUTH_ANONYMOUS, model.AUTH_PASSWORD)


def check_user_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LEN or not set(name) <= _USER_CHARS:
        raise RpcError(Err.INVALID_PARAMETER, f"invalid user name {name!r}")
    return name


def _existing_user(hub: model.Hub, name: str) -> model.User:
    user = hub.find_user(name)
    if user is None:
        raise RpcError(Err.OBJECT_NOT_FOUND, f"no user {name!r} on hub {hub.name!r}")
    return user


def _with_fields(user: model.User, p: Params) -> model.User:
    """`user` with the fields of a CreateUser/SetUser call (users are immutable)."""
    auth_type = p.u32("AuthType")
    if auth_type not in SUPPORTED_AUTH:
        raise RpcError(Err.NOT_SUPPORTED, f"authentication type {auth_type} is not supported "
                                          "(use 0 anonymous or 1 password)")
    hashed_key = user.hashed_key
    if auth_type == model.AUTH_PASSWORD:
        plain, hashed = p.password("Auth_Password"), p.bin("HashedKey")
        if plain:
            hashed_key = hash_password(user.name, plain)
        elif any(hashed):
            if len(hashed) != 20:
                raise RpcError(Err.INVALID_PARAMETER, "HashedKey_bin must be 20 bytes")
            hashed_key = hashed
        elif not hashed_key:
            # SoftEther stores the hash of an empty password; same here.
            hashed_key = hash_password(user.name, "")
    return dataclasses.replace(user, auth_type=auth_type, group=p.str("GroupName"), realname=p.utf("Realname"),
                               note=p.utf("Note"), expire_time=p.dt("ExpireTime"), hashed_key=hashed_key,
                               updated_time=time.time())


def user_struct(hub: model.Hub, user: model.User) -> dict[str, Any]:
    return {
        "HubName_str": hub.name,
        "Name_str": user.name,
        "GroupName_str": user.group,
        "Realname_utf": user.realname,
        "Note_utf": user.note,
        "CreatedTime_dt": dt(user.created_time),
        "UpdatedTime_dt": dt(user.updated_time),
        "ExpireTime_dt": dt(user.expire_time),
        "AuthType_u32": user.auth_type,
        "Auth_Password_str": "",
        "NumLogin_u32": 0,
        "UsePolicy_bool": False,
        **traffic(None),
    }


@admin_method("CreateUser", Scope.HUB)
def create_user(ctx: AdminContext, p: Params) -> dict[str, Any]:
    refuse_on_member(ctx)
    hub_name, name = p.str("HubName"), check_user_name(p.str("Name"))

    def apply(config: model.Server) -> dict[str, Any]:
        hub = existing_hub(config, hub_name)
        if hub.find_user(name):
            raise RpcError(Err.USER_ALREADY_EXISTS, f"user {name!r} exists on hub {hub.name!r}")
        user = _with_fields(model.User(name=name, created_time=time.time()), p)
        hub.users.append(user)
        return user_struct(hub, user)
    return ctx.server.state.change(apply)


@admin_method("SetUser", Scope.HUB)
def set_user(ctx: AdminContext, p: Params) -> dict[str, Any]:
    refuse_on_member(ctx)
    hub_name, name = p.str("HubName"), p.str("Name")

    def apply(config: model.Server) -> dict[str, Any]:
        hub = existing_hub(config, hub_name)
        old = _existing_user(hub, name)
        user = _with_fields(old, p)
        hub.users[hub.users.index(old)] = user
        return user_struct(hub, user)
    return ctx.server.state.change(apply)


@admin_method("GetUser", Scope.HUB)
def get_user(ctx: AdminContext, p: Params) -> dict[str, Any]:
    hub = existing_hub(ctx.server.state.config, p.str("HubName"))
    return user_struct(hub, _existing_user(hub, p.str("Name")))


@admin_method("EnumUser", Scope.HUB)
def enum_user(ctx: AdminContext, p: Params) -> dict[str, Any]:
    hub = existing_hub(ctx.server.state.config, p.str("HubName"))
    rows = [{
        "Name_str": u.name,
        "GroupName_str": u.group,
        "Realname_utf": u.realname,
        "Note_utf": u.note,
        "AuthType_u32": u.auth_type,
        "LastLoginTime_dt": dt(0),
        "NumLogin_u32": 0,
        "DenyAccess_bool": False,
        "IsTrafficFilled_bool": False,
        "IsExpiresFilled_bool": True,   # as SoftEther 5.01: 0 then reads "No Expiration"
        "Expires_dt": dt(u.expire_time),
        **traffic(None, prefix="Ex."),
    } for u in sorted(hub.users, key=lambda u: u.name.lower())]   # SoftEther's user list is sorted
    return {"HubName_str": hub.name, "UserList": rows}


@admin_method("DeleteUser", Scope.HUB)
def delete_user(ctx: AdminContext, p: Params) -> dict[str, Any]:
    refuse_on_member(ctx)
    hub_name, name = p.str("HubName"), p.str("Name")

    def apply(config: model.Server) -> None:
        hub = existing_hub(config, hub_name)
        hub.users.remove(_existing_user(hub, name))
    ctx.server.state.change(apply)
    return {"HubName_str": hub_name, "Name_str": name}
