"""The one error class for bad input from a SoftEther peer.

Every sans-IO core in node/softether (PACK codec, HTTP framing, signature,
handshake messages, block framer) raises a subclass of `ProtocolError` when
the *remote* side sent something we cannot accept. The error carries the
SoftEther error number to answer with (`code`, an `Err`), so the edge can
send `PackError(code)` where the protocol still allows a reply, and then drop
only that peer's connection. SoftEther does the same: `ServerAccept` sets
`c->Err` and goes to its cleanup path, which sends the error PACK.

Local mistakes (our own code building an invalid message) are `ValueError`s,
not `ProtocolError`s: they are bugs, not peer behaviour.
"""

from __future__ import annotations

from node.softether.errors import Err, error_name


class ProtocolError(Exception):
    """The peer broke the protocol; answer with `code` (if possible) and drop it.

    Raised by the node/softether cores; caught by the connection edge, which
    sends an error PACK carrying `code` when the conversation is still in the
    HTTP phase and then closes that one connection.
    """

    def __init__(self, message: str, code: int = Err.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        try:
            self.code: int = Err(code)
        except ValueError:  # a number SoftEther does not define: keep it as is
            self.code = int(code)
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} ({error_name(self.code)})"
