/* Userspace TCP segmentation offload, checksum completion and receive coalescing for a TAP
 * opened with IFF_VNET_HDR and TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6).
 *
 * Pure C99, no Python API, no allocation, no global state: every function works only on the
 * buffers and the context it is given, so one context per thread is thread-safe.
 *
 * vnet header fields are read and written in host byte order: that is what a TAP uses unless
 * TUNSETVNETBE was called (legacy virtio is guest-native endian, and the fast path only runs
 * on little-endian hosts in practice).
 *
 * Choices where the kernel's behaviour leaves room (all deliberate; docs/offload.md is the
 * overview):
 *  - l2o_complete_csum: returns 0 without touching the frame when NEEDS_CSUM is not set.
 *    A computed checksum of 0 is stored as 0xffff, as the kernel's skb_checksum_help() does
 *    (it matters for UDP, where 0 means "no checksum", RFC 768; for TCP both are equal).
 *  - l2o_segment: hdr_len is only a hint from the kernel (it is skb_headlen(), which may
 *    include payload), so the headers are parsed from the frame itself; hdr_len > len is
 *    rejected (-1). With NEEDS_CSUM set, csum_start must point at the parsed TCP header and
 *    csum_offset must be 16, else -1. IPv6 extension headers and IPv4 total length 0
 *    (BIG TCP) are rejected (-1). Bytes after the IP datagram (Ethernet padding) are dropped.
 *    0, 1 or 2 VLAN tags (0x8100 / 0x88a8) are supported.
 *    stride must be >= max_frame (else -1), and max_frame must leave room for at least one
 *    payload byte after the headers (else -1). The payload per segment is
 *    min(gso_size, max_frame - headers). A super-frame whose payload fits one segment gives
 *    one segment with a complete checksum. CWR is kept on the first segment only whether or
 *    not VIRTIO_NET_HDR_GSO_ECN is set (tcp_gso_segment clears it in both cases), so the TAP
 *    may also be given TUN_F_TSO_ECN. The IPv4 ID is incremented per segment, DF or not, as
 *    inet_gso_segment does without SKB_GSO_TCP_FIXEDID: a virtio header cannot carry that
 *    bit, and tun only advertises NETIF_F_TSO (not TSO_MANGLEID), so the kernel segments
 *    fixed-ID super-frames itself before they reach the TAP.
 *  - GRO: super-frames are emitted with VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start at the TCP
 *    header, csum_offset 16 and the TCP checksum field holding the pseudo-header sum (the
 *    form the kernel itself produces for CHECKSUM_PARTIAL; tun accepts it and TCP trusts it).
 *    Because the kernel will not re-verify such a super-frame, every segment's TCP checksum
 *    (and IPv4 header checksum) IS verified here before it is merged; a segment that fails
 *    is passed through unchanged with a zero vnet header so the kernel drops and counts it.
 *    A flow that ends up holding a single segment is emitted as received (zero header).
 *    Frames with VLAN tags, IPv4 options, IPv6 extension headers, IPv4 fragments, flags
 *    other than ACK with optional PSH and ECE, or no payload are passed through (after
 *    flushing their flow).
 *    Merge rules follow the kernel's tcp_gro_receive: same addresses/ports/MACs, same TTL or
 *    hop limit, TOS/traffic class, DF, ack number, window and TCP option bytes; next
 *    sequence number exactly contiguous; payload no larger than the first segment's
 *    (gso_size); a shorter segment or PSH ends the super-frame; IPv4 ID +1 per segment
 *    unless DF is set; IP total length (IPv6: payload length) <= 65535.
 *    When all L2O_GRO_FLOWS slots are busy the oldest flow is flushed.
 *    Pass-through frames are copied after a zero vnet header in the context's scratch buffer
 *    (emit needs one contiguous buffer and the input is const).
 */
#ifndef L2TPV3_OFFLOAD_H
#define L2TPV3_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h> /* struct virtio_net_hdr, VIRTIO_NET_HDR_* */

