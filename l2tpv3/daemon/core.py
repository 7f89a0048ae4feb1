"""The daemon's registry of tunnels and sessions, and the operations on it.

:class:`Daemon` implements :class:`l2tpv3.control.protocol.Operations`, the daemon side
of the control protocol's op table; the config file calls the same methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from l2tpv3 import __version__
from l2tpv3.config import Encap, LivenessMode, SaConfig, SaDir, SessionConfig, TunnelConfig
from l2tpv3.control.protocol import (
    LivenessState,
    OffloadState,
    Pong,
    SaState,
    SessionState,
    TunnelState,
)
from l2tpv3.daemon.liveness import LivenessDriver
from l2tpv3.daemon.offloads import cost_note, offload_state
from l2tpv3.errors import L2TPError, StateError
from l2tpv3.io.api import Buffers, Options, SessionPortAPI, TunnelPortAPI
from l2tpv3.io.datapath import PYTHON, Implementation
from l2tpv3.io.ivstate import DEFAULT_STATE_DIR, IvStore
from l2tpv3.io.netlink import AddrEvent, LinkChange, LinkEvent, LinkMonitor, query_link
from l2tpv3.io.ports import TunnelPort
from l2tpv3.io.sockets import local_address_ready, open_socket, path_mtu, peer_address
from l2tpv3.io.tap import Tap
from l2tpv3.proto.api import TrunkAPI, TunnelAPI
from l2tpv3.proto.counters import TRUNK_DROP_REASONS
from l2tpv3.proto.esp import EspShape
from l2tpv3.proto.espdemux import esp_demux
from l2tpv3.proto.layout import session_mtu
from l2tpv3.proto.liveness import ControlChannel

if TYPE_CHECKING:
    from l2tpv3.io.engine import CythonTunnelPort, EngineEspPath
    from l2tpv3.io.espport import EspPath

    _EspPort = TunnelPort | CythonTunnelPort

__all__ = ["Daemon", "session_state", "tunnel_state"]

log = logging.getLogger("l2tpv3d")


@dataclass(slots=True)
class _Trunk:
    """A trunk TAP shared by sessions of one tunnel (docs/usage.md "Per-VLAN sessions")."""

    tunnel_id: int
    tap: Tap
    trunk: TrunkAPI


def tunnel_state(
    tunnel: TunnelAPI,
    waiting: bool = False,
    offload: OffloadState | None = None,
    control: ControlChannel | None = None,
    trunks: tuple[TrunkAPI, ...] = (),
) -> TunnelState:
    """``show_tunnels``' record for one tunnel, of either implementation; the drops of
    its trunks (frames read from them that no session takes) count as its own."""
    counts = control.stats() if control is not None else {}
    drops = dict(tunnel.drops)
    drops.update(dict.fromkeys(TRUNK_DROP_REASONS, 0))
    for trunk in trunks:
        for reason, n in trunk.drops.items():
            drops[reason] = drops.get(reason, 0) + n
    return TunnelState(
        tunnel.config,
        tunnel.totals().as_dict(),
        drops,
        waiting,
        offload,
        counts if any(counts.values()) else None,
    )


def session_state(
    port: SessionPortAPI, peer_tunnel_id: int, liveness: LivenessState | None = None
) -> SessionState:
    """``show_sessions``' record for one session's port, of either implementation."""
    s = port.session
    return SessionState(
        config=s.config,
        interface=port.tap.name,
        peer_tunnel_id=peer_tunnel_id,
        mtu=port.tap.mtu,
        send_seq=s.send_seq,
        recv_seq=s.recv_seq,
        stats=s.counters.as_dict(),
        drops=dict(s.drops),
        features=dict(s.features),
        liveness=liveness,
    )


class Daemon:
    """Tunnels and sessions on one implementation of the data path."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        impl: Implementation,
        options: Options | None = None,
        state_dir: str = DEFAULT_STATE_DIR,
    ) -> None:
        self.loop = loop
        self.impl = impl
        self.options = options or Options()
        self._vnet_hdr = impl.offloads.tap_vnet_hdr and self.options.offload
        # ESP (issue 9): the engine runs tunnels with SAs itself; built without libcrypto
        # (impl.esp_fallback) they move to the pure-Python ports. Their implementation
        # per tunnel, and the durable IV reservations.
        self._impl_of: dict[int, Implementation] = {}
        self.ivs = IvStore(state_dir)
        # The pure-Python ports' packet buffers, one per direction for the daemon.
        self.buffers = Buffers()
        # IP-encap session IDs and peers: the one registry, shared by every tunnel.
        self.ownership = impl.ownership()
        self.tunnels: dict[int, TunnelPortAPI] = {}
        # Each session's interface by ifindex: its name and MTU follow netlink events
        # (`ip link set l2tpethN mtu N | name X`), as the kernel reads the live device.
        self._ifindex: dict[int, tuple[int, int]] = {}
        # Subscribed before the first TAP exists, so no event of one can be missed.
        # Tunnels whose local address is not usable yet (absent, or IPv6 in DAD): their
        # sockets are bound with FREEBIND and work once it is; `show` says they wait.
        self.waiting: set[int] = set()
        # Liveness: each tunnel's HELLO side (answered whatever the sessions' modes)
        # and each session's driver, when its liveness is not off.
        self.channels: dict[int, ControlChannel] = {}
        self.liveness: dict[tuple[int, int], LivenessDriver] = {}
        # Trunk TAPs by name, each shared by the sessions of one tunnel.
        self.trunks: dict[str, _Trunk] = {}
        self.links = LinkMonitor(
            loop, self._on_link, on_addr=self._on_addr, on_overrun=self._reread_links
        )

    # -- operations, shared by the control socket and the config file ---------------

    def add_tunnel(self, config: TunnelConfig, impl: Implementation | None = None) -> None:
        cfg = config
        impl = impl or self.impl
        if cfg.tunnel_id in self.tunnels:
            raise StateError(f"tunnel {cfg.tunnel_id} already exists")
        opts = self.options
        sock = open_socket(cfg, opts.rcvbuf, opts.sndbuf)
        ip = cfg.encap is Encap.IP
        if ip:
            host = peer_address(cfg)[0]
            self.ownership.add_tunnel(cfg.tunnel_id, cfg.family, str(cfg.local), host)
        try:
            tunnel = impl.tunnel(cfg, self.ownership)
            port = impl.tunnel_port(self.loop, tunnel, sock, self.ownership, opts, self.buffers)
        except BaseException:
            if ip:
                self.ownership.remove_tunnel(cfg.tunnel_id)
            sock.close()
            raise
        self.tunnels[cfg.tunnel_id] = port
        self._impl_of[cfg.tunnel_id] = impl
        tid = cfg.tunnel_id
        self.channels[tid] = ControlChannel(udp=not ip)
        port.on_control = lambda msgs: self._on_control(tid, msgs)
        log.info(
            "tunnel %d: encap %s from %s to %s",
            cfg.tunnel_id,
            cfg.encap.value,
            cfg.local,
            cfg.remote,
        )
        self._check_local(cfg.tunnel_id)
        note = cost_note(cfg, self._offload(port))
        if note is not None:
            log.info("%s", note)

    def del_tunnel(self, tunnel_id: int) -> None:
        port = self._tunnel(tunnel_id)
        # Like the kernel, deleting a tunnel deletes its sessions.
        for sid in list(port.ports):
            self.del_session(tunnel_id, sid)
        had_esp = self._esp_of(port) is not None
        port.close()
        del self.tunnels[tunnel_id]
        self._impl_of.pop(tunnel_id, None)
        self.channels.pop(tunnel_id, None)
        self.waiting.discard(tunnel_id)
        if port.tunnel.config.encap is Encap.IP:
            self.ownership.remove_tunnel(tunnel_id)
        if had_esp:
            self._esp_demux()
        log.info("tunnel %d: deleted", tunnel_id)

    def add_session(self, config: SessionConfig) -> None:
        self._open_session(config)

    def _open_session(self, config: SessionConfig, keep: Tap | None = None) -> None:
        """A session, on a new TAP or on ``keep`` (a device handed over, see _python_port)."""
        cfg = config
        tport = self._tunnel(cfg.tunnel_id)
        tcfg = tport.tunnel.config
        if cfg.session_id in tport.ports:
            raise StateError(f"session {cfg.session_id} already exists in tunnel {cfg.tunnel_id}")
        tid, sid = cfg.tunnel_id, cfg.session_id
        if cfg.trunk is not None:
            self._open_trunk_session(tport, cfg)
            return
        ip = tcfg.encap is Encap.IP
        if ip:
            # StateError if another IP-encap tunnel has this session ID.
            self.ownership.claim(tid, sid)
        impl = self._impl_of.get(tid, self.impl)
        vnet_hdr = impl.offloads.tap_vnet_hdr and self.options.offload
        try:
            session = impl.session(tcfg, cfg)
            if keep is None:
                mtu = session_mtu(tcfg, cfg, path_mtu(tcfg), _out_shape(tport))
                tap = Tap(cfg.name, mtu, vnet_hdr=vnet_hdr)
            else:
                tap = keep.reattach(vnet_hdr)
                mtu = tap.mtu
            try:
                tport.open_session(session, tap, lambda: self._interface_gone(tid, sid))
            except BaseException:
                tap.close()
                raise
        except BaseException:
            if ip:
                self.ownership.release(sid)
            raise
        # The TAP's own creation events (MTU 1500, then the session's) are queued
        # already: handled before the ifindex is known, they cannot set a stale MTU.
        self.links.drain()
        self._ifindex[tap.ifindex] = (tid, sid)
        self._session_opened(tport, cfg, tap, mtu)

    def _open_trunk_session(self, tport: TunnelPortAPI, cfg: SessionConfig) -> None:
        """A session on VLAN ``cfg.vlan`` of the trunk TAP ``cfg.trunk``, made with its
        first session. All of a trunk's sessions are in one tunnel, whose engine reads
        the trunk and demuxes by VID (docs/usage.md "Per-VLAN sessions")."""
        assert cfg.trunk is not None and cfg.vlan is not None
        name, vid = cfg.trunk, cfg.vlan
        tid, sid = cfg.tunnel_id, cfg.session_id
        tcfg = tport.tunnel.config
        rec = self.trunks.get(name)
        if rec is not None and rec.tunnel_id != tid:
            raise StateError(
                f"trunk {name} carries sessions of tunnel {rec.tunnel_id}: all sessions "
                "of one trunk must be in one tunnel"
            )
        if rec is not None and vid in rec.trunk.vids:
            raise StateError(
                f"VLAN {vid} of trunk {name} is taken by session {rec.trunk.vids[vid]}"
            )
        ip = tcfg.encap is Encap.IP
        if ip:
            self.ownership.claim(tid, sid)
        impl = self._impl_of.get(tid, self.impl)
        new = rec is None
        try:
            session = impl.session(tcfg, cfg)
            if rec is None:
                mtu = session_mtu(tcfg, cfg, path_mtu(tcfg))
                # No virtio-net header: the engine demuxes whole frames by their tag.
                tap = Tap(name, mtu)
                try:
                    trunk = impl.trunk(name)
                    tport.open_trunk(trunk, tap, lambda: self._trunk_gone(name))
                except BaseException:
                    tap.close()
                    raise
                rec = _Trunk(tid, tap, trunk)
            try:
                tport.open_session(session, rec.tap, lambda: self._interface_gone(tid, sid))
                rec.trunk.add(vid, sid)
            except BaseException:
                if sid in tport.ports:
                    tport.close_session(sid)
                if new:
                    tport.close_trunk(rec.trunk)
                    rec.tap.close()
                raise
        except BaseException:
            if ip:
                self.ownership.release(sid)
            raise
        if new:
            self.trunks[name] = rec
            self.links.drain()
            log.info("trunk %s: interface for the VLANs of tunnel %d", name, tid)
        self._session_opened(tport, cfg, rec.tap, rec.tap.mtu)

    def _trunk_gone(self, name: str) -> None:
        rec = self.trunks.get(name)
        if rec is None:
            return
        for sid in list(rec.trunk.vids.values()):
            with contextlib.suppress(L2TPError):
                self._del_session(rec.tunnel_id, sid, f"deleted with its trunk {name}")

    def _session_opened(self, tport: TunnelPortAPI, cfg: SessionConfig, tap: Tap, mtu: int) -> None:
        tid, sid = cfg.tunnel_id, cfg.session_id
        log.info(
            "session %d in tunnel %d: interface %s mtu %d%s",
            cfg.session_id,
            cfg.tunnel_id,
            tap.name,
            mtu,
            f" vlan {cfg.vlan}{' pop' if cfg.vlan_pop else ''}" if cfg.trunk else "",
        )
        if cfg.liveness is not LivenessMode.OFF:
            self.liveness[tid, sid] = LivenessDriver(
                self.loop, cfg, tport.ports[sid], tport, self.channels[tid]
            )

    def del_session(self, tunnel_id: int, session_id: int) -> None:
        self._del_session(tunnel_id, session_id, "deleted")

    def _del_session(self, tunnel_id: int, session_id: int, why: str) -> None:
        tport = self._tunnel(tunnel_id)
        port = tport.ports.get(session_id)
        trunk = None
        if port is not None:
            scfg = port.session.config
            if scfg.trunk is not None and scfg.vlan is not None:
                trunk = self.trunks.get(scfg.trunk)
                if trunk is not None:
                    trunk.trunk.remove(scfg.vlan)
            else:
                self._ifindex.pop(port.tap.ifindex, None)
        driver = self.liveness.pop((tunnel_id, session_id), None)
        if driver is not None:
            driver.close()
        if not tport.close_session(session_id):
            raise StateError(f"session {session_id} does not exist in tunnel {tunnel_id}")
        if trunk is not None and not trunk.trunk.vids:
            # Deleted with its last session.
            tport.close_trunk(trunk.trunk)
            trunk.tap.close()
            del self.trunks[trunk.trunk.name]
            log.info("trunk %s: deleted with its last session", trunk.trunk.name)
        if tport.tunnel.config.encap is Encap.IP:
            self.ownership.release(session_id)
        log.info("session %d in tunnel %d: %s", session_id, tunnel_id, why)

    def _interface_gone(self, tunnel_id: int, session_id: int) -> None:
        tport = self.tunnels.get(tunnel_id)
        port = None if tport is None else tport.ports.get(session_id)
        if port is None:
            return
        # As the kernel's l2tp_eth: the session goes with its netdev (one log line).
        with contextlib.suppress(L2TPError):
            self._del_session(tunnel_id, session_id, f"deleted with its interface {port.tap.name}")

    def show_tunnels(self, tunnel_id: int | None = None) -> list[TunnelState]:
        return [
            tunnel_state(
                port.tunnel,
                tid in self.waiting,
                self._offload(port),
                self.channels.get(tid),
                tuple(t.trunk for t in self.trunks.values() if t.tunnel_id == tid),
            )
            for tid, port in self.tunnels.items()
            if tunnel_id is None or tid == tunnel_id
        ]

    def show_sessions(
        self, tunnel_id: int | None = None, session_id: int | None = None
    ) -> list[SessionState]:
        return [
            session_state(sport, tport.tunnel.config.peer_tunnel_id, self._liveness_state(tid, sid))
            for tid, tport in self.tunnels.items()
            if tunnel_id is None or tid == tunnel_id
            for sid, sport in tport.ports.items()
            if session_id is None or sid == session_id
        ]

    def _liveness_state(self, tunnel_id: int, session_id: int) -> LivenessState | None:
        driver = self.liveness.get((tunnel_id, session_id))
        if driver is None:
            return None
        r = driver.report()
        channel = self.channels[tunnel_id]
        return LivenessState(
            r.state, r.last_rx_ago, r.last_seen_ago, r.transitions, r.mac, channel.stats()
        )

    def _on_control(self, tunnel_id: int, msgs: list[bytes]) -> None:
        """Control messages from a tunnel's peer: HELLOs are answered (ZLB ACK) and
        counted whatever the sessions' liveness; the rest is counted as ignored."""
        channel = self.channels.get(tunnel_id)
        tport = self.tunnels.get(tunnel_id)
        if channel is None or tport is None:
            return
        now = time.monotonic()
        for msg in msgs:
            for reply in channel.receive(msg, now):
                tport.send_control(reply)

    def ping(self) -> Pong:
        return Pong(__version__, os.getpid())

    # -- ESP security associations (issue 9) -----------------------------------------

    def _esp_port(self, tunnel_id: int) -> _EspPort:
        """The port that runs the tunnel's ESP: its own (the Python ports, or the
        engine's when built with libcrypto), or the Python one it moves to."""
        port = self._tunnel(tunnel_id)
        impl = self._impl_of.get(tunnel_id, self.impl)
        if isinstance(port, TunnelPort):
            return port
        if impl.esp_fallback is None and hasattr(port, "esp_path"):
            return cast("_EspPort", port)
        return self._python_port(tunnel_id)

    @staticmethod
    def _esp_of(port: TunnelPortAPI) -> EspPath | EngineEspPath | None:
        esp: EspPath | EngineEspPath | None = getattr(port, "esp", None)
        return esp

    def _python_port(self, tunnel_id: int) -> TunnelPort:
        """The tunnel's port on the pure-Python path, moving it there if needed: the
        C engine was built without libcrypto. Its sessions are made again on the same
        interfaces."""
        port = self._tunnel(tunnel_id)
        if isinstance(port, TunnelPort):
            return port
        cfg = port.tunnel.config
        for sp in port.ports.values():
            if sp.session.config.trunk is not None:
                raise StateError(
                    f"tunnel {tunnel_id}: ESP runs on the Python path, and its trunk "
                    f"sessions cannot be moved there yet (trunk {sp.session.config.trunk})"
                )
            if sp.tap.netnsid is not None:
                raise StateError(
                    f"tunnel {tunnel_id}: ESP runs on the Python path, and interface "
                    f"{sp.tap.name} in another network namespace cannot be handed to it"
                )
        # The sessions keep their interfaces (addresses, bridge ports, MTU, up/down):
        # each TAP device is kept while the old port lets go of it and handed to the
        # new one; the counters start again, as the sessions are new.
        kept = [(sp.session.config, sp.tap) for sp in port.ports.values()]
        done = 0
        try:
            for _, tap in kept:
                tap.keep()
        except StateError:
            for _, tap in kept:
                tap.keep(False)
            raise
        try:
            log.info(
                "tunnel %d: ESP runs on the Python path: the tunnel moves there, its "
                "interfaces stay and its counters start again",
                tunnel_id,
            )
            self.del_tunnel(tunnel_id)
            self.add_tunnel(cfg, PYTHON)
            for scfg, tap in kept:
                self._open_session(scfg, keep=tap)
                done += 1
        except BaseException:
            # No device may outlive the daemon: those not handed over go now.
            for _, tap in kept[done:]:
                tap.discard()
            raise
        new = self.tunnels[tunnel_id]
        assert isinstance(new, TunnelPort)
        return new

    def add_sa(self, config: SaConfig) -> None:
        self._check_inbound_spi(config)
        port = self._esp_port(config.tunnel_id)
        before = _out_shape(port)
        esp = port.esp_path(self.ivs)
        try:
            esp.add(config)
        finally:
            port.esp_changed()
            self._esp_mtus(port, before)
            self._esp_demux()
        what = config.aead or f"{config.enc} {config.auth}"
        log.info(
            "tunnel %d: SA dir %s spi 0x%08x %s%s",
            config.tunnel_id,
            config.dir.value,
            config.spi,
            what,
            " espinudp" if config.espinudp else "",
        )

    def del_sa(self, tunnel_id: int, dir: str, spi: int) -> None:
        port = self._tunnel(tunnel_id)
        esp = self._esp_of(port)
        if esp is None:
            raise StateError(f"tunnel {tunnel_id} has no SA dir {dir} spi 0x{spi:08x}")
        before = _out_shape(port)
        esp.remove(SaDir(dir), spi)
        cast("_EspPort", port).esp_changed()
        self._esp_mtus(port, before)
        self._esp_demux()
        log.info("tunnel %d: SA dir %s spi 0x%08x deleted", tunnel_id, dir, spi)

    def _check_inbound_spi(self, config: SaConfig) -> None:
        """An inbound SPI is unique per local address, as the kernel keys its SAs by
        destination, SPI and protocol (`ip xfrm state add` says "File exists"): every
        tunnel on that address hears the packet, and two SAs under one SPI would each
        take the other's packets for forgeries (auth_failed)."""
        if config.dir is not SaDir.IN:
            return
        mine = self._tunnel(config.tunnel_id).tunnel.config
        for tid, port in self.tunnels.items():
            other = port.tunnel.config
            esp = self._esp_of(port)
            if tid == config.tunnel_id or esp is None or config.spi not in esp.in_cfgs:
                continue
            if (other.family, other.local) == (mine.family, mine.local):
                raise StateError(
                    f"tunnel {tid} already has inbound SA spi 0x{config.spi:08x} on "
                    f"{mine.local}: an inbound SPI must be unique per local address"
                )

    def _esp_demux(self) -> None:
        """After SAs or tunnels changed: tell every tunnel with an ESP socket the other
        tunnels' inbound SPIs its socket also hears, and whether it is the one that
        counts an SPI none of them knows (proto/espdemux.py has the rule)."""
        paths: dict[int, EspPath | EngineEspPath] = {}
        for tid, port in self.tunnels.items():
            esp = self._esp_of(port)
            if esp is not None and esp.listener is not None:
                paths[tid] = esp
        plan = esp_demux(
            {
                tid: (esp.listener, frozenset(esp.in_cfgs))
                for tid, esp in paths.items()
                if esp.listener is not None
            }
        )
        for tid, part in plan.items():
            paths[tid].set_foreign(part.foreign, part.count_unknown)

    def _esp_mtus(self, port: TunnelPortAPI, before: EspShape | None) -> None:
        """The sessions' MTUs after the outbound SA changed from ``before``.

        A session whose interface has the default MTU for the old ESP overhead (the one
        the daemon gave it) gets the default for the new one, so a full-size frame
        still fits in the path MTU once sealed (lowered when an SA is added, raised
        back when it is deleted). An MTU set by hand (``ip link set DEV mtu N``) is the
        user's: it is kept, with a warning when it is now too large to fit.
        """
        after = _out_shape(port)
        if after == before:
            return
        tcfg = port.tunnel.config
        pmtu = path_mtu(tcfg)
        for sport in port.ports.values():
            scfg = sport.session.config
            tap = sport.tap
            old = session_mtu(tcfg, scfg, pmtu, before)
            new = session_mtu(tcfg, scfg, pmtu, after)
            if tap.mtu == old and new != old:
                try:
                    tap.set_device_mtu(new)
                except StateError as exc:
                    log.warning("%s", exc)
                    continue
                sport.set_mtu(new)
                log.info(
                    "interface %s: mtu %d (was %d): %s",
                    tap.name,
                    new,
                    old,
                    "the ESP overhead of the outbound SA"
                    if after is not None
                    else "no outbound SA, no ESP overhead",
                )
            elif after is not None and tap.mtu > new:
                log.warning(
                    "interface %s: mtu %d was set by hand and is kept, but a full-size "
                    "frame no longer fits in the path once sealed in ESP (at most %d): "
                    "the outer packets will be fragmented or dropped",
                    tap.name,
                    tap.mtu,
                    new,
                )

    def show_sas(self, tunnel_id: int | None = None) -> list[SaState]:
        out: list[SaState] = []
        for tid, port in self.tunnels.items():
            esp = self._esp_of(port)
            if esp is None or (tunnel_id is not None and tid != tunnel_id):
                continue
            if esp.out is not None and esp.out_cfg is not None:
                sa = esp.out
                out.append(SaState(esp.out_cfg.to_dict(), sa.counters.as_dict(), dict(sa.drops)))
            for spi, scfg in esp.in_cfgs.items():
                sa = esp.inbound.sas[spi]
                drops = {k: v + esp.inbound.drops[k] for k, v in sa.drops.items()}
                out.append(SaState(scfg.to_dict(), sa.counters.as_dict(), drops))
        return out

    # -- the interfaces, followed through netlink events ---------------------------

    def _session_port(self, ifindex: int) -> tuple[int, int, SessionPortAPI] | None:
        key = self._ifindex.get(ifindex)
        if key is None:
            return None
        tport = self.tunnels.get(key[0])
        port = None if tport is None else tport.ports.get(key[1])
        if port is None:
            del self._ifindex[ifindex]
            return None
        return key[0], key[1], port

    def _on_link(self, event: LinkEvent) -> None:
        trunk = next((t for t in self.trunks.values() if t.tap.ifindex == event.ifindex), None)
        if trunk is not None:
            self._on_trunk_link(trunk, event)
            return
        found = self._session_port(event.ifindex)
        if found is None:
            return
        tid, sid, port = found
        tap = port.tap
        if event.change is LinkChange.DELETED:
            self._interface_gone(tid, sid)
            return
        if event.change is LinkChange.MOVED:
            # The TAP's descriptor works wherever the device is, as an l2tpethN moved
            # with `ip link set ... netns` keeps working in the kernel: the session keeps
            # running with the MTU it had. This namespace no longer sees the device's
            # events, so later changes made there are not followed.
            del self._ifindex[event.ifindex]
            tap.netnsid = event.netnsid
            log.warning(
                "interface %s was moved to another network namespace (id %s): its "
                "session keeps running with mtu %d; changes made there are not followed",
                tap.name,
                event.netnsid,
                tap.mtu,
            )
            return
        if event.name and event.name != tap.name:
            log.info("interface %s was renamed to %s", tap.name, event.name)
            tap.name = event.name
        self._set_mtu(port, event.mtu)

    def _on_trunk_link(self, rec: _Trunk, event: LinkEvent) -> None:
        """A trunk's device changed: its sessions follow it as one."""
        tap, name = rec.tap, rec.trunk.name
        if event.change is LinkChange.DELETED:
            self._trunk_gone(name)
            return
        if event.change is LinkChange.MOVED:
            tap.netnsid = event.netnsid
            log.warning(
                "trunk %s was moved to another network namespace (id %s): its sessions "
                "keep running with mtu %d; changes made there are not followed",
                tap.name,
                event.netnsid,
                tap.mtu,
            )
            return
        if event.name and event.name != tap.name:
            log.info("trunk %s was renamed to %s", tap.name, event.name)
            tap.name = event.name
        if event.mtu > 0 and event.mtu != tap.mtu:
            tport = self.tunnels.get(rec.tunnel_id)
            for sid in rec.trunk.vids.values():
                port = None if tport is None else tport.ports.get(sid)
                if port is not None:
                    port.set_mtu(event.mtu)
            tap.mtu = event.mtu
            log.info("trunk %s: mtu %d", tap.name, event.mtu)

    def _set_mtu(self, port: SessionPortAPI, mtu: int) -> None:
        # A message without an MTU (0) changes nothing: it must never make every frame
        # too long.
        if mtu > 0 and mtu != port.tap.mtu:
            port.set_mtu(mtu)
            log.info("interface %s: mtu %d", port.tap.name, mtu)

    def _check_local(self, tunnel_id: int) -> None:
        """Whether the tunnel's local address is usable now; log when that changes."""
        port = self.tunnels.get(tunnel_id)
        if port is None:
            return
        cfg = port.tunnel.config
        ready = local_address_ready(cfg)
        if not ready and tunnel_id not in self.waiting:
            self.waiting.add(tunnel_id)
            log.warning("tunnel %d: waiting for local address %s", tunnel_id, cfg.local)
        elif ready and tunnel_id in self.waiting:
            self.waiting.discard(tunnel_id)
            log.info("tunnel %d: local address %s is up", tunnel_id, cfg.local)

    def _on_addr(self, event: AddrEvent) -> None:
        # An IPv6 address sends RTM_NEWADDR when added (tentative) and again when DAD
        # completes; RTM_DELADDR when removed: the tunnel then waits again. Every tunnel
        # of the family is asked again (a point-to-point IPv4 address carries its peer in
        # IFA_ADDRESS): one throwaway bind each, on a rare event.
        version = 6 if event.family == socket.AF_INET6 else 4
        for tid, port in list(self.tunnels.items()):
            if port.tunnel.config.family == version:
                self._check_local(tid)

    def _reread_links(self) -> None:
        """Events were lost (the netlink queue overflowed): ask for each interface."""
        for tid in list(self.tunnels):
            self._check_local(tid)
        for ifindex in list(self._ifindex):
            try:
                event = query_link(ifindex)
            except OSError as exc:
                log.warning("netlink: cannot read interface %d: %s", ifindex, exc.strerror)
                continue
            if event is not None:
                self._on_link(event)

    def close(self) -> None:
        self.links.close()
        for tid in list(self.tunnels):
            with contextlib.suppress(L2TPError):
                self.del_tunnel(tid)

    def _offload(self, port: TunnelPortAPI) -> OffloadState:
        # The tunnel's own implementation: built without libcrypto, an ESP tunnel runs
        # on the Python path even when the daemon chose the compiled one (add_sa).
        impl = self._impl_of.get(port.tunnel.config.tunnel_id, self.impl)
        return offload_state(
            port.tunnel.config, impl.offloads, self.options.offload, port.offloads()
        )

    def capture_open(self, tunnel_id: int, session_id: int) -> TunnelPortAPI:
        """Start recording a tunnel's datagrams (``session_id`` 0: every session's) for
        `l2tpv3 capture` (daemon/capture.py); its port, which the caller stops."""
        port = self._tunnel(tunnel_id)
        if session_id and session_id not in port.ports:
            raise StateError(f"session {session_id} does not exist in tunnel {tunnel_id}")
        port.capture_start(session_id)
        return port

    def _tunnel(self, tunnel_id: int) -> TunnelPortAPI:
        port = self.tunnels.get(tunnel_id)
        if port is None:
            raise StateError(f"tunnel {tunnel_id} does not exist")
        return port


def _out_shape(port: TunnelPortAPI) -> EspShape | None:
    """The ESP overhead of ``port``'s outbound SA, None when it sends in clear."""
    esp = Daemon._esp_of(port)
    cfg = None if esp is None else esp.out_cfg
    if cfg is None:
        return None
    return EspShape.of(cfg.aead or cfg.enc or "", cfg.auth, cfg.espinudp)
