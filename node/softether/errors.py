"""SoftEther VPN error codes (the numbers of Cedar.h ERR_*), shared by the
VPN protocol, the admin API and vpnctl.

Numbers are wire values: clients, vpncmd and JSON-RPC tools act on them, so they
must never change.
"""

from __future__ import annotations

import enum


class Err(enum.IntEnum):
    """SoftEther error number; the name is the C name without ERR_."""

    NO_ERROR = 0
    CONNECT_FAILED = 1
    SERVER_IS_NOT_VPN = 2
    DISCONNECTED = 3
    PROTOCOL_ERROR = 4
    CLIENT_IS_NOT_VPN = 5
    USER_CANCEL = 6
    AUTHTYPE_NOT_SUPPORTED = 7
    HUB_NOT_FOUND = 8
    AUTH_FAILED = 9
    HUB_STOPPING = 10
    SESSION_REMOVED = 11
    ACCESS_DENIED = 12
    SESSION_TIMEOUT = 13
    INVALID_PROTOCOL = 14
    TOO_MANY_CONNECTION = 15
    HUB_IS_BUSY = 16
    PROXY_CONNECT_FAILED = 17
    PROXY_ERROR = 18
    PROXY_AUTH_FAILED = 19
    TOO_MANY_USER_SESSION = 20
    LICENSE_ERROR = 21
    DEVICE_DRIVER_ERROR = 22
    INTERNAL_ERROR = 23
    SECURE_DEVICE_OPEN_FAILED = 24
    SECURE_PIN_LOGIN_FAILED = 25
    SECURE_NO_CERT = 26
    SECURE_NO_PRIVATE_KEY = 27
    SECURE_CANT_WRITE = 28
    OBJECT_NOT_FOUND = 29
    VLAN_ALREADY_EXISTS = 30
    VLAN_INSTALL_ERROR = 31
    VLAN_INVALID_NAME = 32
    NOT_SUPPORTED = 33
    ACCOUNT_ALREADY_EXISTS = 34
    ACCOUNT_ACTIVE = 35
    ACCOUNT_NOT_FOUND = 36
    ACCOUNT_INACTIVE = 37
    INVALID_PARAMETER = 38
    SECURE_DEVICE_ERROR = 39
    NO_SECURE_DEVICE_SPECIFIED = 40
    VLAN_IS_USED = 41
    VLAN_FOR_ACCOUNT_NOT_FOUND = 42
    VLAN_FOR_ACCOUNT_USED = 43
    VLAN_FOR_ACCOUNT_DISABLED = 44
    INVALID_VALUE = 45
    NOT_FARM_CONTROLLER = 46
    TRYING_TO_CONNECT = 47
    CONNECT_TO_FARM_CONTROLLER = 48
    COULD_NOT_HOST_HUB_ON_FARM = 49
    FARM_MEMBER_HUB_ADMIN = 50
    NULL_PASSWORD_LOCAL_ONLY = 51
    NOT_ENOUGH_RIGHT = 52
    LISTENER_NOT_FOUND = 53
    LISTENER_ALREADY_EXISTS = 54
    NOT_FARM_MEMBER = 55
    CIPHER_NOT_SUPPORTED = 56
    HUB_ALREADY_EXISTS = 57
    TOO_MANY_HUBS = 58
    LINK_ALREADY_EXISTS = 59
    LINK_CANT_CREATE_ON_FARM = 60
    LINK_IS_OFFLINE = 61
    TOO_MANY_ACCESS_LIST = 62
    TOO_MANY_USER = 63
    TOO_MANY_GROUP = 64
    GROUP_NOT_FOUND = 65
    USER_ALREADY_EXISTS = 66
    GROUP_ALREADY_EXISTS = 67
    USER_AUTHTYPE_NOT_PASSWORD = 68
    OLD_PASSWORD_WRONG = 69
    LINK_CANT_DISCONNECT = 73
    ACCOUNT_NOT_PRESENT = 74
    ALREADY_ONLINE = 75
    OFFLINE = 76
    NOT_RSA_1024 = 77
    SNAT_CANT_DISCONNECT = 78
    SNAT_NEED_STANDALONE = 79
    SNAT_NOT_RUNNING = 80
    SE_VPN_BLOCK = 81
    BRIDGE_CANT_DISCONNECT = 82
    LOCAL_BRIDGE_STOPPING = 83
    LOCAL_BRIDGE_UNSUPPORTED = 84
    CERT_NOT_TRUSTED = 85
    PRODUCT_CODE_INVALID = 86
    VERSION_INVALID = 87
    CAPTURE_DEVICE_ADD_ERROR = 88
    VPN_CODE_INVALID = 89
    CAPTURE_NOT_FOUND = 90
    LAYER3_CANT_DISCONNECT = 91
    LAYER3_SW_EXISTS = 92
    LAYER3_SW_NOT_FOUND = 93
    INVALID_NAME = 94
    LAYER3_IF_ADD_FAILED = 95
    LAYER3_IF_DEL_FAILED = 96
    LAYER3_IF_EXISTS = 97
    LAYER3_TABLE_ADD_FAILED = 98
    LAYER3_TABLE_DEL_FAILED = 99
    LAYER3_TABLE_EXISTS = 100
    BAD_CLOCK = 101
    LAYER3_CANT_START_SWITCH = 102
    CLIENT_LICENSE_NOT_ENOUGH = 103
    BRIDGE_LICENSE_NOT_ENOUGH = 104
    SERVER_CANT_ACCEPT = 105
    SERVER_CERT_EXPIRES = 106
    MONITOR_MODE_DENIED = 107
    BRIDGE_MODE_DENIED = 108
    IP_ADDRESS_DENIED = 109
    TOO_MANT_ITEMS = 110
    MEMORY_NOT_ENOUGH = 111
    OBJECT_EXISTS = 112
    FATAL = 113
    SERVER_LICENSE_FAILED = 114
    SERVER_INTERNET_FAILED = 115
    CLIENT_LICENSE_FAILED = 116
    BAD_COMMAND_OR_PARAM = 117
    INVALID_LICENSE_KEY = 118
    NO_VPN_SERVER_LICENSE = 119
    NO_VPN_CLUSTER_LICENSE = 120
    NOT_ADMINPACK_SERVER = 121
    NOT_ADMINPACK_SERVER_NET = 122
    BETA_EXPIRES = 123
    BRANDED_C_TO_S = 124
    BRANDED_C_FROM_S = 125
    AUTO_DISCONNECTED = 126
    CLIENT_ID_REQUIRED = 127
    TOO_MANY_USERS_CREATED = 128
    SUBSCRIPTION_IS_OLDER = 129
    ILLEGAL_TRIAL_VERSION = 130
    NAT_T_TWO_OR_MORE = 131
    DUPLICATE_DDNS_KEY = 132
    DDNS_HOSTNAME_EXISTS = 133
    DDNS_HOSTNAME_INVALID_CHAR = 134
    DDNS_HOSTNAME_TOO_LONG = 135
    DDNS_HOSTNAME_IS_EMPTY = 136
    DDNS_HOSTNAME_TOO_SHORT = 137
    MSCHAP2_PASSWORD_NEED_RESET = 138
    DDNS_DISCONNECTED = 139
    SPECIAL_LISTENER_ICMP_ERROR = 140
    SPECIAL_LISTENER_DNS_ERROR = 141
    OPENVPN_IS_NOT_ENABLED = 142
    NOT_SUPPORTED_AUTH_ON_OPENSOURCE = 143
    VPNGATE = 144
    VPNGATE_CLIENT = 145
    VPNGATE_INCLIENT_CANT_STOP = 146
    NOT_SUPPORTED_FUNCTION_ON_OPENSOURCE = 147
    SUSPENDING = 148
    HOSTNAME_MISMATCH = 149
    SSL_PROTOCOL_VERSION = 150
    SSL_SHARED_CIPHER = 151
    SSL_HANDSHAKE = 152


