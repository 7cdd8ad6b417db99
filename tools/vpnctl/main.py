"""vpnctl: administer a SoftEther VPN Server or a vpncluster node (vpnd) with
vpncmd's verbs over the JSON-RPC admin API.

    vpnctl [--server HOST:PORT] [--hub NAME] [--hub-admin]
           [--password-file F] [--json] [--pin-sha256 FP] VERB [ARG] [/NAME:value ...]

The admin password comes from --password-file (first line), else the
VPNCTL_PASSWORD environment variable, else a prompt when stdin is a terminal,
else it is empty (a server with an empty admin password accepts anything).

Exit status: 0 success; 1 the server refused the command (a SoftEther error)
or a local step failed; 2 bad command line; 3 the server could not be reached
or did not speak SoftEther JSON-RPC (connection, TLS, timeout); 4 admin
authentication failed (HTTP 401). Every failure is one line on stderr (an
unexpected one too: exit 1, and VPNCTL_DEBUG=1 shows its traceback).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from node.softether.errors import Err, error_name, error_text
from tools.vpnctl.args import UsageError, bind, split_host_port
from tools.vpnctl.client import (
    AdminClient,
    AuthError,
    ProtocolError,
    RpcError,
    TlsError,
    TransportError,
    normalize_fingerprint,
)
from tools.vpnctl.spec import Ctx, VerbError
from tools.vpnctl.verbs import help_text, lookup

EXIT_OK, EXIT_SERVER_ERROR, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH = 0, 1, 2, 3, 4
DEFAULT_SERVER = "127.0.0.1:443"
DONE_TEXT = "The command completed successfully."


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vpnctl",
        description="Administer a SoftEther-compatible VPN server with vpncmd verbs (JSON-RPC).",
        epilog="Run 'vpnctl help' for the list of commands.",
    )
    p.add_argument(
        "--server",
        default=os.environ.get("VPNCTL_SERVER", DEFAULT_SERVER),
        help=f"HOST:PORT of the admin listener (env VPNCTL_SERVER, default {DEFAULT_SERVER})",
    )
    p.add_argument("--hub", default=os.environ.get("VPNCTL_HUB"), help="Virtual Hub for hub commands (env VPNCTL_HUB)")
    p.add_argument(
        "--hub-admin",
        action="store_true",
        help="log in as the hub's administrator (hub password) instead of the server administrator",
    )
    p.add_argument("--password-file", help="read the admin password from the first line of this file")
    p.add_argument("--json", action="store_true", help="print the raw JSON-RPC result")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server certificate (the default, as vpncmd)",
    )
    p.add_argument("--pin-sha256", help="require this SHA-256 fingerprint of the server certificate")
    p.add_argument("--connect-timeout", type=float, default=5.0, help="seconds (default 5)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer (default 30)")
    p.add_argument("verb", nargs="?", help="vpncmd command name, e.g. HubList")
    p.add_argument("words", nargs="*", help="ARG and /NAME:value parameters")
    return p


def read_password(password_file: str | None) -> str:
    """The admin password from the file, the environment, a prompt, or ""."""
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as e:
            raise UsageError(f"cannot read --password-file {password_file!r}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--password-file {password_file!r} is not UTF-8 text") from None
    elif (env := os.environ.get("VPNCTL_PASSWORD")) is not None:
        password = env
    elif sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass("Admin password: ")
    else:
        password = ""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        # it travels in an HTTP header, where control characters cannot go
        raise UsageError("the admin password contains a control character")
    return password


def _seconds(name: str, value: float) -> float:
    if not 0 < value < 1e6:   # also refuses NaN
        raise UsageError(f"{name} must be a positive number of seconds")
    return value


def describe_rpc_error(e: RpcError) -> str:
    """"ERR_AUTH_FAILED (9): user authentication failed"; the server's own text
    when we have none for that number, or when it is ours plus a detail (vpnd
    adds one in parentheses, e.g. why a function is not supported)."""
    text = error_text(e.code)
    server_text = re.sub(r"^Error code \d+:\s*", "", e.message or "").strip()
    if server_text and (text == error_name(e.code) or server_text.startswith(f"{text} (")):
        text = server_text
    return f"{error_name(e.code)} ({e.code}): {text}"


def run(argv: Sequence[str]) -> int:
    opts = build_parser().parse_intermixed_args(list(argv))
    if not opts.verb or opts.verb.lower() in ("help", "?"):
        print(help_text())
        return EXIT_OK if opts.verb else EXIT_USAGE
    verb = lookup(opts.verb)
    bound = bind(verb.name, opts.words, verb.positional, verb.params)
    if verb.hub_scoped and not opts.hub:
        raise UsageError(f"{verb.name} works on a Virtual Hub: add --hub NAME")
    if opts.hub_admin and not opts.hub:
        raise UsageError("--hub-admin needs --hub NAME")
    host, port = split_host_port(opts.server, default_port=443)
    pin = None
    if opts.pin_sha256:
        try:
            pin = normalize_fingerprint(opts.pin_sha256)
        except ValueError as e:
            raise UsageError(f"--pin-sha256: {e}") from None
    password = read_password(opts.password_file)
    with AdminClient(
        host,
        port,
        password,
        admin_hub=opts.hub if opts.hub_admin else "",
        pin_sha256=pin,
        connect_timeout_s=_seconds("--connect-timeout", opts.connect_timeout),
        read_timeout_s=_seconds("--timeout", opts.timeout),
    ) as client:
        result = verb.run(Ctx(client=client, args=bound, hub=opts.hub))
    if opts.json:
        print(json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False))
    elif verb.render is not None:
        print(verb.render(result))
    else:
        print(DONE_TEXT)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns (and exits with) the exit status."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = run(args)
    except UsageError as e:
        code = _fail(EXIT_USAGE, f"Error: {e}")
    except RpcError as e:
        code = _fail(EXIT_SERVER_ERROR, f"Error: {describe_rpc_error(e)}")
    except VerbError as e:
        code = _fail(EXIT_SERVER_ERROR, f"Error: {e}")
    except AuthError as e:
        code = _fail(EXIT_AUTH, f"Error: {error_name(Err.AUTH_FAILED)} ({Err.AUTH_FAILED:d}): {e}")
    except (TransportError, TlsError, ProtocolError) as e:
        code = _fail(EXIT_UNREACHABLE, f"Error: {e}")
    except KeyboardInterrupt:
        code = _fail(130, "Error: interrupted")
    except BrokenPipeError:
        code = EXIT_OK  # output piped into a closed reader (e.g. head)
    except Exception as e:
        # Still one line (an answer we cannot render, a bug here); the
        # traceback on demand for a bug report.
        if os.environ.get("VPNCTL_DEBUG"):
            raise
        code = _fail(EXIT_SERVER_ERROR, f"Error: unexpected failure ({type(e).__name__}: {e}); "
                                        "VPNCTL_DEBUG=1 shows the traceback")
    if argv is None:
        sys.exit(code)
    return code


def _fail(code: int, line: str) -> int:
    print(line.replace("\n", " "), file=sys.stderr)
    return code


if __name__ == "__main__":
    main()
