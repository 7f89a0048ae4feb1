"""``l2tpv3d``: the asyncio (uvloop) adapters around the sans-I/O tunnels and sessions.

One underlay socket per tunnel, one TAP per session, one Unix control socket. The
per-packet loops read in batches until the descriptor is drained and never raise:
failures become counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from . import __version__, datapath
from .codec import session_mtu
from .config import Encap, SessionConfig, TunnelConfig
from .configfile import load_config
from .constants import CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET, DROP_WRONG_SOURCE
from .control import serve
from .errors import L2TPError, StateError
from .session import TAP_WRITE_FAILED, Payload, Session
from .tap import Tap
from .tunnel import Tunnel
from .underlay import (
    DEFAULT_SOCKET_BUFFER,
    ipv4_payload_offset,
    open_socket,
    path_mtu,
    peer_address,
)

log = logging.getLogger("l2tpv3d")

# Datagrams or frames handled per readiness callback before yielding to the loop, so
# one busy direction cannot starve the other or the control socket.
BATCH = 64
MAX_DATAGRAM = 65535
# Room in front of a frame read from a TAP for the longest L2TP header (flags word,
# session ID, 8-byte cookie, sublayer), so the header is written in place.
HEADROOM = 64
# One buffer per direction for the whole daemon: the loop is single-threaded and a
# packet leaves the buffer (sendto or write) before the next one is read into it.
# Preallocated, so no per-packet allocation; shared, so a session costs no buffer.
_TX_BUF = bytearray(HEADROOM + MAX_DATAGRAM)
_TX_VIEW = memoryview(_TX_BUF)
_TX_FRAME = [_TX_VIEW[HEADROOM:]]
_RX_VIEW = memoryview(bytearray(MAX_DATAGRAM))
# Seconds between re-reads of each TAP's MTU (a user may change it at any time).
MTU_REFRESH = 1.0


class SessionPort:
    """A session's TAP device and its TAP-to-socket loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelPort,
        session: Session,
        tap: Tap,
        on_gone: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.on_gone = on_gone
        self.tunnel = tunnel
        self.session = session
        self.tap = tap
        self._timer: asyncio.TimerHandle | None = None
        self.reorders = session.config.reorder_timeout > 0
        session.set_mtu(tap.mtu)
        loop.add_reader(tap.fd, self._on_tap_readable)

    def _on_tap_readable(self) -> None:
        fd = self.tap.fd
        readv = os.readv
        send = self.tunnel.sock.sendto
        peer = self.tunnel.peer
        next_header = self.session.next_header
        buf = _TX_BUF
        view = _TX_VIEW
        into = _TX_FRAME
        for _ in range(BATCH):
            try:
                n = readv(fd, into)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EBADFD:
                    # Someone ran `ip link del` on the device. The kernel deletes the
                    # session along with its l2tpethN; so do we.
                    self.loop.remove_reader(fd)
                    self.loop.call_soon(self.on_gone)
                else:
                    log.warning("%s: read failed: %s", self.tap.name, exc.strerror)
                return
            hdr = next_header(n)
            start = HEADROOM - len(hdr)
            buf[start:HEADROOM] = hdr
            try:
                send(view[start : HEADROOM + n], peer)
            except OSError:
                # A full socket buffer or no route: the kernel counts tx_errors.
                self.session.tx_failed(HEADROOM + n - start)

    def write(self, frames: list[Payload]) -> None:
        fd = self.tap.fd
        write = os.write
        for frame in frames:
            try:
                write(fd, frame)
            except OSError:
                # The TAP is down or its queue is full: the kernel drops on the device.
                self.session.drops[TAP_WRITE_FAILED] += 1

    def rearm(self) -> None:
        deadline = self.session.next_deadline()
        if deadline is None:
            return
        timer = self._timer
        if timer is not None and not timer.cancelled() and timer.when() <= deadline:
            return
        if timer is not None:
            timer.cancel()
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.write(self.session.poll(self.loop.time()))
        self.rearm()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.loop.remove_reader(self.tap.fd)
        if self._timer is not None:
            self._timer.cancel()
        self.tap.close()

    def state(self) -> dict[str, Any]:
        s = self.session
        out = s.config.to_dict()
        out.update(
            interface=self.tap.name,
            peer_tunnel_id=self.tunnel.tunnel.config.peer_tunnel_id,
            mtu=self.tap.mtu,
            send_seq=s.send_seq,
            recv_seq=s.recv_seq,
            stats=s.counters.as_dict(),
            drops=dict(s.drops),
        )
        return out


