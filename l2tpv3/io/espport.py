"""ESP on the pure-Python data path: transport mode as the kernel's xfrm applies it.

A tunnel with an outbound SA sends only ESP (RFC 4303 transport mode, as ``ip xfrm``
with a policy selecting the tunnel's datagrams):

- ``encap udp``: IP | ESP | UDP | L2TPv3 | frame, Next Header 17. The UDP header is
  built here, with the checksum the tunnel's own socket would have sent (IPv4:
  ``udp_csum``; IPv6: ``udp6_csum_tx``), computed over the pseudo-header;
- ``encap ip``: IP | ESP | L2TPv3 | frame, Next Header 115;
- with ``encap espinudp SPORT DPORT`` (RFC 3948) the ESP packet travels in a UDP
  datagram from SPORT to DPORT instead of as IP protocol 50.

A tunnel with an inbound SA accepts only ESP: a plaintext L2TPv3 datagram on its
socket is dropped and counted (``plaintext``). ESP arrives on a raw IPPROTO_ESP socket
(or the espinudp UDP socket), is opened by the SA its SPI names, and the payload goes
to the tunnel's ordinary receive path. Every raw ESP socket on the address gets a copy:
packets from another host are ignored, and so are those another tunnel to the same
peer answers for (proto/espdemux.py, given by the daemon through :meth:`EspPath.set_foreign`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Callable
from typing import Final

from l2tpv3.config import Encap, SaConfig, SaDir, TunnelConfig
from l2tpv3.constants import (
    ESP_IV_LOW_WATER,
    IP_MTU_DISCOVER,
    IP_PMTUDISC_DONT,
    IPV6_MTU_DISCOVER,
    IPV6_PMTUDISC_DONT,
)
from l2tpv3.errors import StateError
from l2tpv3.io.ivstate import IvStore
from l2tpv3.io.sockets import ipv4_payload_offset
from l2tpv3.proto.counters import ESP_TOO_SHORT
from l2tpv3.proto.esp import NH_L2TP, NH_UDP, EspInbound, EspSA, key_fingerprint
from l2tpv3.proto.espdemux import EspListener

__all__ = [
    "IPPROTO_ESP",
    "EspPath",
    "check_new_sa",
    "esp_listener",
    "is_foreign_esp",
    "make_sa",
    "open_esp_socket",
    "udp_checksum",
]

log = logging.getLogger("l2tpv3d")

IPPROTO_ESP: Final = 50
# RFC 3948 §2.2: a UDP payload starting with 4 zero bytes is IKE, not ESP; §2.3: a
# single 0xff byte is a NAT keepalive.
_NON_ESP_MARKER: Final = b"\0\0\0\0"


def make_sa(cfg: SaConfig, cls: Callable[..., EspSA] = EspSA) -> EspSA:
    """The codec SA for a configured one (keys pass straight to the codec); ``cls``:
    the reference EspSA, or the fast path's (same constructor)."""
    return cls(
        cfg.spi,
        cfg.alg,
        cfg.key.reveal(),
        None if cfg.auth_key is None else cfg.auth_key.reveal(),
        cfg.auth,
        esn=cfg.esn,
        replay_window=cfg.replay_window,
    )


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def udp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    """RFC 768 / RFC 8200 §8.1 checksum of a UDP segment (its checksum field zero)."""
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, NH_UDP, len(segment))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(segment), NH_UDP)
    value = 0xFFFF - _csum(pseudo + segment)
    # RFC 768: a computed 0 is sent as all ones.
    return value or 0xFFFF


def check_new_sa(cfg: SaConfig, out_cfg: SaConfig | None, in_cfgs: dict[int, SaConfig]) -> None:
    """Refuse an SA the tunnel cannot take next to the ones it has (StateError)."""
    if cfg.dir is SaDir.OUT:
        # A new outbound SA replaces the old one in one step (key rotation: nothing
        # is sent in clear or dropped in between); the same SPI again is refused.
        if out_cfg is not None and out_cfg.spi == cfg.spi:
            raise StateError(f"tunnel {cfg.tunnel_id} already has outbound SA spi 0x{cfg.spi:08x}")
    elif cfg.spi in in_cfgs:
        raise StateError(f"tunnel {cfg.tunnel_id} already has inbound SA spi 0x{cfg.spi:08x}")
    others = [*in_cfgs.values()]
    if cfg.dir is SaDir.IN and out_cfg is not None:
        others.append(out_cfg)
    for other in others:
        if (other.encap_sport, other.encap_dport) != (cfg.encap_sport, cfg.encap_dport):
            raise StateError("all SAs of a tunnel must use the same encap")