#ifdef __cplusplus
extern "C" {
#endif

/* Finish a VIRTIO_NET_HDR_F_NEEDS_CSUM checksum in place: RFC 1071 sum from csum_start to
 * len (the field holds the pseudo-header sum as Linux leaves it), stored complemented at
 * csum_start + csum_offset. 0 ok (also when NEEDS_CSUM is not set), -1 out of range. */
int l2o_complete_csum(const struct virtio_net_hdr *vh, uint8_t *frame, size_t len);

/* Split a GSO super-frame read from a TAP (gso_type TCPV4 or TCPV6, optionally |ECN) into
 * ordinary Ethernet frames carrying at most min(vh->gso_size, max_frame - headers) TCP
 * payload bytes each: IPv4 total length, ID (+1 per segment) and header checksum, IPv6
 * payload length, TCP sequence numbers, flags (FIN/PSH only on the last, CWR only on the
 * first) and a full TCP checksum (RFC 793 section 3.1 / RFC 1071).
 * Segment i is written at out + i*stride (stride >= max_frame); its length goes to lens[i].
 * Returns the number of segments, -1 if malformed/unsupported, -2 if more than max_segs
 * would be needed (nothing useful is written then). The input is never modified. */
int l2o_segment(const struct virtio_net_hdr *vh, const uint8_t *frame, size_t len,
                size_t max_frame, uint8_t *out, size_t stride, size_t *lens, int max_segs);

/* Userspace GRO for frames going to a TAP opened with IFF_VNET_HDR (vnet header size 10,
 * or 12 with num_buffers, which is written as 0). emit gets one buffer: the vnet header
 * followed by the frame. The buffer is only valid during the call. */
typedef int (*l2o_emit_fn)(void *ctx, const uint8_t *buf, size_t len);

#define L2O_GRO_FLOWS 8
/* 12-byte vnet header + Ethernet header + IPv6 header + 65535 bytes of IPv6 payload,
 * rounded up to a multiple of 64 (IPv4 super-frames are smaller). */
#define L2O_GRO_BUFSZ 65664u

struct l2o_gro_flow {
    uint32_t len;        /* frame bytes in buf after the vnet header; 0: slot free */
    uint32_t next_seq;   /* sequence number the next segment must carry */
    uint32_t age;        /* value of l2o_gro.clock when the flow was started */
    uint16_t l3off;      /* offset of the IP header in the frame (always 14 today) */
    uint16_t l4off;      /* offset of the TCP header */
    uint16_t hdrlen;     /* Ethernet + IP + TCP header bytes */
    uint16_t gso_size;   /* payload bytes of the first segment */
    uint16_t segs;       /* segments merged so far */
    uint16_t next_id;    /* IPv4 ID the next segment must carry (unless DF) */
    uint8_t v6;          /* 1: IPv6, 0: IPv4 */
    uint8_t pad[7];
    uint8_t buf[L2O_GRO_BUFSZ]; /* vnet header (vnet_hdr_len bytes), then the frame */
};

struct l2o_gro {
    size_t vnet_hdr_len; /* 10 or 12, set by l2o_gro_init */
    uint32_t clock;      /* incremented per flow started, for oldest-first eviction */
    uint32_t nflows;     /* busy slots */
    /* statistics (never reset by the library) */
    uint64_t merged;     /* segments appended to a pending super-frame */
    uint64_t superframes;/* super-frames emitted holding >= 2 segments */
    uint64_t passed;     /* frames emitted unchanged with a zero vnet header */
    uint64_t bad_csum;   /* TCP/IPv4 segments passed through because a checksum failed */
    struct l2o_gro_flow flow[L2O_GRO_FLOWS];
    uint8_t scratch[L2O_GRO_BUFSZ]; /* pass-through frames: zero vnet header + frame */
};

/* vnet_hdr_len other than 10 or 12 is treated as 10. */
void l2o_gro_init(struct l2o_gro *g, size_t vnet_hdr_len);

/* Offer one received Ethernet frame. Merges in-order TCP segments of the same flow into a
 * pending super-frame; anything else is emitted as-is with a zero vnet header (after
 * flushing the flow it would have overtaken). A frame longer than L2O_GRO_BUFSZ minus the
 * vnet header length is not emitted and -1 is returned (after flushing its flow, if any).
 * Returns 0, -1 (frame too long), or the first non-zero value emit returned. */
int l2o_gro_add(struct l2o_gro *g, const uint8_t *frame, size_t len, l2o_emit_fn emit, void *ctx);

/* Emit everything pending (call at the end of each receive batch). Returns 0 or the first
 * non-zero value emit returned (the remaining flows are still emitted and freed). */
int l2o_gro_flush(struct l2o_gro *g, l2o_emit_fn emit, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* L2TPV3_OFFLOAD_H */