def error_name(code: int) -> str:
    """`ERR_AUTH_FAILED` for 9; `ERR_UNKNOWN_<n>` for numbers SoftEther does not define."""
    try:
        return "ERR_" + Err(code).name
    except ValueError:
        return f"ERR_UNKNOWN_{code}"


# Short operator-facing texts for the codes this project raises or shows most.
_TEXT = {
    Err.NO_ERROR: "no error",
    Err.CONNECT_FAILED: "could not connect to the server",
    Err.SERVER_IS_NOT_VPN: "the peer is not a SoftEther-compatible VPN server",
    Err.DISCONNECTED: "the connection was closed",
    Err.PROTOCOL_ERROR: "protocol error",
    Err.AUTHTYPE_NOT_SUPPORTED: "the server does not accept this authentication type",
    Err.HUB_NOT_FOUND: "no such Virtual Hub on the server",
    Err.AUTH_FAILED: "user authentication failed",
    Err.HUB_STOPPING: "the Virtual Hub is offline",
    Err.ACCESS_DENIED: "access denied",
    Err.SESSION_TIMEOUT: "the VPN session timed out",
    Err.TOO_MANY_CONNECTION: "too many TCP connections for this session",
    Err.HUB_IS_BUSY: "too many sessions on the server or Virtual Hub",
    Err.INTERNAL_ERROR: "internal error on the server",
    Err.OBJECT_NOT_FOUND: "object not found",
    Err.NOT_SUPPORTED: "not supported",
    Err.INVALID_PARAMETER: "invalid parameter",
    Err.INVALID_VALUE: "invalid value",
    Err.NOT_FARM_CONTROLLER: "this server is not a cluster controller",
    Err.CONNECT_TO_FARM_CONTROLLER: "could not connect to the cluster controller",
    Err.COULD_NOT_HOST_HUB_ON_FARM: "no cluster server can take this session",
    Err.FARM_MEMBER_HUB_ADMIN: "Virtual Hubs are managed on the cluster controller, not on a member",
    Err.NOT_ENOUGH_RIGHT: "not enough privileges",
    Err.NOT_FARM_MEMBER: "this server is not a cluster member",
    Err.HUB_ALREADY_EXISTS: "a Virtual Hub of that name already exists",
    Err.USER_ALREADY_EXISTS: "a user of that name already exists",
    Err.OBJECT_EXISTS: "the object already exists",
    Err.INVALID_NAME: "invalid name",
}


def error_text(code: int) -> str:
    """One line for an operator: the text where we have one, else the name."""
    try:
        return _TEXT[Err(code)]
    except (ValueError, KeyError):
        return error_name(code)
