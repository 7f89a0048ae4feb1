/* TCP segmentation, checksum completion and userspace GRO for a vnet-header TAP.
 * See offload.h for the contract and every deliberate choice.
 *
 * Checksums are RFC 1071 one's complement sums accumulated over native-endian 64-bit loads:
 * the sum is byte-order independent (RFC 1071 section 2(B)), so a folded native sum stored
 * back with a native 16-bit store is the correct network-order checksum.
 */
#include "offload.h"
#include "fp_shared.h" /* generated from constants.py by cgen.py */

#include <string.h>

#define ETH_HLEN_ ((unsigned)FP_ETH_HLEN)
#define ETHERTYPE_IPV4 0x0800u
#define ETHERTYPE_IPV6 0x86ddu
#define ETHERTYPE_VLAN 0x8100u
#define ETHERTYPE_QINQ 0x88a8u
#define PROTO_TCP 6u

#define TCP_FIN 0x01u
#define TCP_SYN 0x02u
#define TCP_RST 0x04u
#define TCP_PSH 0x08u
#define TCP_ACK 0x10u
#define TCP_URG 0x20u
#define TCP_ECE 0x40u
#define TCP_CWR 0x80u

#define IP_DF 0x4000u
#define IP_MF 0x2000u
#define IP_OFFMASK 0x1fffu
#define IP_MAXLEN 65535u

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static inline uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- RFC 1071 checksum ------------------------------------------------------------------ */

static inline uint64_t add64(uint64_t a, uint64_t b)
{
    a += b;
    return a + (a < b); /* end-around carry */
}

/* Native representation of the network-order 16-bit value v, for adding to a native sum. */
static inline uint64_t net16(uint32_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    uint16_t w;
    memcpy(&w, b, 2);
    return w;
}

static uint64_t csum_tail(const uint8_t *p, size_t n, uint64_t sum)
{
    if (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        sum = add64(sum, w);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        sum = add64(sum, w);
        p += 2;
        n -= 2;
    }
    if (n) {
        /* the odd last byte is the high-order byte of a zero-padded word (RFC 1071) */
        uint8_t b[2] = {p[0], 0};
        uint16_t w;
        memcpy(&w, b, 2);
        sum = add64(sum, w);
    }
    return sum;
}

/* Sum n bytes starting at an even offset of the checksummed range. */
static uint64_t csum_partial(const uint8_t *p, size_t n, uint64_t sum)
{
    while (n >= 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        memcpy(&c, p + 16, 8);
        memcpy(&d, p + 24, 8);
        sum = add64(sum, a);
        sum = add64(sum, b);
        sum = add64(sum, c);
        sum = add64(sum, d);
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t a;
        memcpy(&a, p, 8);
        sum = add64(sum, a);
        p += 8;
        n -= 8;
    }
    return csum_tail(p, n, sum);
}

/* csum_partial that also copies: the payload is read once on the segmentation path. */
static uint64_t csum_copy(uint8_t *dst, const uint8_t *src, size_t n, uint64_t sum)
{
    while (n >= 32) {
        uint64_t a, b, c, d;
        memcpy(&a, src, 8);
        memcpy(&b, src + 8, 8);
        memcpy(&c, src + 16, 8);
        memcpy(&d, src + 24, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + 8, &b, 8);
        memcpy(dst + 16, &c, 8);
        memcpy(dst + 24, &d, 8);
        sum = add64(sum, a);
        sum = add64(sum, b);
        sum = add64(sum, c);
        sum = add64(sum, d);
        src += 32;
        dst += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t a;
        memcpy(&a, src, 8);
        memcpy(dst, &a, 8);
        sum = add64(sum, a);
        src += 8;
        dst += 8;
        n -= 8;
    }
    memcpy(dst, src, n);
    return csum_tail(src, n, sum);
}

static inline uint16_t csum_fold(uint64_t s)
{
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffu) + (s >> 16);
    s = (s & 0xffffu) + (s >> 16);
    return (uint16_t)s;
}

/* Pseudo-header (RFC 793 section 3.1, RFC 8200 section 8.1) without the length. */
static inline uint64_t pseudo_addrs(const uint8_t *ip, int v6)
{
    return csum_partial(ip + (v6 ? 8 : 12), v6 ? 32u : 8u, net16(PROTO_TCP));
}

