"""Controller domain errors → SoftEther error numbers, in one table, for
the admin API (rpc_error) and the bus (bus_refusal).

The numbers are the ones SoftEther answers in the same situation (the
docstrings in controller/errors.py say which). A subclass not listed
takes its nearest listed base class.
"""

from __future__ import annotations

from controller import errors as ce
from controller.core import NotJoined
from controller.join_desk import JoinThrottled
from node.admin.jsonrpc import RpcError
from node.softether.errors import Err
from vpnbus.endpoint import RequestFailed

ERROR_NUMBERS: dict[type[ce.ControllerError], Err] = {
    ce.AuthFailed: Err.ACCESS_DENIED,
    JoinThrottled: Err.ACCESS_DENIED,
    NotJoined: Err.ACCESS_DENIED,
    ce.TicketError: Err.AUTH_FAILED,
    ce.NoEligibleServer: Err.COULD_NOT_HOST_HUB_ON_FARM,
    ce.HubTypeImmutable: Err.NOT_SUPPORTED,
    ce.HubUnknown: Err.HUB_NOT_FOUND,
    ce.NotInThisMode: Err.NOT_FARM_CONTROLLER,
    ce.MemberUnknown: Err.OBJECT_NOT_FOUND,
    ce.InvalidReport: Err.INVALID_PARAMETER,
    ce.IllegalTransition: Err.INTERNAL_ERROR,
    ce.ControllerError: Err.INTERNAL_ERROR,
}


def error_number(exc: ce.ControllerError) -> Err:
    for cls in type(exc).__mro__:
        if cls in ERROR_NUMBERS:
            return ERROR_NUMBERS[cls]
    return Err.INTERNAL_ERROR


def bus_refusal(exc: ce.ControllerError) -> RequestFailed:
    """The bus error reply for a controller domain error."""
    return RequestFailed(error_number(exc), str(exc))


def rpc_error(exc: ce.ControllerError) -> RpcError:
    """The admin API error for a controller domain error."""
    return RpcError(error_number(exc), str(exc))
