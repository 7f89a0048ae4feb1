"""Protocol numbers, buffer sizes and defaults, defined once for every implementation.

The C engine gets the numbers it needs from here through a header generated at build
time (l2tpv3/fast/cgen.py), so this module must import nothing but ``typing``: the
generator loads it from its file in an isolated build environment. Counter names and
drop reasons are in :mod:`l2tpv3.proto.counters`.
"""

from __future__ import annotations

from typing import Final

# RFC 3931 §4.1.2.1: L2TP over UDP. The T bit marks control messages; data messages
# carry T=0, L=0, S=0, Ver=3 followed by 16 reserved bits.
UDP_FLAG_T: Final = 0x8000
UDP_VERSION_MASK: Final = 0x000F
L2TP_VERSION_3: Final = 3
UDP_DATA_WORD: Final = 0x00030000

# RFC 3931 §4.1.1: L2TP over IP uses IP protocol 115; session ID 0 means the rest is
# a control message (§4.1.1.2).
IPPROTO_L2TP: Final = 115

# RFC 3931 §4.6 / RFC 4719 §3: the Default L2-Specific Sublayer is 4 bytes: bit S
# (0x40000000) says the low 24 bits hold a sequence number.
L2SPEC_DEFAULT_LEN: Final = 4
L2SPEC_S_BIT: Final = 0x40000000
SEQ_MASK: Final = 0xFFFFFF
SEQ_MODULUS: Final = 0x1000000

# Cookie lengths allowed by RFC 3931 §4.1 ("0, 32 or 64 bits").
COOKIE_LENGTHS: Final = (0, 4, 8)

ID_MIN: Final = 1
ID_MAX: Final = 0xFFFFFFFF

# Receive sequencing (sequence.py and its C mirror), from net/l2tp l2tp_session_create:
# nr_window_size = nr_max / 2 with nr_max = 0xffffff (one short of half the space), and
# nr_oos_count_max = 4. l2tp_recv_common holds a packet for reorder_timeout, or HZ (one
# second) when that is 0. RFC 3931 Appendix C: "new" means serially greater than the
# last in-order packet, i.e. ahead of it by less than half the space (RFC 1982).
KERNEL_NR_WINDOW: Final = SEQ_MASK // 2
NR_OOS_COUNT_MAX: Final = 4
DEFAULT_REORDER_HOLD: Final = 1.0
RFC_SEQ_HALF: Final = SEQ_MODULUS // 2

ETH_HLEN: Final = 14
ETH_DATA_LEN: Final = 1500
# The l2tpethN MTU range the kernel allows (l2tp_eth: ETH_MIN_MTU .. ETH_MAX_MTU).
MIN_MTU: Final = 68
MAX_MTU: Final = 65535
# The kernel (is_skb_forwardable) accepts frames up to MTU + Ethernet header + one
# VLAN tag on the receiving device.
RX_FRAME_SLACK: Final = ETH_HLEN + 4
IPV4_HLEN: Final = 20
IPV6_HLEN: Final = 40
UDP_HLEN: Final = 8

IFNAMSIZ: Final = 16
DEFAULT_IFNAME_TEMPLATE: Final = "l2tpeth%d"
DEFAULT_CONTROL_SOCKET: Final = "/run/l2tpv3.sock"
CONTROL_SOCKET_ENV: Final = "L2TPV3_SOCKET"

# Buffers. The largest datagram a socket delivers (UDP payload, or an IPv4 raw socket's
# whole packet); the room kept in front of every frame read from a TAP, for the longest
# L2TP header (4 + 4 + 8 + 4 = 20 bytes) and a virtio-net header, so the header is
# written in place and sending copies nothing.
MAX_DATAGRAM: Final = 65535
HEADROOM: Final = 64
# struct virtio_net_hdr: the size the TAP is set to when opened with IFF_VNET_HDR.
VNET_HDR_LEN: Final = 10
# At most this many frames are cut from one TCP super-frame read from a TAP.
MAX_SEGS: Final = 1024
# ESP (io/ivstate.py): an outbound AEAD SA asks for its next block of IVs when fewer
# than this many are left (the engine's send thread through its notify fd, the Python
# path before a send); up to this many of each 2^20 block go unused.
ESP_IV_LOW_WATER: Final = 8192
# l2tpv3d --batch: datagrams or frames per system call and wakeup, at most.
MAX_BATCH: Final = 1024

