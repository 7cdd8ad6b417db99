"""The server's TLS cipher setting (SoftEther's CipherName, vpncmd
ServerCipherSet), applied to the listeners' ssl.SSLContext.

SoftEther 5.01 stores any non-empty name upper-cased (StSetServerCipher
checks nothing else) and hands it to OpenSSL's SSL_set_cipher_list for each
new connection; a name OpenSSL does not accept gives that connection the
default list instead. The same here: the name is an OpenSSL cipher string
(one cipher such as ECDHE-RSA-AES256-GCM-SHA384, or a rule such as
ECDHE+AESGCM), and "~DEFAULT~" (SoftEther's default) or a name OpenSSL
refuses leaves Python's default suites. It picks TLS 1.2 suites only: TLS
1.3 suites are not chosen by that string (OpenSSL sets them apart), so TLS
1.3 clients keep connecting whatever the name, as with SoftEther.
"""

from __future__ import annotations

import ssl

DEFAULT_CIPHER_NAME = "~DEFAULT~"   # SERVER_DEFAULT_CIPHER_NAME (Cedar/Server.h)


def normalized(name: str) -> str:
    """The name as SoftEther stores it (StrUpper)."""
    return name.upper()


def _tls12_suites(context: ssl.SSLContext) -> str:
    return ":".join(c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3")


class CipherSetting:
    """One context's cipher string, with the suites it had when made (the default)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._default = _tls12_suites(context)

    def apply(self, name: str) -> bool:
        """Use `name` for new connections; False (and the default) when
        OpenSSL accepts no TLS 1.2 suite by it."""
        if name != DEFAULT_CIPHER_NAME:
            try:
                self.context.set_ciphers(name)
            except ssl.SSLError:
                pass
            else:
                if _tls12_suites(self.context):
                    return True
        self.context.set_ciphers(self._default)
        return name == DEFAULT_CIPHER_NAME

    def available(self) -> list[str]:
        """The cipher names a server can offer (GetServerCipherList, SoftEther's
        GetCipherList): OpenSSL's DEFAULT list (TLS 1.3 suites first) less
        the PSK and SRP suites, which need callbacks no server here sets, as
        OpenSSL's SSL_get1_supported_ciphers leaves them out for SoftEther."""
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        probe.set_ciphers("DEFAULT")
        return [c["name"] for c in probe.get_ciphers()
                if not any(kx in c["kea"] for kx in ("psk", "srp"))]
