"""Ports for the Cython fast path: the engine's C threads move the packets, the asyncio
loop only hears about TAP devices that vanished.

They satisfy :class:`~l2tpv3.io.api.TunnelPortAPI` / :class:`~l2tpv3.io.api.SessionPortAPI`
as the pure-Python ports do, by composition: each holds the engine (the Cython
``Tunnel``) and hands it descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping

from l2tpv3.config import SaConfig, SaDir, TunnelConfig
from l2tpv3.errors import StateError
from l2tpv3.fast import native
from l2tpv3.io.api import Buffers, Offloads, Options, SessionPortAPI
from l2tpv3.io.espport import check_new_sa, esp_listener, make_sa, open_esp_socket
from l2tpv3.io.ivstate import IvStore
from l2tpv3.io.sockets import peer_address
from l2tpv3.io.tap import Tap
from l2tpv3.proto.api import IpOwnershipAPI, SessionAPI, TrunkAPI, TunnelAPI
from l2tpv3.proto.esp import EspSA, key_fingerprint
from l2tpv3.proto.espdemux import EspListener

__all__ = ["CythonSessionPort", "CythonTunnelPort", "EngineEspPath"]

log = logging.getLogger("l2tpv3d")


class _EngineInbound:
    """The inbound SAs as show reads them (EspInbound's ``sas`` and ``drops``)."""

    def __init__(self, et: native.EspTunnel) -> None:
        self._et = et

    @property
    def sas(self) -> Mapping[int, EspSA]:
        return self._et.inbound  # type: ignore[return-value]

    @property
    def drops(self) -> dict[str, int]:
        # Drops of no SA (unknown SPI, too short, plaintext), kept by the C path.
        return self._et.drops

    def __bool__(self) -> bool:
        return bool(self._et.inbound)


class EngineEspPath:
    """io/espport.py EspPath for a tunnel the engine runs: the same SAs, checks, socket
    and show records, but the packets are sealed and opened by the engine's threads
    (fp_esp_path), which this only configures, under the tunnel's locks. AEAD IVs: the
    send thread asks through the notify fd when its grant runs low (:meth:`refill`,
    one fsync in this loop, io/ivstate.py) and stops sealing rather than reuse one."""

    def __init__(self, engine: native.Tunnel, cfg: TunnelConfig, ivs: IvStore) -> None:
        self._engine = engine
        self.cfg = cfg
        self.ivs = ivs
        self.et = native.EspTunnel(cfg)
        self.out: EspSA | None = None
        self.out_cfg: SaConfig | None = None
        self.in_cfgs: dict[int, SaConfig] = {}
        self.inbound = _EngineInbound(self.et)
        self.sock: socket.socket | None = None
        self.listener: EspListener | None = None
        self._peer = (str(cfg.remote), 0)
        self._grant_failing: str | None = None

    @property
    def active(self) -> bool:
        return self.out is not None or bool(self.in_cfgs)

    @property
    def requires_esp(self) -> bool:
        return bool(self.in_cfgs)

    def add(self, cfg: SaConfig) -> None:
        check_new_sa(cfg, self.out_cfg, self.in_cfgs)
        sa = make_sa(cfg, native.EspSA)  # type: ignore[arg-type]
        if sa.aead and cfg.dir is SaDir.OUT:
            # Not yet seen by the threads: granted directly, durable before use.
            sa.grant_ivs(*self.ivs.grant(key_fingerprint(cfg.alg, cfg.key.reveal())))
        if self.sock is None:
            sock = open_esp_socket(self.cfg, cfg)
            self._peer = (str(self.cfg.remote), cfg.encap_dport or 0)
            try:
                self._engine.esp_start(self.et, sock, self._peer, cfg.espinudp)
            except OSError as exc:
                sock.close()
                raise StateError(f"cannot start ESP in the engine: {exc}") from None
            self.sock = sock
            self.listener = esp_listener(self.cfg, cfg)
        csa: native.EspSA = sa  # type: ignore[assignment]
        if cfg.dir is SaDir.OUT:
            self._engine.esp_set_out(self.et, csa)
            self.out, self.out_cfg = sa, cfg
        else:
            self._engine.esp_add_in(self.et, csa)
            self.in_cfgs[cfg.spi] = cfg

    def remove(self, direction: SaDir, spi: int) -> None:
        if direction is SaDir.OUT:
            if self.out_cfg is None or self.out_cfg.spi != spi:
                raise StateError(f"tunnel {self.cfg.tunnel_id} has no outbound SA spi 0x{spi:08x}")
            self._engine.esp_set_out(self.et, None)
            self.out = self.out_cfg = None
        else:
            if spi not in self.in_cfgs:
                raise StateError(f"tunnel {self.cfg.tunnel_id} has no inbound SA spi 0x{spi:08x}")
            self._engine.esp_remove_in(self.et, spi)
            del self.in_cfgs[spi]
        if not self.active:
            self.close()

    def set_foreign(self, foreign: frozenset[int], count_unknown: bool = True) -> None:
        """io/espport.py EspPath.set_foreign, in the engine's fp_esp_path (swapped under
        the tunnel's locks, as the SAs are)."""
        self._engine.esp_set_foreign(self.et, foreign, count_unknown)

    def refill(self) -> bool:
        """The send thread is short of IVs: reserve the next block (on disk first) and
        hand it over. False if the state directory cannot take it (logged once per
        cause; the caller tries again later): the SA then stops sealing when its IVs
        are used up (tx_errors), never reusing one."""
        sa, cfg = self.out, self.out_cfg
        if sa is None or cfg is None or not sa.aead:
            return True
        try:
            first, last = self.ivs.grant(key_fingerprint(cfg.alg, cfg.key.reveal()))
        except StateError as exc:
            if str(exc) != self._grant_failing:
                self._grant_failing = str(exc)
                log.warning("tunnel %d: no new ESP IVs: %s", self.cfg.tunnel_id, exc)
            return False
        self._grant_failing = None
        csa: native.EspSA = sa  # type: ignore[assignment]
        self._engine.esp_grant(csa, first, last)
        return True

    def sendto(self, datagram: bytes | memoryview, peer: tuple[str, int]) -> None:
        """One datagram the daemon sends itself (control messages, injected frames),
        sealed under the engine's send lock. OSError when it cannot go."""
        sock = self.sock
        packet = self._engine.esp_seal(self.et, datagram)
        if packet is None or sock is None:
            raise OSError("no outbound SA, or it cannot send (sequence numbers or IVs)")
        sock.sendto(packet, self._peer)

    def close(self) -> None:
        if self.sock is not None:
            # The threads let go of the socket before it is closed.
            self._engine.esp_stop()
            self.sock.close()
            self.sock = None
            self.listener = None


class CythonSessionPort:
    """A session's TAP, handed to its tunnel's engine."""

    def __init__(
        self,
        engine: native.Tunnel,
        session: SessionAPI,
        tap: Tap,
        on_gone: Callable[[], None],
        send: Callable[[bytes | memoryview], None],
    ) -> None:
        self.on_gone = on_gone
        self._send = send
        self.session = session
        self.tap = tap
        self._engine = engine
        session.set_mtu(tap.mtu)
        # The engine's receive thread runs the reorder timers, and follows the TAP's MTU
        # by ifindex (RTM_NEWLINK) ahead of the next datagram. A trunk session writes to
        # the trunk, which the engine reads itself (attach_trunk), and is not polled.
        self.on_trunk = session.vlan != 0
        engine.attach(session.session_id, tap.fd, tap.vnet_hdr, 0 if self.on_trunk else tap.ifindex)

    def set_mtu(self, mtu: int) -> None:
        self.tap.mtu = mtu
        # The receive thread already set it, ahead of the next datagram; setting it here
        # too, later, could put back an older MTU after a quick second change.
        # A trunk session is attached without an ifindex: the engine does not follow it.
        if self.on_trunk or not self._engine.follows_links:
            self.session.set_mtu(mtu)

    def inject(self, frame: bytes) -> None:
        # The header is written under the engine's send lock (sequence numbers).
        payload = self._engine.inject(self.session.session_id, frame)
        try:
            self._send(payload)
        except OSError:
            self.session.tx_failed(len(payload))

    def close(self) -> None:
        # The engine must let go of the descriptor before it is closed (and reused).
        self._engine.detach(self.session.session_id)
        if not self.on_trunk:  # the trunk's TAP is the daemon's to close
            self.tap.close()


class CythonTunnelPort:
    """A tunnel's socket, run by the engine's threads.

    The engine checks each datagram's source itself (against the peer, then the
    ownership the Cython ``Tunnel`` was made with) and has buffers of its own, so
    ``ownership`` and ``buffers`` (parameters of every port factory) are not used here.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tunnel: TunnelAPI,
        sock: socket.socket,
        ownership: IpOwnershipAPI,
        options: Options,
        buffers: Buffers,
    ) -> None:
        if not isinstance(tunnel, native.Tunnel):
            raise TypeError("the Cython ports run the Cython Tunnel only")
        self.loop: asyncio.AbstractEventLoop = loop
        self.tunnel = tunnel
        self._engine: native.Tunnel = tunnel
        self.sock: socket.socket = sock
        self._ports: dict[int, CythonSessionPort] = {}
        self._tap_offload = options.offload
        self._peer = peer_address(tunnel.config)
        self.on_control: Callable[[list[bytes]], None] | None = None
        self.esp: EngineEspPath | None = None
        self._control_failing: str | None = None
        try:
            tunnel.start(sock, peer_address(tunnel.config), options.batch, options.offload)
        except OSError as exc:
            raise StateError(f"cannot start the fast path: {exc}") from None
        self._notify: int = tunnel.notify_fd
        loop.add_reader(self._notify, self._on_gone)

    @property
    def ports(self) -> Mapping[int, SessionPortAPI]:
        return self._ports

    def open_session(
        self, session: SessionAPI, tap: Tap, on_gone: Callable[[], None]
    ) -> CythonSessionPort:
        # The engine attaches a TAP to a session it already knows.
        self._engine.add(session)
        try:
            port = CythonSessionPort(self._engine, session, tap, on_gone, self._send)
        except BaseException:
            self._engine.remove(session.session_id)
            raise
        self._ports[session.session_id] = port
        return port

    def close_session(self, session_id: int) -> bool:
        port = self._ports.pop(session_id, None)
        if port is None:
            return False
        port.close()
        self._engine.remove(session_id)
        return True

    def _send(self, datagram: bytes | memoryview) -> None:
        # While the tunnel has any SA only ESP leaves it (as io/ports.py esp_changed).
        if self.esp is not None:
            self.esp.sendto(datagram, self._peer)
        else:
            self.sock.sendto(datagram, self._peer)

    def esp_path(self, ivs: IvStore) -> EngineEspPath:
        """This tunnel's ESP state, made on first use (add sa)."""
        if self.esp is None:
            self.esp = EngineEspPath(self._engine, self._engine.config, ivs)
        return self.esp

    def esp_changed(self) -> None:
        """After an SA was added or deleted: with none left, plain L2TPv3 again."""
        if self.esp is not None and not self.esp.active:
            self.esp.close()
            self.esp = None

    def _refill_ivs(self) -> None:
        # The thread asks once; a grant that failed is tried again every second.
        if self.esp is not None and self._engine.iv_requested and not self.esp.refill():
            self.loop.call_later(1.0, self._refill_ivs)

    def open_trunk(self, trunk: TrunkAPI, tap: Tap, on_gone: Callable[[], None]) -> None:
        if not isinstance(trunk, native.Trunk):
            raise TypeError("the Cython ports read a Cython Trunk only")
        # The engine reports the trunk's deletion as its sessions' (take_gone).
        del on_gone
        try:
            self._engine.attach_trunk(trunk, tap.fd)
        except OSError as exc:
            raise StateError(f"cannot read trunk {tap.name}: {exc}") from None

    def close_trunk(self, trunk: TrunkAPI) -> None:
        if isinstance(trunk, native.Trunk):
            self._engine.detach_trunk(trunk)

    def _on_gone(self) -> None:
        # The notify fd also says that control messages are queued (take_control) and
        # that the send thread wants AEAD IVs.
        self._refill_ivs()
        for sid in self._engine.take_gone():
            port = self._ports.get(sid)
            if port is not None:
                self.loop.call_soon(port.on_gone)
        msgs = self._engine.take_control()
        if msgs and self.on_control is not None:
            self.on_control(msgs)

    def send_control(self, payload: bytes) -> None:
        if self._engine.capturing:
            self._engine.capture_push(0, payload)
        try:
            self._send(payload)
        except OSError as exc:
            # Once per cause until a send succeeds, as io/ports.py.
            why = exc.strerror or str(exc)
            if why != self._control_failing:
                self._control_failing = why
                log.warning(
                    "tunnel %d: cannot send a control message: %s (not logged again "
                    "until one is sent)",
                    self._engine.config.tunnel_id,
                    why,
                )
        else:
            self._control_failing = None

    def capture_start(self, session_id: int) -> None:
        """Begin copying this tunnel's datagrams (``session_id`` 0: every session's):
        the engine's threads record them (fast/fp_capture.c)."""
        self._engine.capture_start(session_id)

    def capture_take(self) -> tuple[bytes, int]:
        return self._engine.capture_take()

    def capture_stop(self) -> None:
        self._engine.capture_stop()

    def close(self) -> None:
        st = self._engine.offload_stats
        log.info(
            "tunnel %d: fast path: udp_gso %s, udp_gro %s, %d super-frames sent as %d frames "
            "in %d GSO sends; %d GRO datagrams in, %d super-frames to the TAPs",
            self._engine.config.tunnel_id,
            "on" if st["udp_gso"] else "off",
            "on" if st["udp_gro"] else "off",
            st["superframes_in"],
            st["segments_out"],
            st["gso_sends"],
            st["gro_datagrams_in"],
            st["gro_superframes_out"],
        )
        for sid in list(self._ports):
            self.close_session(sid)
        if self.esp is not None:
            self.esp.close()
            self.esp = None
        with contextlib.suppress(OSError, ValueError):
            self.loop.remove_reader(self._notify)
        # Joins the threads; they wake at once (eventfd), so this does not block long.
        self._engine.stop()
        self.sock.close()

    def offloads(self) -> Offloads:
        # The engine's own record: UDP GSO falls back for good if the kernel refuses it.
        # The daemon opens the sessions' TAPs with IFF_VNET_HDR when offloads are on.
        st = self._engine.offload_stats
        # While ESP is on each datagram is sealed on its own: no UDP GSO.
        return Offloads(
            tap_vnet_hdr=self._tap_offload,
            udp_gso=bool(st["udp_gso"]) and self.esp is None,
            udp_gro=bool(st["udp_gro"]),
        )