# Linux socket options the socket module does not name (linux/socket.h, linux/udp.h,
# linux/in.h, linux/in6.h).
SO_NO_CHECK: Final = 11
SO_RCVBUFFORCE: Final = 33
SO_SNDBUFFORCE: Final = 32
UDP_NO_CHECK6_TX: Final = 101
UDP_NO_CHECK6_RX: Final = 102
UDP_SEGMENT: Final = 103
UDP_GRO: Final = 104
IP_MTU_DISCOVER: Final = 10
IP_PMTUDISC_DONT: Final = 0
IP_MTU: Final = 14
IPV6_MTU_DISCOVER: Final = 23
IPV6_PMTUDISC_DONT: Final = 0
IPV6_MTU: Final = 24

# TCP MSS clamping (proto/mss.py): `mss_clamp auto` is the session's MTU minus the IP and
# TCP headers without options (RFC 879 / RFC 8200 section 8.3: 20 + 20, 40 + 20), never
# below Linux's TCP_MIN_MSS (include/net/tcp.h), which is also the lowest fixed value.
MSS_IPV4_OVERHEAD: Final = 40
MSS_IPV6_OVERHEAD: Final = 60
TCP_MIN_MSS: Final = 88

# Liveness (docs/usage.md "Liveness"). ARP (RFC 826) frames the daemon injects and
# watches for: EtherType and the reply opcode.
ETH_P_ARP: Final = 0x0806
# Per-VLAN sessions (proto/vlan.py): the outer TPIDs that count as a tag, IEEE 802.1Q
# (C-tag) and 802.1ad (S-tag), as the kernel's eth_type_vlan(); a tag's length and VIDs.
TPID_8021Q: Final = 0x8100
TPID_8021AD: Final = 0x88A8
VLAN_HLEN: Final = 4
VLAN_VID_MASK: Final = 0x0FFF
VLAN_VID_MIN: Final = 1
VLAN_VID_MAX: Final = 4094
# Trunk TAPs one tunnel's engine reads at most (its sessions' trunks).
MAX_TRUNKS: Final = 16
ARPOP_REPLY: Final = 2
# Control messages (T bit over UDP, session ID 0 over IP) the data path hands to the
# daemon: at most this many queued per tunnel, each at most this long (longer ones, or
# more, stay counted drops only). HELLO and ZLB ACK are 20 and 12 bytes.
CONTROL_QUEUE_SLOTS: Final = 8
CONTROL_MAX_LEN: Final = 256
# Defaults of `liveness MODE [interval S] [dead N]`: a probe every 2 s, the peer down
# after 3 intervals (6 s) without a sign of life.
LIVENESS_INTERVAL: Final = 2.0
LIVENESS_DEAD: Final = 3
# Seconds an on_up / on_down hook may run before it is killed.
HOOK_TIMEOUT: Final = 10.0
# `l2tpv3 capture` (io/capture.py, fast/fp_capture.c): each tunnel with a capture running
# keeps two buffers of this many bytes; the data path fills one while the daemon drains
# the other. A record (CAPTURE_HDR_LEN bytes: time in ns, session ID, length, direction,
# drop reason code) and its packet that do not fit are lost, and counted: a slow reader
# never stalls the tunnel. 2 MiB holds ~1400 full-size datagrams, ~30 ms at 500 Mbit/s.
CAPTURE_HALF_BYTES: Final = 2 * 1024 * 1024
CAPTURE_HDR_LEN: Final = 20
CAPTURE_IN: Final = 0
CAPTURE_OUT: Final = 1
