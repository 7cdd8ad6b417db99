"""The reconnecting client: login (following redirects), data plane, backoff.

`VpnClient.run()` loops:

    connect to the configured server (the controller in a cluster)
      -> Redirect? log in again at the member (ticket, same user/hub),
         its TLS certificate must equal the redirect's `Cert`
      -> Welcome: attach the frame port, wait until the session ends
    lost or failed -> wait a jittered backoff (retry.py), try again

A refused password login (ERR_AUTH_FAILED and the other `FATAL_ERRORS`)
ends the client at once with exit status 1; `max_retries` consecutive
failed attempts end it with status 3; `stop()` (SIGTERM in the CLI) ends
it with 0 and closes the session. A refused *ticket* login is not fatal:
the ticket may have expired, so the client starts over at the controller,
as SoftEther's does. Status changes go to the log and the status file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field

from node.softether.errors import Err, error_name, error_text
from node.softether.handshake import ServerError
from node.softether.protocol_error import ProtocolError
from tools.vpnclient.connection import CONNECTING_TIMEOUT_S, Connection, connect
from tools.vpnclient.frames import Responder, random_mac
from tools.vpnclient.login import Credentials, PasswordLogin, TicketLogin, Welcomed
from tools.vpnclient.ports import FramePort, NotConnected, UserspacePort
from tools.vpnclient.retry import MAX_REDIRECTS, Backoff, ClientStatus, RetryPolicy, State

log = logging.getLogger("vpnclient")

EXIT_STOPPED, EXIT_REFUSED, EXIT_USAGE, EXIT_GAVE_UP = 0, 1, 2, 3
STATUS_REFRESH_S = 2.0  # while connected, the status file's counters are at most this old
FATAL_ERRORS = frozenset({Err.AUTH_FAILED, Err.HUB_NOT_FOUND, Err.ACCESS_DENIED,
                          Err.AUTHTYPE_NOT_SUPPORTED, Err.NULL_PASSWORD_LOCAL_ONLY})


def describe(err: BaseException) -> tuple[str, int | None]:
    """One line for an error, and its SoftEther code if it has one."""
    if isinstance(err, ProtocolError):
        code = err.code
        if isinstance(err, ServerError):
            return f"{error_name(code)}: {error_text(code)}", code
        return f"{error_name(code)}: {err.message}", code
    return f"{type(err).__name__}: {err}", None


@dataclass(frozen=True, slots=True)
class ClientConfig:
    host: str
    port: int
    hub: str
    username: str
    hashed_password: bytes
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout_s: float = CONNECTING_TIMEOUT_S
    local_address: str | None = None  # source IP of every connection (None: the kernel's choice)
    unique_id: bytes = field(default_factory=lambda: os.urandom(20))
    """Sent as SoftEther's machine id in every login: one per client (not per
    machine), so that a controller tells apart the many clients of one host
    when one of them comes back (controller/arrivals.py)."""


class Refused(Exception):
    """The configured server refused the login for good (FATAL_ERRORS)."""

    def __init__(self, error: ServerError) -> None:
        super().__init__(describe(error)[0])
        self.code = error.code


class VpnClient:
    """One VPN session kept alive over reconnects; `port` is a TapPort or UserspacePort."""

    def __init__(self, config: ClientConfig, port: FramePort, *, status_path: str | None = None,
                 backoff: Backoff | None = None) -> None:
        self.config = config
        self.port = port
        self.status_path = status_path
        self.backoff = backoff or Backoff(config.retry)
        self.status = ClientStatus(configured_server=f"{config.host}:{config.port}",
                                   hub=config.hub, user=config.username)
        self.connection: Connection | None = None
        self._stopping = False
        self._task: asyncio.Task | None = None

    def stop(self) -> None:
        """Stop from any callback on the loop (e.g. a SIGTERM handler).

        Besides cancelling the run, closes the current session: a cancel can
        be lost (Python 3.11's asyncio.wait_for returns the result when its
        future completes as the cancel arrives, e.g. a login answered just
        then), and the run must end anyway rather than keep a session open."""
        self._stopping = True
        if self.connection is not None:
            self.connection.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(self) -> int:
        """Run until stopped or given up; returns the exit status."""
        task = asyncio.current_task()
        assert task is not None  # run() is a coroutine, so it runs in a task
        self._task = task
        self.status.started_at = time.time()
        try:
            return await self._loop()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            task.uncancel()
            return self._finish(State.STOPPED, EXIT_STOPPED)
        finally:
            self._drop_connection()

    async def _loop(self) -> int:
        cfg = self.config
        while not self._stopping:
            self.status.connecting(time.time())
            self._write_status()
            try:
                conn, redirected = await self._establish()
            except Refused as e:
                log.error("login refused by %s:%d: %s", cfg.host, cfg.port, e)
                return self._finish(State.FAILED, EXIT_REFUSED, str(e), e.code)
            except (ProtocolError, OSError) as e:
                text, code = describe(e)
                delay = self.backoff.failed()
                if delay is None:
                    self.status.failed_attempts = self.backoff.failures
                    log.error("giving up after %d failed attempts in a row: %s", self.backoff.failures, text)
                    return self._finish(State.FAILED, EXIT_GAVE_UP, text, code)
                self.status.attempt_failed(time.time(), text, code, self.backoff.failures)
                self._write_status()
                log.warning("attempt %d failed: %s; retrying in %.2f s", self.backoff.failures, text, delay)
                await asyncio.sleep(delay)
                continue
            if self._stopping:  # stop() came while logging in and its cancel was lost
                conn.close()
                break
            self.backoff.succeeded()
            self.connection = conn
            w = conn.welcome
            self.status.connected(time.time(), server=conn.server, redirected=redirected,
                                  session_name=w.session_name, connection_name=w.connection_name)
            self._write_status()
            log.info("connected to %s%s: session %s, timeout %d ms", conn.server,
                     " (redirected)" if redirected else "", w.session_name, w.timeout_ms)
            self.port.attach(conn)
            while not conn.closed.done() and not self._stopping:  # refresh the status file now and then
                await asyncio.wait([conn.closed], timeout=STATUS_REFRESH_S)
                if self.status_path and not conn.closed.done():
                    self.status.updated_at = time.time()
                    self._write_status()
            if self._stopping:
                break  # _finish drops the connection
            reason = conn.closed.result()
            self._drop_connection()
            text, code = describe(reason or ProtocolError("closed", Err.DISCONNECTED))
            delay = self.backoff.lost()
            self.status.disconnected(time.time(), text, code)
            self._write_status()
            log.warning("session %s lost: %s; reconnecting in %.2f s", w.session_name, text, delay)
            await asyncio.sleep(delay)
        return self._finish(State.STOPPED, EXIT_STOPPED)

    async def _establish(self) -> tuple[Connection, bool]:
        """Log in, following up to MAX_REDIRECTS redirects."""
        cfg = self.config
        host, port = cfg.host, cfg.port
        creds: Credentials = PasswordLogin(cfg.hashed_password)
        expected_cert: bytes | None = None
        for hop in range(MAX_REDIRECTS + 1):
            try:
                event, conn = await connect(host, port, hub=cfg.hub, username=cfg.username,
                                            credentials=creds, expected_cert=expected_cert,
                                            timeout_s=cfg.connect_timeout_s, local_address=cfg.local_address,
                                            unique_id=cfg.unique_id)
            except ServerError as e:
                if hop == 0 and e.code in FATAL_ERRORS:
                    raise Refused(e) from None
                raise
            if isinstance(event, Welcomed):
                assert conn is not None
                return conn, hop > 0
            r = event.redirect
            new_port = r.choose_port(port)
            log.info("redirected by %s:%d to %s:%d", host, port, r.ip, new_port)
            host, port = str(r.ip), new_port
            creds = TicketLogin(r.ticket)
            expected_cert = r.cert or None
        raise ProtocolError(f"more than {MAX_REDIRECTS} redirects", Err.PROTOCOL_ERROR)

    def _drop_connection(self) -> None:
        conn, self.connection = self.connection, None
        if conn is not None:
            self.status.frames_in += conn.tunnel.recv_frames
            self.status.frames_out += conn.tunnel.sent_frames
            self.status.bursts_out += conn.tunnel.bursts_out
            self.port.detach()
            conn.close()

    def _finish(self, state: State, code: int, error: str | None = None, err_code: int | None = None) -> int:
        self._drop_connection()
        self.status.finished(time.time(), state, error, err_code)
        self._write_status()
        return code

    def _write_status(self) -> None:
        if not self.status_path:
            return
        d = self.status.to_dict()
        conn = self.connection
        if conn is not None:
            d["frames_in"] += conn.tunnel.recv_frames
            d["frames_out"] += conn.tunnel.sent_frames
            d["bursts_out"] += conn.tunnel.bursts_out
        tmp = f"{self.status_path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(d, f, indent=1)
            os.replace(tmp, self.status_path)
        except OSError as e:
            log.warning("cannot write status file %s: %s", self.status_path, e)


class ClientFailed(Exception):
    """The client ended (refused or gave up) while the caller waited on it."""


class UserspaceClient:
    """A VPN session whose frames are Python objects: for tests, load and drills.

        async with UserspaceClient("127.0.0.1:5555", "hub", "user", "pw") as c:
            await c.wait_connected(10)
            await c.send_frames([frames.arp_request(c.mac, "10.0.0.1", "10.0.0.2")])
            frame = await c.receive(timeout_s=2)

    `mac` is this host's MAC (random unless given); with `ip` the client
    answers ARP requests and pings for that address by itself.
    `local_address` is the source IP of its TCP connections (e.g. 127.0.0.N
    for many clients against a server's per-IP connection limit).
    """

    def __init__(self, server: str, hub: str, username: str, password: str, *,
                 retry: RetryPolicy | None = None, ip: str | None = None, mac: bytes | None = None,
                 status_path: str | None = None, connect_timeout_s: float = CONNECTING_TIMEOUT_S,
                 local_address: str | None = None) -> None:
        host, _, port = server.rpartition(":")
        self.mac = mac or random_mac()
        self.ip = ip
        self.port = UserspacePort(responder=Responder(self.mac, ip) if ip else None)
        config = ClientConfig(host=host.strip("[]"), port=int(port), hub=hub, username=username,
                              hashed_password=PasswordLogin.from_plain(username, password).hashed_password,
                              retry=retry or RetryPolicy(), connect_timeout_s=connect_timeout_s,
                              local_address=local_address)
        self.client = VpnClient(config, self.port, status_path=status_path)
        self._task: asyncio.Task | None = None

    @property
    def status(self) -> ClientStatus:
        return self.client.status

    @property
    def exit_code(self) -> int | None:
        """The run's exit status once it ended (None while running)."""
        t = self._task
        return t.result() if t is not None and t.done() and not t.cancelled() else None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.client.run())

    async def wait_connected(self, timeout_s: float | None = 30.0) -> Connection:
        """Wait for a session; ClientFailed if the client ended, NotConnected on timeout."""
        self.start()
        assert self._task is not None
        attached = asyncio.ensure_future(self.port.wait_attached(timeout_s))
        await asyncio.wait([attached, self._task], return_when=asyncio.FIRST_COMPLETED)
        if attached.done():
            return attached.result()
        attached.cancel()
        raise ClientFailed(f"client ended ({self.exit_code}): {self.status.last_error}")

    async def send_frames(self, frames: list[bytes], *, wait_s: float | None = 30.0) -> bool:
        """See UserspacePort.send_frames."""
        return await self.port.send_frames(frames, wait_s=wait_s)

    async def receive(self, timeout_s: float | None = None) -> bytes:
        return await self.port.receive(timeout_s)

    def drain(self) -> list[bytes]:
        return self.port.drain()

    async def stop(self) -> int:
        """Stop and return the exit status."""
        self.client.stop()
        if self._task is None:
            return EXIT_STOPPED
        return await self._task

    async def __aenter__(self) -> UserspaceClient:
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


__all__ = ["ClientConfig", "ClientFailed", "NotConnected", "UserspaceClient", "VpnClient"]