static inline uint64_t pseudo_len(uint64_t sum, size_t l4len)
{
    return add64(add64(sum, net16((uint32_t)(l4len & 0xffffu))), net16((uint32_t)(l4len >> 16)));
}

static inline void store_csum(uint8_t *field, uint16_t native)
{
    memcpy(field, &native, 2);
}

static void ipv4_set_csum(uint8_t *ip, size_t ihl)
{
    ip[10] = ip[11] = 0;
    store_csum(ip + 10, (uint16_t)~csum_fold(csum_partial(ip, ihl, 0)));
}

int l2o_complete_csum(const struct virtio_net_hdr *vh, uint8_t *frame, size_t len)
{
    if (!(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
        return 0;
    size_t start = vh->csum_start, off = vh->csum_offset;
    if (start > len || off > len - start || len - start - off < 2)
        return -1;
    uint16_t c = (uint16_t)~csum_fold(csum_partial(frame + start, len - start, 0));
    /* as skb_checksum_help(): a zero result is sent as 0xffff (RFC 768 for UDP) */
    store_csum(frame + start + off, c ? c : 0xffffu);
    return 0;
}

/* ---- header parsing ----------------------------------------------------------------------- */

struct tcp_frame {
    size_t l3;     /* IP header offset */
    size_t l4;     /* TCP header offset */
    size_t hdrlen; /* end of the TCP header */
    size_t end;    /* end of the IP datagram (frame bytes after it are padding) */
    size_t iphl;   /* IPv4 header length / 40 for IPv6 */
    int v6;
    int vlan;      /* number of VLAN tags */
};

/* Locate an Ethernet/[VLAN]/IPv4-or-IPv6/TCP frame. 0 ok, -1 not such a frame or malformed.
 * IPv4 fragments, IPv6 extension headers and zero lengths (BIG TCP) are refused. */
static int parse_tcp(const uint8_t *f, size_t len, struct tcp_frame *t)
{
    size_t off = ETH_HLEN_;
    if (len < ETH_HLEN_)
        return -1;
    uint16_t et = rd16(f + 12);
    t->vlan = 0;
    while ((et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ) && t->vlan < 2) {
        if (len - off < 4)
            return -1;
        et = rd16(f + off + 2);
        off += 4;
        t->vlan++;
    }
    t->l3 = off;
    const uint8_t *ip = f + off;
    size_t avail = len - off;
    if (et == ETHERTYPE_IPV4) {
        if (avail < 20 || (ip[0] >> 4) != 4)
            return -1;
        size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
        size_t tot = rd16(ip + 2);
        if (ihl < 20 || ip[9] != PROTO_TCP || tot < ihl + 20 || tot > avail)
            return -1;
        if (rd16(ip + 6) & (IP_MF | IP_OFFMASK))
            return -1;
        t->v6 = 0;
        t->iphl = ihl;
        t->end = off + tot;
    } else if (et == ETHERTYPE_IPV6) {
        if (avail < 40 || (ip[0] >> 4) != 6 || ip[6] != PROTO_TCP)
            return -1;
        size_t plen = rd16(ip + 4);
        if (plen < 20 || plen > avail - 40)
            return -1;
        t->v6 = 1;
        t->iphl = 40;
        t->end = off + 40 + plen;
    } else {
        return -1;
    }
    t->l4 = off + t->iphl;
    const uint8_t *th = f + t->l4;
    size_t thl = (size_t)(th[12] >> 4) * 4;
    if (thl < 20 || thl > t->end - t->l4)
        return -1;
    t->hdrlen = t->l4 + thl;
    return 0;
}

/* ---- segmentation ------------------------------------------------------------------------- */

int l2o_segment(const struct virtio_net_hdr *vh, const uint8_t *frame, size_t len,
                size_t max_frame, uint8_t *out, size_t stride, size_t *lens, int max_segs)
{
    struct tcp_frame t;
    uint8_t gso = vh->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
    if (gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6)
        return -1;
    if (vh->gso_size == 0 || vh->hdr_len > len || stride < max_frame)
        return -1;
    if (parse_tcp(frame, len, &t) != 0)
        return -1;
    if (t.v6 != (gso == VIRTIO_NET_HDR_GSO_TCPV6))
        return -1;
    if ((vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
        (vh->csum_start != t.l4 || vh->csum_offset != 16))
        return -1;
    if (max_frame <= t.hdrlen)
        return -1;
    size_t mss = vh->gso_size;
    if (mss > max_frame - t.hdrlen)
        mss = max_frame - t.hdrlen;
    size_t payload = t.end - t.hdrlen;
    size_t nseg = payload ? (payload + mss - 1) / mss : 1;
    if (max_segs < 1 || nseg > (size_t)max_segs)
        return -2;

    const uint8_t *ip = frame + t.l3;
    const uint8_t *th = frame + t.l4;
    size_t thl = t.hdrlen - t.l4;
    uint32_t seq = rd32(th + 4);
    uint16_t id = rd16(ip + 4);
    uint8_t flags = th[13];
    uint64_t pseudo = pseudo_addrs(ip, t.v6);
    const uint8_t *src = frame + t.hdrlen;

    for (size_t i = 0; i < nseg; i++) {
        size_t plen = payload - i * mss < mss ? payload - i * mss : mss;
        uint8_t *d = out + i * stride;
        uint8_t *dip = d + t.l3;
        uint8_t *dth = d + t.l4;
        memcpy(d, frame, t.hdrlen);
        if (t.v6) {
            wr16(dip + 4, (uint32_t)(thl + plen));
        } else {
            wr16(dip + 2, (uint32_t)(t.iphl + thl + plen));
            /* inet_gso_segment: the ID advances by one per segment */
            wr16(dip + 4, (uint32_t)(id + i));
            ipv4_set_csum(dip, t.iphl);
        }
        wr32(dth + 4, seq + (uint32_t)(i * mss));
        /* tcp_gso_segment: CWR stays on the first segment, FIN and PSH on the last */
        uint8_t f = flags;
        if (i > 0)
            f &= (uint8_t)~TCP_CWR;
        if (i + 1 < nseg)
            f &= (uint8_t)~(TCP_FIN | TCP_PSH);
        dth[13] = f;
        dth[16] = dth[17] = 0;
        uint64_t sum = pseudo_len(pseudo, thl + plen);
        sum = csum_partial(dth, thl, sum);
        sum = csum_copy(d + t.hdrlen, src, plen, sum);
        store_csum(dth + 16, (uint16_t)~csum_fold(sum));
        src += plen;
        lens[i] = t.hdrlen + plen;
    }
    return (int)nseg;
}

/* ---- GRO ---------------------------------------------------------------------------------- */

void l2o_gro_init(struct l2o_gro *g, size_t vnet_hdr_len)
{
    g->vnet_hdr_len = vnet_hdr_len == 12 ? 12 : 10;
    g->clock = 0;
    g->nflows = 0;
    g->merged = g->superframes = g->passed = g->bad_csum = 0;
    for (int i = 0; i < L2O_GRO_FLOWS; i++)
        g->flow[i].len = 0;
}

static int emit_flow(struct l2o_gro *g, struct l2o_gro_flow *fl, l2o_emit_fn emit, void *ctx)
{
    size_t vl = g->vnet_hdr_len;
    uint8_t *f = fl->buf + vl;
    struct virtio_net_hdr vh;
    memset(fl->buf, 0, vl);
    if (fl->segs > 1) {
        uint8_t *ip = f + fl->l3off;
        size_t l4len = fl->len - fl->l4off;
        if (fl->v6) {
            wr16(ip + 4, (uint32_t)(fl->len - fl->l3off - 40));
        } else {
            wr16(ip + 2, (uint32_t)(fl->len - fl->l3off));
            ipv4_set_csum(ip, (size_t)fl->l4off - fl->l3off);
        }
        /* CHECKSUM_PARTIAL form: the field holds the folded pseudo-header sum and the kernel
         * trusts the rest (every merged segment was verified in l2o_gro_add). */
        store_csum(f + fl->l4off + 16, csum_fold(pseudo_len(pseudo_addrs(ip, fl->v6), l4len)));
        memset(&vh, 0, sizeof vh);
        vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        vh.gso_type = fl->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
        vh.hdr_len = fl->hdrlen;
        vh.gso_size = fl->gso_size;
        vh.csum_start = fl->l4off;
        vh.csum_offset = 16;
        memcpy(fl->buf, &vh, sizeof vh);
        g->superframes++;
    } else {
        g->passed++;
    }
    size_t n = vl + fl->len;
    fl->len = 0;
    g->nflows--;
    return emit(ctx, fl->buf, n);
}

static int pass_through(struct l2o_gro *g, const uint8_t *frame, size_t len, l2o_emit_fn emit,
                        void *ctx)
{
    size_t vl = g->vnet_hdr_len;
    if (len > L2O_GRO_BUFSZ - vl)
        return -1;
    memset(g->scratch, 0, vl);
    memcpy(g->scratch + vl, frame, len);
    g->passed++;
    return emit(ctx, g->scratch, vl + len);
}

static struct l2o_gro_flow *find_flow(struct l2o_gro *g, const uint8_t *f,
                                      const struct tcp_frame *t)
{
    size_t vl = g->vnet_hdr_len;
    size_t aoff = t->v6 ? 8 : 12, alen = t->v6 ? 32 : 8;
    if (g->nflows == 0)
        return NULL;
    for (int i = 0; i < L2O_GRO_FLOWS; i++) {
        struct l2o_gro_flow *fl = &g->flow[i];
        /* no l4 offset check: a segment of this flow with IPv4 options must still flush it */
        if (!fl->len || fl->v6 != t->v6)
            continue;
        const uint8_t *p = fl->buf + vl;
        if (memcmp(p, f, ETH_HLEN_) == 0 &&
            memcmp(p + fl->l3off + aoff, f + t->l3 + aoff, alen) == 0 &&
            memcmp(p + fl->l4off, f + t->l4, 4) == 0)
            return fl;
    }
    return NULL;
}

/* May segment s (flags ACK [|PSH] [|ECE], payload > 0; checksum verified by the caller while
 * copying) follow flow fl?
 * The rules of tcp_gro_receive / inet_gro_receive / ipv6_gro_receive. */
static int can_merge(const struct l2o_gro *g, const struct l2o_gro_flow *fl, const uint8_t *f,
                     const struct tcp_frame *t, size_t plen)
{
    const uint8_t *p = fl->buf + g->vnet_hdr_len;
    const uint8_t *ip = f + t->l3, *pip = p + fl->l3off;
    const uint8_t *th = f + t->l4, *pth = p + fl->l4off;
    size_t thl = t->hdrlen - t->l4;
    if (t->l4 != fl->l4off || t->hdrlen != fl->hdrlen || plen > fl->gso_size)
        return 0;
    if (rd32(th + 4) != fl->next_seq)
        return 0;
    if (t->v6) {
        /* version, traffic class, flow label; hop limit */
        if (memcmp(ip, pip, 4) != 0 || ip[7] != pip[7])
            return 0;
        if (fl->len - fl->l3off - 40 + plen > IP_MAXLEN)
            return 0;
    } else {
        uint16_t fo = rd16(ip + 6), pfo = rd16(pip + 6);
        if (ip[1] != pip[1] || ip[8] != pip[8] || ((fo ^ pfo) & IP_DF))
            return 0;
        if (!(fo & IP_DF) && rd16(ip + 4) != fl->next_id)
            return 0;
        if (fl->len - fl->l3off + plen > IP_MAXLEN)
            return 0;
    }
    /* ack number; data offset, flags but PSH, window; then the option bytes */
    if (memcmp(th + 8, pth + 8, 4) != 0 || th[12] != pth[12] ||
        ((th[13] ^ pth[13]) & (uint8_t)~TCP_PSH) || memcmp(th + 14, pth + 14, 2) != 0)
        return 0;
    return memcmp(th + 20, pth + 20, thl - 20) == 0;
}

/* A free slot, flushing the oldest flow when all are busy. */
static struct l2o_gro_flow *take_slot(struct l2o_gro *g, l2o_emit_fn emit, void *ctx, int *rc)
{
    if (g->nflows == L2O_GRO_FLOWS) {
        struct l2o_gro_flow *old = &g->flow[0];
        for (int i = 1; i < L2O_GRO_FLOWS; i++)
            if ((int32_t)(g->flow[i].age - old->age) < 0)
                old = &g->flow[i];
        int r = emit_flow(g, old, emit, ctx);
        if (r && !*rc)
            *rc = r;
    }
    for (int i = 0; i < L2O_GRO_FLOWS; i++)
        if (!g->flow[i].len)
            return &g->flow[i];
    return NULL; /* unreachable: nflows counts the busy slots */
}

static int keep_rc(int rc, int r) { return rc ? rc : r; }

int l2o_gro_add(struct l2o_gro *g, const uint8_t *frame, size_t len, l2o_emit_fn emit, void *ctx)
{
    struct tcp_frame t;
    int rc = 0;
    if (parse_tcp(frame, len, &t) != 0 || t.vlan)
        return pass_through(g, frame, len, emit, ctx);

    struct l2o_gro_flow *fl = find_flow(g, frame, &t);
    const uint8_t *ip = frame + t.l3, *th = frame + t.l4;
    size_t plen = t.end - t.hdrlen;
    uint8_t flags = th[13];
    /* ECE may be merged (it is the same on every segment then: can_merge); CWR may not */
    int candidate = plen > 0 && (flags & (uint8_t)~(TCP_PSH | TCP_ECE)) == TCP_ACK &&
                    (th[12] & 0x0f) == 0 && (t.v6 || t.iphl == 20);
    /* The kernel will not verify a NEEDS_CSUM super-frame, so every merged segment is
     * verified here, in the same pass that copies its payload (the sum of pseudo-header, TCP
     * header and payload, checksum field included, must fold to 0xffff: RFC 1071). */
    if (candidate && !t.v6 && csum_fold(csum_partial(ip, 20, 0)) != 0xffff) {
        g->bad_csum++;
        candidate = 0;
    }
    if (!candidate) {
        if (fl)
            rc = emit_flow(g, fl, emit, ctx);
        return keep_rc(rc, pass_through(g, frame, len, emit, ctx));
    }
    uint64_t head = csum_partial(th, t.hdrlen - t.l4,
                                 pseudo_len(pseudo_addrs(ip, t.v6), t.end - t.l4));
    if (fl && can_merge(g, fl, frame, &t, plen)) {
        uint8_t *p = fl->buf + g->vnet_hdr_len;
        if (csum_fold(csum_copy(p + fl->len, frame + t.hdrlen, plen, head)) != 0xffff) {
            /* the copy past fl->len is simply not committed */
            g->bad_csum++;
            rc = emit_flow(g, fl, emit, ctx);
            return keep_rc(rc, pass_through(g, frame, len, emit, ctx));
        }
        fl->len += (uint32_t)plen;
        fl->next_seq += (uint32_t)plen;
        fl->next_id++;
        fl->segs++;
        g->merged++;
        p[fl->l4off + 13] |= flags & TCP_PSH;
        /* a short segment or PSH ends the super-frame (tcp_gro_receive); so does a full one */
        size_t room = IP_MAXLEN - (fl->len - fl->l3off - (fl->v6 ? 40u : 0u));
        if ((flags & TCP_PSH) || plen < fl->gso_size || room < fl->gso_size)
            return emit_flow(g, fl, emit, ctx);
        return 0;
    }
    if (fl)
        rc = emit_flow(g, fl, emit, ctx);
    if (flags & TCP_PSH) /* nothing can follow it: as is, the kernel verifies it */
        return keep_rc(rc, pass_through(g, frame, len, emit, ctx));
    fl = take_slot(g, emit, ctx, &rc);
    uint8_t *d = fl->buf + g->vnet_hdr_len;
    memcpy(d, frame, t.hdrlen);
    if (csum_fold(csum_copy(d + t.hdrlen, frame + t.hdrlen, plen, head)) != 0xffff) {
        g->bad_csum++; /* the slot stays free */
        return keep_rc(rc, pass_through(g, frame, len, emit, ctx));
    }
    fl->len = (uint32_t)t.end;
    fl->age = g->clock++;
    fl->l3off = (uint16_t)t.l3;
    fl->l4off = (uint16_t)t.l4;
    fl->hdrlen = (uint16_t)t.hdrlen;
    fl->gso_size = (uint16_t)plen;
    fl->segs = 1;
    fl->v6 = (uint8_t)t.v6;
    fl->next_seq = rd32(th + 4) + (uint32_t)plen;
    fl->next_id = t.v6 ? 0 : (uint16_t)(rd16(ip + 4) + 1);
    g->nflows++;
    return rc;
}

int l2o_gro_flush(struct l2o_gro *g, l2o_emit_fn emit, void *ctx)
{
    int rc = 0;
    for (int i = 0; i < L2O_GRO_FLOWS && g->nflows; i++) {
        if (g->flow[i].len) {
            int r = emit_flow(g, &g->flow[i], emit, ctx);
            if (r && !rc)
                rc = r;
        }
    }
    return rc;
}
