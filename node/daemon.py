"""`vpnd`: the node daemon.

    vpnd --state-dir DIR [--listen ADDR:PORT ...] [--admin-password-file F]

First start makes DIR, a self-signed TLS certificate, the admin password and
the config (standalone mode). Later starts load the config; a damaged config
stops the start with one line naming the file and the newest good backup.
`--listen` replaces the saved listener list; without it the saved list is used
(first start: SoftEther's 443, 992, 1194 and 5555 on all addresses).
SIGTERM/SIGINT shut down cleanly. Logs go to stderr.

The server's host name (ServerHostName, a cluster member's Hostname and the
RemoteHostname of its sessions) is the machine's, as SoftEther's
GetMachineName; VPNCLUSTER_HOSTNAME overrides it, so several nodes on one
machine (tests, benches, drills) can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import ssl
import sys
from pathlib import Path

from node.dataplane.service import DataPlane
from node.dataplane.vpn_handler import VpnHandler
from node.tls_cipher import CipherSetting
from node.listener import Listener
from node.server import VpnServer
from node.softether.sha0 import hash_admin_password
from node.state import model
from node.state.node_state import NodeState
from node.state.store import ConfigCorrupt, write_atomic
from node.state.tlscert import CERT_NAME, KEY_NAME, certificate_der, ensure_certificate, server_context

log = logging.getLogger("vpnd")
DEFAULT_LISTENERS = ["0.0.0.0:443", "0.0.0.0:992", "0.0.0.0:1194", "0.0.0.0:5555"]
PASSWORD_FILE = "admin-password"
HOSTNAME_ENV = "VPNCLUSTER_HOSTNAME"


class StartupError(Exception):
    """Start cannot go on; the message is the one line the operator sees."""


def parse_listen(text: str) -> tuple[str, int]:
    try:
        return model.listener_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _first_password(state_dir: Path, password_file: Path | None) -> str:
    if password_file is not None:
        try:
            password = password_file.read_bytes().decode("utf-8").strip("\r\n")
        except OSError as exc:
            raise StartupError(f"cannot read --admin-password-file {password_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise StartupError(f"--admin-password-file {password_file} is not UTF-8 text") from None
        if not password:
            raise StartupError(f"--admin-password-file {password_file} is empty; an empty password is not allowed")
        return password
    password = secrets.token_urlsafe(18)
    target = state_dir / PASSWORD_FILE
    write_atomic(target, (password + "\n").encode(), mode=0o600)
    log.warning("no --admin-password-file: generated a server administrator password in %s", target)
    return password


def open_state(state_dir: Path, listen: list[str] | None, password_file: Path | None) -> NodeState:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state = NodeState.open_or_none(state_dir)
    if state is None:
        password = _first_password(state_dir, password_file)
        config = model.Server(admin_password_hash=hash_admin_password(password),
                              listeners=listen or list(DEFAULT_LISTENERS))
        state = NodeState.create(state_dir, config)
        log.info("created a new standalone node in %s", state_dir)
        return state
    if password_file is not None:
        log.info("--admin-password-file ignored: the password is set already (change it with ServerPasswordSet)")
    state.backup("start")
    if listen and listen != state.config.listeners:
        def apply(config: model.Server) -> None:
            config.listeners = list(listen)
        state.change(apply)
    return state


def _tls_identity(state_dir: Path) -> tuple[bytes, ssl.SSLContext]:
    """The node's certificate (DER) and TLS context; StartupError naming the
    files when they cannot be used (never silently replaced: clients pin it)."""
    try:
        cert_path, key_path = ensure_certificate(state_dir)
        return certificate_der(cert_path), server_context(cert_path, key_path)
    except (OSError, ValueError) as exc:    # ssl.SSLError is an OSError
        raise StartupError(
            f"TLS certificate {state_dir / CERT_NAME} or key {state_dir / KEY_NAME} is unusable ({exc}); "
            "move both away to make a new pair (clients that pinned the old one must accept the new one)"
        ) from None


async def _shutdown(server: VpnServer, dataplane: DataPlane, listener: Listener) -> int:
    """Stop the role, the data plane and the listeners, each even if an earlier
    step failed; 1 if any failed (logged), else 0."""
    status = 0
    for what, step in (("cluster role", server.cluster.stop), ("data plane", dataplane.stop),
                       ("listeners", listener.close)):
        try:
            await step()
        except Exception:
            log.exception("stopping the %s failed", what)
            status = 1
    return status


async def run(args: argparse.Namespace) -> int:
    # Signals first: a SIGTERM during start-up then stops the node cleanly
    # once it is up, instead of killing it half-started.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    state_dir = Path(args.state_dir)
    try:
        state = open_state(state_dir, [f"{h}:{p}" for h, p in args.listen] if args.listen else None,
                           Path(args.admin_password_file) if args.admin_password_file else None)
    except ConfigCorrupt as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"cannot use state directory {state_dir}: "
                           f"{exc.strerror or exc} ({exc.filename or state_dir})") from None
    cert_der, context = _tls_identity(state_dir)
    cipher = CipherSetting(context)
    server = VpnServer(state=state, state_dir=state_dir, cert_der=cert_der, tls_cipher=cipher)
    if not cipher.apply(state.config.cipher_name):
        log.warning("TLS cipher %r selects no TLS 1.2 suite: using the default ones", state.config.cipher_name)
    if os.environ.get(HOSTNAME_ENV):
        server.hostname = os.environ[HOSTNAME_ENV]
    listener = Listener(server, context, cors_origins=frozenset(args.cors_origin or ()))
    dataplane = DataPlane(server)
    listener.vpn_handler = VpnHandler(server)
    server.dynamic_instances.watch(dataplane.refresh)
    await dataplane.start()
    for text in state.config.listeners:
        host, port = model.listener_address(text)   # checked when the config was loaded
        try:
            await listener.listen(host, port)
        except OSError as exc:
            await dataplane.stop()
            await listener.close()
            raise StartupError(f"cannot listen on {text}: {exc.strerror}") from None
    await server.cluster.switch()   # the saved cluster mode (standalone: nothing)
    log.info("vpnd ready (pid %d, state %s, config serial %d)", os.getpid(), state_dir, state.config.serial)
    await stop.wait()
    log.info("shutting down")
    return await _shutdown(server, dataplane, listener)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpnd", description="vpncluster node daemon")
    parser.add_argument("--state-dir", required=True, help="directory for config, keys, certificate, backups")
    parser.add_argument("--listen", action="append", type=parse_listen, metavar="ADDR:PORT",
                        help="TLS listener (repeatable); replaces the saved list")
    parser.add_argument("--admin-password-file", help="file with the server administrator password (first start)")
    parser.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                        help="a web origin (e.g. https://admin.example) allowed to call the admin API "
                             "from a browser; repeatable; none by default")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except StartupError as exc:
        print(f"vpnd: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
