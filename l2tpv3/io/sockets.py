"""Underlay sockets: UDP per tunnel, or raw IP protocol 115, configured like the kernel's."""

from __future__ import annotations

import errno
import socket

from l2tpv3.config import Encap, TunnelConfig
from l2tpv3.constants import (
    IP_MTU,
    IP_MTU_DISCOVER,
    IP_PMTUDISC_DONT,
    IPPROTO_L2TP,
    IPV6_MTU,
    IPV6_MTU_DISCOVER,
    IPV6_PMTUDISC_DONT,
    SO_NO_CHECK,
    SO_RCVBUFFORCE,
    SO_SNDBUFFORCE,
    UDP_NO_CHECK6_RX,
    UDP_NO_CHECK6_TX,
)
from l2tpv3.errors import StateError

DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024

# linux/in.h and linux/in6.h: bind to an address this host does not have (yet).
IP_FREEBIND = 15
IPV6_FREEBIND = 78


def open_socket(
    cfg: TunnelConfig,
    rcvbuf: int = DEFAULT_SOCKET_BUFFER,
    sndbuf: int = DEFAULT_SOCKET_BUFFER,
) -> socket.socket:
    """Bind to local (and udp_sport). The socket is deliberately not connected.

    The kernel's own tunnel socket is connected, but a connected socket reports ICMP
    errors (port or protocol unreachable while the peer is not up yet) as a socket
    error, and uvloop stops polling a descriptor after an error: the tunnel would never
    receive again. An unconnected socket gets no such errors; the adapter sends with
    sendto() and checks each datagram's source itself (see :func:`peer_address`).

    The socket binds with IP_FREEBIND / IPV6_FREEBIND, so ``local`` need not exist yet:
    an IPv6 address still in duplicate address detection (tentative), or one that IPsec
    or a VPN brings up later. The bound socket receives as soon as the kernel has the
    address, and sends from it; :func:`local_address_ready` tells whether it has.
    """
    v6 = cfg.family == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    udp = cfg.encap is Encap.UDP
    if udp:
        sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    else:
        try:
            sock = socket.socket(family, socket.SOCK_RAW, IPPROTO_L2TP)
        except PermissionError:
            raise StateError(
                "encap ip needs a raw socket: run l2tpv3d as root (or with CAP_NET_RAW)"
            ) from None
    try:
        if v6:
            if udp:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # The kernel's tunnel socket lets the stack fragment the outer packet.
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT)
            if udp and not cfg.udp6_csum_tx:
                sock.setsockopt(socket.IPPROTO_UDP, UDP_NO_CHECK6_TX, 1)
            if udp and not cfg.udp6_csum_rx:
                sock.setsockopt(socket.IPPROTO_UDP, UDP_NO_CHECK6_RX, 1)
        else:
            # Seen from the kernel: outer IPv4 goes with DF=0 (ignore_df).
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
            if udp and not cfg.udp_csum:
                sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        _set_buffers(sock, rcvbuf, sndbuf)
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        port = cfg.udp_sport if udp else 0
        try:
            sock.bind((str(cfg.local), port))
        except OSError as exc:
            raise _bind_error(cfg, exc) from None
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise StateError(f"cannot set up the tunnel socket: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_error(cfg: TunnelConfig, exc: OSError) -> StateError:
    if exc.errno == errno.EADDRINUSE:
        return StateError(f"udp_sport {cfg.udp_sport} on {cfg.local} is already in use")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StateError(f"local address {cfg.local} is not configured on this host")
    return StateError(f"cannot bind to local {cfg.local}: {exc.strerror}")


def local_address_ready(cfg: TunnelConfig) -> bool:
    """Whether ``local`` is an address of this host now, usable as a source: present and,
    for IPv6, past duplicate address detection. Asked of the kernel by binding a
    throwaway UDP socket without FREEBIND (EADDRNOTAVAIL when it is not)."""
    family = socket.AF_INET6 if cfg.family == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(cfg.local), 0))
        except OSError as exc:
            return exc.errno != errno.EADDRNOTAVAIL
    return True


def _set_buffers(sock: socket.socket, rcvbuf: int, sndbuf: int) -> None:
    # Small default buffers caused most retransmits in every userspace relay we
    # measured; the *FORCE variants pass net.core.rmem_max when we are root.
    for force, plain, size in (
        (SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf),
        (SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf),
    ):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)


def peer_address(cfg: TunnelConfig) -> tuple[str, int]:
    """Where to send, and the (host, port) a datagram from the peer arrives with.

    The host is spelled as the kernel spells it in recvfrom(), so comparing strings is
    exact; raw sockets report port 0.
    """
    family = socket.AF_INET6 if cfg.family == 6 else socket.AF_INET
    host = socket.inet_ntop(family, cfg.remote.packed)
    port = cfg.udp_dport if cfg.encap is Encap.UDP and cfg.udp_dport is not None else 0
    return host, port


def path_mtu(cfg: TunnelConfig) -> int | None:
    """The route MTU toward the peer, as the kernel's l2tp_tunnel_dst_mtu.

    Read from a throwaway connected UDP socket: connecting sends nothing, and the
    tunnel's own socket stays unconnected.
    """
    v6 = cfg.family == 6
    try:
        with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((str(cfg.local), 0))
            s.connect((str(cfg.remote), 9))
            if v6:
                return int(s.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU))
            return int(s.getsockopt(socket.IPPROTO_IP, IP_MTU))
    except OSError:
        return None


def ipv4_payload_offset(packet: bytes | memoryview) -> int:
    """IPv4 raw sockets deliver the IP header: skip it by its IHL, not a fixed 20."""
    return (packet[0] & 0x0F) * 4