def open_esp_socket(tunnel: TunnelConfig, cfg: SaConfig) -> socket.socket:
    """The tunnel's ESP socket: raw IPPROTO_ESP, or UDP on encap_sport for espinudp;
    non-blocking, bound to the tunnel's local address. StateError if it cannot be."""
    family = socket.AF_INET6 if tunnel.family == 6 else socket.AF_INET
    v6 = family == socket.AF_INET6
    try:
        if cfg.espinudp:
            sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        else:
            sock = socket.socket(family, socket.SOCK_RAW, IPPROTO_ESP)
    except PermissionError:
        raise StateError("ESP needs a raw socket: run l2tpv3d as root (CAP_NET_RAW)") from None
    try:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT)
            if cfg.espinudp:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.bind((str(tunnel.local), cfg.encap_sport or 0))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise StateError(f"cannot set up the ESP socket: {exc.strerror or exc}") from None
    return sock


def esp_listener(tunnel: TunnelConfig, cfg: SaConfig) -> EspListener:
    """What the ESP socket :func:`open_esp_socket` opens for ``cfg`` hears, and from
    whom the tunnel takes it (proto/espdemux.py: the tunnels that hear the same)."""
    sport, dport = (cfg.encap_sport or 0, cfg.encap_dport or 0) if cfg.espinudp else (0, 0)
    return EspListener(tunnel.family, str(tunnel.local), sport, str(tunnel.remote), dport)


def is_foreign_esp(data: bytes) -> bool:
    """RFC 3948 §2.2-2.3, on an espinudp socket: a NAT keepalive or IKE, not ESP."""
    return data == b"\xff" or data[:4] == _NON_ESP_MARKER


