"""vpnclient: connect to a SoftEther VPN Server or a vpncluster node.

    vpnclient connect --server HOST:PORT --hub HUB --user U --password-file F
                      (--tap NAME [--ip CIDR] | --userspace [--ip CIDR])
                      [--max-retries N] [--retry-interval S] [--retry-max S]
                      [--connect-timeout S] [--status-file F] [-v]

--tap creates TAP device NAME in the current network namespace (needs root)
and bridges it into the hub; --ip gives it an address. --userspace opens no
device: the session lives in the process and, with --ip, answers ARP and
ping for that address (a cheap host for load tests and drills).

The client follows cluster redirects and reconnects with jittered
exponential backoff (--retry-interval is the first wait, --retry-max the
cap) to the configured server. Logs go to stderr, one line per event.

Exit status: 0 stopped by SIGTERM/SIGINT; 1 the server refused the login
(e.g. ERR_AUTH_FAILED, ERR_HUB_NOT_FOUND); 2 bad command line or device;
3 gave up after --max-retries consecutive failed attempts.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from node.dataplane.tap import DeviceError, open_tap
from tools.vpnclient.client import EXIT_USAGE, ClientConfig, VpnClient
from tools.vpnclient.connection import CONNECTING_TIMEOUT_S
from tools.vpnclient.frames import Responder, random_mac
from tools.vpnclient.login import PasswordLogin
from tools.vpnclient.ports import TapPort, UserspacePort, add_address
from tools.vpnclient.retry import DEFAULT_BASE_S, DEFAULT_CAP_S, DEFAULT_MAX_RETRIES, RetryPolicy

log = logging.getLogger("vpnclient")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def split_server(text: str) -> tuple[str, int]:
    """'HOST:PORT' (IPv6 as [addr]:port) -> (host, port); UsageError otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--server must be HOST:PORT, got {text!r}")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vpnclient", description="SoftEther-protocol VPN client.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("connect", help="connect and keep the session up")
    c.add_argument("--server", required=True, help="HOST:PORT of the server (a cluster's controller)")
    c.add_argument("--hub", required=True, help="Virtual Hub name")
    c.add_argument("--user", required=True, help="user name")
    c.add_argument("--password-file", required=True, help="file whose first line is the password")
    mode = c.add_mutually_exclusive_group(required=True)
    mode.add_argument("--tap", metavar="NAME", help="create TAP device NAME for the session's frames")
    mode.add_argument("--userspace", action="store_true", help="no device: frames stay in the process")
    c.add_argument("--ip", metavar="CIDR", help="address of the TAP device, or the userspace host's address")
    c.add_argument("--max-retries", type=int, default=DEFAULT_MAX_RETRIES,
                   help=f"consecutive failed attempts before giving up (default {DEFAULT_MAX_RETRIES})")
    c.add_argument("--retry-interval", type=float, default=DEFAULT_BASE_S,
                   help=f"first wait before a retry, seconds (default {DEFAULT_BASE_S})")
    c.add_argument("--retry-max", type=float, default=DEFAULT_CAP_S,
                   help=f"longest wait between retries, seconds (default {DEFAULT_CAP_S})")
    c.add_argument("--connect-timeout", type=float, default=CONNECTING_TIMEOUT_S,
                   help=f"seconds per login (default {CONNECTING_TIMEOUT_S:g})")
    c.add_argument("--status-file", help="keep a JSON status record in this file")
    c.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _read_password(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise UsageError(f"cannot read --password-file: {e.strerror}") from None


def parse_config(args: argparse.Namespace) -> ClientConfig:
    host, port = split_server(args.server)
    try:
        policy = RetryPolicy(max_retries=args.max_retries, base_s=args.retry_interval, cap_s=args.retry_max)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.ip:
        try:
            ipaddress.IPv4Interface(args.ip)
        except ValueError:
            raise UsageError(f"--ip must be an IPv4 address/prefix, got {args.ip!r}") from None
    password = _read_password(args.password_file)
    return ClientConfig(host=host, port=port, hub=args.hub, username=args.user,
                        hashed_password=PasswordLogin.from_plain(args.user, password).hashed_password,
                        retry=policy, connect_timeout_s=args.connect_timeout)


async def _run(args: argparse.Namespace, config: ClientConfig) -> int:
    device = None
    port: TapPort | UserspacePort
    if args.tap:
        try:
            device = await open_tap(args.tap)
            if args.ip:
                await add_address(device.name, args.ip)
        except (DeviceError, OSError) as e:
            if device is not None:
                device.close()
            log.error("cannot set up TAP device %s: %s", args.tap, e)
            return EXIT_USAGE
        port = TapPort(device)
        log.info("TAP device %s is up", device.name)
    else:
        responder = Responder(random_mac(), ipaddress.IPv4Interface(args.ip).ip) if args.ip else None
        port = UserspacePort(responder=responder)
    client = VpnClient(config, port, status_path=args.status_file)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, client.stop)
    try:
        return await client.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if device is not None:
            device.close()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, format="vpnclient: %(message)s", level=logging.INFO)
    try:
        args = build_parser().parse_args(argv)
        config = parse_config(args)
    except UsageError as e:
        print(f"vpnclient: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    code = asyncio.run(_run(args, config))
    log.debug("exit %d", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