class TunnelPort:
    """A tunnel's underlay socket and its socket-to-TAP loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: Tunnel,
        sock: socket.socket,
        other_peers: Container[str] = (),
    ) -> None:
        self.loop = loop
        self.tunnel = tunnel
        self.sock = sock
        self.ports: dict[int, SessionPort] = {}
        cfg = tunnel.config
        self.peer = peer_address(cfg)
        # Every raw socket sees every protocol-115 packet to its address: one from the
        # peer of another IP-encap tunnel is that tunnel's, not a wrong source.
        self.other_peers = other_peers
        self._strip_ip = cfg.encap is Encap.IP and cfg.family == 4
        loop.add_reader(sock.fileno(), self._on_sock_readable)

    def _on_sock_readable(self) -> None:
        recv = self.sock.recvfrom_into
        buf = _RX_VIEW
        receive = self.tunnel.receive
        ports = self.ports
        strip_ip = self._strip_ip
        peer_host, peer_port = self.peer
        now = self.loop.time()
        touched: set[SessionPort] = set()
        for _ in range(BATCH):
            try:
                n, source = recv(buf)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning(
                    "tunnel %d: receive failed: %s", self.tunnel.config.tunnel_id, exc.strerror
                )
                break
            if source[0] != peer_host or source[1] != peer_port:
                if source[0] not in self.other_peers:
                    self.tunnel.count_drop(DROP_WRONG_SOURCE)
                continue
            # A view, not a copy: the frames in it are written out before the next read.
            data = buf[:n]
            if strip_ip:
                if n < 20:
                    continue
                data = data[ipv4_payload_offset(data) :]
            session, frames = receive(data, now)
            if session is None:
                continue
            port = ports[session.session_id]
            if frames:
                port.write(frames)
            if port.reorders:
                touched.add(port)
        for port in touched:
            port.rearm()

    def close(self) -> None:
        for port in self.ports.values():
            port.close()
        self.ports.clear()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def state(self) -> dict[str, Any]:
        out = self.tunnel.config.to_dict()
        out["stats"] = self.tunnel.totals().as_dict()
        out["drops"] = dict(self.tunnel.drops)
        return out


@dataclass(frozen=True, slots=True)
class Options:
    """Data-path tuning: ``l2tpv3d --rcvbuf/--sndbuf/--batch``."""

    rcvbuf: int = DEFAULT_SOCKET_BUFFER
    sndbuf: int = DEFAULT_SOCKET_BUFFER
    batch: int = BATCH
    offload: bool = True  # TAP TSO/checksum offloads, UDP GSO/GRO (Cython path only)


def _implementation(options: Options) -> tuple[Any, Any, Any, Any]:
    """Session, Tunnel and their ports: the Cython engine when datapath chose it."""
    if datapath.IMPLEMENTATION == "cython":
        from .fastport import CythonSessionPort, CythonTunnelPort

        tport = functools.partial(CythonTunnelPort, batch=options.batch, offload=options.offload)
        return datapath.Session, datapath.Tunnel, CythonSessionPort, tport
    return Session, Tunnel, SessionPort, TunnelPort


class Daemon:
    def __init__(self, loop: asyncio.AbstractEventLoop, options: Options | None = None) -> None:
        self.loop = loop
        self.options = options or Options()
        self._session, self._tunnel_cls, self._sport, self._tport = _implementation(self.options)
        self._vnet_hdr = datapath.IMPLEMENTATION == "cython" and self.options.offload
        self.tunnels: dict[int, TunnelPort] = {}
        # IP-encap session IDs are unique per host (kernel l2tp_v3_session_get with no
        # tunnel); this maps each to its tunnel.
        self.ip_sessions: dict[int, int] = {}
        # Peers of IP-encap tunnels, by how many tunnels lead to each.
        self.ip_peers: dict[str, int] = {}
        self._mtu_timer: asyncio.TimerHandle | None = None

    # -- operations, shared by the control socket and the config file ---------------

    def add_tunnel(self, cfg: TunnelConfig) -> None:
        if cfg.tunnel_id in self.tunnels:
            raise StateError(f"tunnel {cfg.tunnel_id} already exists")
        ip = cfg.encap is Encap.IP
        opts = self.options
        sock = open_socket(cfg, opts.rcvbuf, opts.sndbuf)
        tunnel = self._tunnel_cls(cfg, self.ip_sessions.keys() if ip else ())
        try:
            port = self._tport(self.loop, tunnel, sock, self.ip_peers.keys() if ip else ())
        except BaseException:
            sock.close()
            raise
        self.tunnels[cfg.tunnel_id] = port
        if ip:
            self.ip_peers[port.peer[0]] = self.ip_peers.get(port.peer[0], 0) + 1
        log.info(
            "tunnel %d: encap %s from %s to %s",
            cfg.tunnel_id,
            cfg.encap.value,
            cfg.local,
            cfg.remote,
        )

    def del_tunnel(self, tunnel_id: int) -> None:
        port = self._tunnel(tunnel_id)
        # Like the kernel, deleting a tunnel deletes its sessions.
        for sid in list(port.ports):
            self.del_session(tunnel_id, sid)
        port.close()
        del self.tunnels[tunnel_id]
        host = port.peer[0]
        if port.tunnel.config.encap is Encap.IP:
            self.ip_peers[host] -= 1
            if not self.ip_peers[host]:
                del self.ip_peers[host]
        log.info("tunnel %d: deleted", tunnel_id)

    def add_session(self, cfg: SessionConfig) -> None:
        tport = self._tunnel(cfg.tunnel_id)
        tcfg = tport.tunnel.config
        if cfg.session_id in tport.ports:
            raise StateError(f"session {cfg.session_id} already exists in tunnel {cfg.tunnel_id}")
        if tcfg.encap is Encap.IP and cfg.session_id in self.ip_sessions:
            other = self.ip_sessions[cfg.session_id]
            raise StateError(
                f"session {cfg.session_id} already exists in tunnel {other} "
                "(IP-encap session IDs are unique per host)"
            )
        session = self._session(tcfg, cfg)
        mtu = session_mtu(tcfg, cfg, path_mtu(tcfg))
        tap = Tap(cfg.name, mtu, vnet_hdr=self._vnet_hdr)
        tport.tunnel.add(session)
        tport.ports[cfg.session_id] = self._sport(
            self.loop, tport, session, tap, lambda: self._interface_gone(tport, cfg.session_id)
        )
        if tcfg.encap is Encap.IP:
            self.ip_sessions[cfg.session_id] = cfg.tunnel_id
        log.info(
            "session %d in tunnel %d: interface %s mtu %d",
            cfg.session_id,
            cfg.tunnel_id,
            tap.name,
            mtu,
        )

    def del_session(self, tunnel_id: int, session_id: int) -> None:
        tport = self._tunnel(tunnel_id)
        port = tport.ports.pop(session_id, None)
        if port is None:
            raise StateError(f"session {session_id} does not exist in tunnel {tunnel_id}")
        port.close()
        tport.tunnel.remove(session_id)
        if tport.tunnel.config.encap is Encap.IP:
            self.ip_sessions.pop(session_id, None)
        log.info("session %d in tunnel %d: deleted", session_id, tunnel_id)

    def _interface_gone(self, tport: TunnelPort, session_id: int) -> None:
        port = tport.ports.get(session_id)
        if port is None:
            return
        log.info("interface %s was deleted: deleting its session", port.tap.name)
        with contextlib.suppress(L2TPError):
            self.del_session(tport.tunnel.config.tunnel_id, session_id)

    def show_tunnels(self, tunnel_id: int | None = None) -> list[dict[str, Any]]:
        return [
            port.state()
            for tid, port in self.tunnels.items()
            if tunnel_id is None or tid == tunnel_id
        ]

    def show_sessions(
        self, tunnel_id: int | None = None, session_id: int | None = None
    ) -> list[dict[str, Any]]:
        return [
            sport.state()
            for tid, tport in self.tunnels.items()
            if tunnel_id is None or tid == tunnel_id
            for sid, sport in tport.ports.items()
            if session_id is None or sid == session_id
        ]

    def refresh_mtus(self) -> None:
        """Follow `ip link set l2tpethN mtu ...`, as the kernel checks the live MTU."""
        for tport in self.tunnels.values():
            for sport in tport.ports.values():
                sport.session.set_mtu(sport.tap.mtu)
        self._mtu_timer = self.loop.call_later(MTU_REFRESH, self.refresh_mtus)

    def close(self) -> None:
        if self._mtu_timer is not None:
            self._mtu_timer.cancel()
        for tid in list(self.tunnels):
            with contextlib.suppress(L2TPError):
                self.del_tunnel(tid)

    def _tunnel(self, tunnel_id: int) -> TunnelPort:
        port = self.tunnels.get(tunnel_id)
        if port is None:
            raise StateError(f"tunnel {tunnel_id} does not exist")
        return port

    # -- control socket ---------------------------------------------------------------

    async def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"ok": True, "result": self._dispatch(message)}
        except L2TPError as exc:
            return {"ok": False, "error": str(exc)}
        except (TypeError, ValueError, KeyError) as exc:
            return {"ok": False, "error": f"malformed request: {exc}"}
        except Exception as exc:
            # A bug of ours must not take the pseudowires down with it: answer, log
            # one line (the traceback only with -v), carry on.
            log.error("internal error handling %s: %r", message.get("op"), exc)
            log.debug("traceback", exc_info=True)
            return {"ok": False, "error": f"internal error: {exc!r}"}

    def _dispatch(self, msg: dict[str, Any]) -> Any:
        op = msg.get("op")
        if op == "add_tunnel":
            self.add_tunnel(TunnelConfig.from_dict(msg["config"]))
            return None
        if op == "del_tunnel":
            self.del_tunnel(_int(msg, "tunnel_id"))
            return None
        if op == "add_session":
            self.add_session(SessionConfig.from_dict(msg["config"]))
            return None
        if op == "del_session":
            self.del_session(_int(msg, "tunnel_id"), _int(msg, "session_id"))
            return None
        if op == "show_tunnels":
            return self.show_tunnels(_opt_int(msg, "tunnel_id"))
        if op == "show_sessions":
            return self.show_sessions(_opt_int(msg, "tunnel_id"), _opt_int(msg, "session_id"))
        if op == "ping":
            return {"version": __version__, "pid": os.getpid()}
        raise StateError(f'unknown operation "{op}"')


def _int(msg: dict[str, Any], key: str) -> int:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateError(f'argument "{key}" is required')
    return value


def _opt_int(msg: dict[str, Any], key: str) -> int | None:
    return None if msg.get(key) is None else _int(msg, key)


async def run(socket_path: str, config_path: str | None, options: Options | None = None) -> int:
    global BATCH
    options = options or Options()
    BATCH = options.batch
    loop = asyncio.get_running_loop()
    daemon = Daemon(loop, options)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = None
    try:
        if config_path is not None:
            tunnels, sessions = load_config(config_path)
            for tcfg in tunnels:
                daemon.add_tunnel(tcfg)
            for scfg in sessions:
                daemon.add_session(scfg)
        server = await serve(socket_path, daemon.handle)
        daemon.refresh_mtus()
        log.info(
            "listening on %s (version %s, pid %d, %s data path)",
            socket_path,
            __version__,
            os.getpid(),
            datapath.IMPLEMENTATION,
        )
        await stop.wait()
        log.info("stopping")
        return 0
    except L2TPError as exc:
        print(f"l2tpv3d: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)
        daemon.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="l2tpv3d", description="Userspace L2TPv3 Ethernet pseudowire daemon."
    )
    parser.add_argument(
        "-S",
        "--socket",
        default=os.environ.get(CONTROL_SOCKET_ENV, DEFAULT_CONTROL_SOCKET),
        help=f"control socket (default ${CONTROL_SOCKET_ENV} or {DEFAULT_CONTROL_SOCKET})",
    )
    parser.add_argument("--config", help="TOML file of tunnels and sessions to bring up")
    parser.add_argument(
        "--rcvbuf",
        type=_size,
        default=DEFAULT_SOCKET_BUFFER,
        metavar="BYTES",
        help="tunnel socket receive buffer (default 4 MiB; suffixes K, M)",
    )
    parser.add_argument(
        "--sndbuf",
        type=_size,
        default=DEFAULT_SOCKET_BUFFER,
        metavar="BYTES",
        help="tunnel socket send buffer (default 4 MiB; suffixes K, M)",
    )
    parser.add_argument(
        "--batch",
        type=_batch,
        default=BATCH,
        metavar="N",
        help=f"datagrams or frames per system call and wakeup, 1..1024 (default {BATCH})",
    )
    parser.add_argument(
        "--no-offload",
        dest="offload",
        action="store_false",
        help="Cython path: no TAP TSO/checksum offloads, no UDP GSO/GRO",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"l2tpv3d {__version__}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="l2tpv3d: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        options = Options(
            rcvbuf=args.rcvbuf, sndbuf=args.sndbuf, batch=args.batch, offload=args.offload
        )
        return int(runner(run(args.socket, args.config, options)))
    except KeyboardInterrupt:
        return 0


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024 * 1024}
    mult = units.get(text[-1:].upper(), 1)
    digits = text[:-1] if mult > 1 else text
    if not digits.isdigit() or not 4096 <= int(digits) * mult <= 1 << 30:
        raise argparse.ArgumentTypeError(f'invalid size "{text}": 4K..1G bytes')
    return int(digits) * mult


def _batch(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f'invalid batch "{text}": 1..1024')
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