class EspPath:
    """One tunnel's SAs, ESP socket and the two directions through them."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        cfg: TunnelConfig,
        deliver: Callable[[bytes], None],
        ivs: IvStore,
    ) -> None:
        self.loop = loop
        self.cfg = cfg
        self.deliver = deliver  # the L2TPv3 datagram, as the tunnel's socket would give it
        self.ivs = ivs
        self.out: EspSA | None = None
        self.out_cfg: SaConfig | None = None
        self.inbound = EspInbound()
        self.in_cfgs: dict[int, SaConfig] = {}
        self.sock: socket.socket | None = None
        self._sock_key: tuple[int, int] | None = None
        # What the socket hears (set with it): the daemon's demux groups tunnels by it.
        self.listener: EspListener | None = None
        self.next_header = NH_UDP if cfg.encap is Encap.UDP else NH_L2TP
        self.family = socket.AF_INET6 if cfg.family == 6 else socket.AF_INET
        self.local = cfg.local.packed
        self.remote = cfg.remote.packed
        self.peer_host = socket.inet_ntop(self.family, self.remote)

    # -- configuration -------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.out is not None or bool(self.inbound)

    @property
    def requires_esp(self) -> bool:
        return bool(self.inbound)

    def add(self, cfg: SaConfig) -> None:
        check_new_sa(cfg, self.out_cfg, self.in_cfgs)
        sa = make_sa(cfg)
        if sa.aead and cfg.dir is SaDir.OUT:
            self._grant(sa, cfg)
        self._open_socket(cfg)
        if cfg.dir is SaDir.OUT:
            self.out, self.out_cfg = sa, cfg
        else:
            self.inbound.sas[cfg.spi] = sa
            self.in_cfgs[cfg.spi] = cfg

    def remove(self, direction: SaDir, spi: int) -> None:
        if direction is SaDir.OUT:
            if self.out_cfg is None or self.out_cfg.spi != spi:
                raise StateError(f"tunnel {self.cfg.tunnel_id} has no outbound SA spi 0x{spi:08x}")
            self.out = self.out_cfg = None
        else:
            if spi not in self.in_cfgs:
                raise StateError(f"tunnel {self.cfg.tunnel_id} has no inbound SA spi 0x{spi:08x}")
            del self.in_cfgs[spi]
            del self.inbound.sas[spi]
        if not self.active:
            self.close()

    def set_foreign(self, foreign: frozenset[int], count_unknown: bool = True) -> None:
        """The other tunnels' inbound SPIs this tunnel's socket also hears, ignored
        without a count, and whether this tunnel counts an SPI none of them knows
        (proto/espdemux.py; the daemon sets both)."""
        self.inbound.foreign = foreign
        self.inbound.count_unknown = count_unknown

    def _grant(self, sa: EspSA, cfg: SaConfig) -> None:
        fp = key_fingerprint(cfg.alg, cfg.key.reveal())
        sa.grant_ivs(*self.ivs.grant(fp))

    def _open_socket(self, cfg: SaConfig) -> None:
        key = (cfg.encap_sport or 0, cfg.encap_dport or 0)
        if self.sock is not None:
            return
        sock = open_esp_socket(self.cfg, cfg)
        self.sock, self._sock_key = sock, key
        self.listener = esp_listener(self.cfg, cfg)
        self.loop.add_reader(sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError, ValueError):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
            self.listener = None

    # -- sending -------------------------------------------------------------------

    def sendto(self, datagram: bytes | memoryview, peer: tuple[str, int]) -> None:
        """Send one L2TPv3 datagram (as the tunnel's socket would) sealed in ESP.
        Raises OSError when it cannot go (counted by the caller as tx_errors)."""
        sa, sock, cfg = self.out, self.sock, self.cfg
        if sa is None or sock is None:
            # Inbound SAs but no outbound one: never fall back to clear text.
            raise OSError("no outbound SA")
        payload = bytes(datagram)
        if cfg.encap is Encap.UDP:
            length = 8 + len(payload)
            header = struct.pack("!HHHH", cfg.udp_sport, cfg.udp_dport, length, 0)
            csum_on = cfg.udp6_csum_tx if cfg.family == 6 else cfg.udp_csum
            if csum_on:
                csum = udp_checksum(self.local, self.remote, header + payload)
                header = header[:6] + struct.pack("!H", csum)
            payload = header + payload
        left = sa.ivs_left
        if left is not None and left < ESP_IV_LOW_WATER and self.out_cfg is not None:
            # Durable before use (io/ivstate.py): one fsync per block of IVs. A state
            # directory that cannot take the reservation fails this send like a socket
            # error (counted by the caller), never with a traceback in the loop.
            try:
                self._grant(sa, self.out_cfg)
            except StateError as exc:
                sa.counters.tx_errors += 1
                raise OSError(errno.EIO, str(exc)) from None
        packet = sa.seal(payload, self.next_header)
        if packet is None:
            raise OSError("ESP SA cannot send (sequence numbers or IVs used up)")
        port = self.out_cfg.encap_dport if self.out_cfg and self.out_cfg.espinudp else 0
        try:
            sock.sendto(packet, (self.peer_host, port or 0))
        except OSError:
            sa.counters.tx_packets -= 1
            sa.counters.tx_bytes -= len(payload)
            sa.counters.tx_errors += 1
            raise

    # -- receiving -----------------------------------------------------------------

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        espinudp = self._sock_key is not None and self._sock_key[0] != 0
        strip = not espinudp and self.family == socket.AF_INET
        for _ in range(64):
            try:
                data, source = sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("tunnel %d: ESP receive failed: %s", self.cfg.tunnel_id, exc.strerror)
                return
            if source[0] != self.peer_host:
                continue  # another tunnel's peer: its own ESP socket has a copy
            if espinudp:
                if self._sock_key is not None and source[1] != self._sock_key[1]:
                    continue
                if is_foreign_esp(data):
                    continue  # NAT keepalive or IKE: not ours to count
            elif strip:
                if len(data) < 20:
                    continue
                data = data[ipv4_payload_offset(data) :]
            self.receive(data)

    def receive(self, esp: bytes) -> None:
        """Open one ESP packet and hand the L2TPv3 datagram on; drops are counted."""
        out = self.inbound.open(esp, self.next_header)
        if out is None or isinstance(out, str):
            return  # dropped and counted, or another tunnel's (proto/espdemux.py)
        payload = out[0]
        if self.cfg.encap is Encap.UDP:
            if len(payload) < 8:
                self.inbound.drop(ESP_TOO_SHORT)
                return
            sport, dport = struct.unpack_from("!HH", payload)
            if sport != self.cfg.udp_dport or dport != self.cfg.udp_sport:
                return  # not this tunnel's datagram (authenticated, but another flow)
            payload = payload[8:]
        self.deliver(payload)
