"""The daemon's registry of tunnels and sessions, and the operations on it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from typing import Any

from l2tpv3 import __version__
from l2tpv3.config import Encap, SessionConfig, TunnelConfig
from l2tpv3.errors import L2TPError, StateError
from l2tpv3.io import datapath
from l2tpv3.io.ports import Options, SessionPort, TunnelPort
from l2tpv3.io.sockets import (
    open_socket,
    path_mtu,
)
from l2tpv3.io.tap import Tap
from l2tpv3.proto.layout import session_mtu
from l2tpv3.proto.session import Session
from l2tpv3.proto.tunnel import Tunnel

log = logging.getLogger("l2tpv3d")
# Seconds between re-reads of each TAP's MTU (a user may change it at any time).
MTU_REFRESH = 1.0


def _implementation(options: Options) -> tuple[Any, Any, Any, Any]:
    """Session, Tunnel and their ports: the Cython engine when datapath chose it."""
    if datapath.IMPLEMENTATION == "cython":
        from l2tpv3.io.engine import CythonSessionPort, CythonTunnelPort

        tport = functools.partial(CythonTunnelPort, batch=options.batch, offload=options.offload)
        return datapath.Session, datapath.Tunnel, CythonSessionPort, tport
    sport = functools.partial(SessionPort, batch=options.batch)
    return Session, Tunnel, sport, functools.partial(TunnelPort, batch=options.batch)


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
