/* An independent reading of Ethernet/[VLAN]/IPv4-or-IPv6/TCP frames for the offload
 * fuzz targets: where the TCP payload is, and whether the IPv4 header and TCP checksums
 * are right (RFC 791, RFC 793 section 3.1, RFC 1071). Written apart from offload.c on
 * purpose, so that it checks it instead of repeating it. */
#ifndef L2TPV3_FUZZ_TCPCHECK_H
#define L2TPV3_FUZZ_TCPCHECK_H

#include <stddef.h>
#include <stdint.h>

struct tc_frame {
    size_t l3, l4, payload, end; /* offsets: IP header, TCP header, payload, datagram end */
    int v6;
    uint32_t seq;
};

static inline unsigned tc_rd16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

static inline uint32_t tc_sum(const uint8_t *p, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2) s += tc_rd16(p + i);
    if (n & 1) s += (uint32_t)p[n - 1] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return s;
}

/* 0 and *t, or -1 if the frame is not one this checker reads. */
static inline int tc_parse(const uint8_t *f, size_t len, struct tc_frame *t)
{
    size_t off = 14;
    if (len < 14) return -1;
    unsigned et = tc_rd16(f + 12);
    for (int tags = 0; (et == 0x8100 || et == 0x88a8) && tags < 2; tags++) {
        if (len < off + 4) return -1;
        et = tc_rd16(f + off + 2);
        off += 4;
    }
    t->l3 = off;
    if (et == 0x0800) {
        if (len < off + 20 || f[off] >> 4 != 4 || f[off + 9] != 6) return -1;
        size_t ihl = (size_t)(f[off] & 15) * 4, tot = tc_rd16(f + off + 2);
        if (ihl < 20 || tot < ihl + 20 || off + tot > len) return -1;
        t->v6 = 0;
        t->l4 = off + ihl;
        t->end = off + tot;
    } else if (et == 0x86dd) {
        if (len < off + 40 || f[off] >> 4 != 6 || f[off + 6] != 6) return -1;
        size_t plen = tc_rd16(f + off + 4);
        if (plen < 20 || off + 40 + plen > len) return -1;
        t->v6 = 1;
        t->l4 = off + 40;
        t->end = off + 40 + plen;
    } else {
        return -1;
    }
    size_t thl = (size_t)(f[t->l4 + 12] >> 4) * 4;
    if (thl < 20 || t->l4 + thl > t->end) return -1;
    t->payload = t->l4 + thl;
    t->seq = (uint32_t)tc_rd16(f + t->l4 + 4) << 16 | tc_rd16(f + t->l4 + 6);
    return 0;
}

/* 1 if the IPv4 header checksum (if any) and the TCP checksum are right. */
static inline int tc_csum_ok(const uint8_t *f, const struct tc_frame *t)
{
    const uint8_t *ip = f + t->l3;
    uint32_t s = 0;
    if (!t->v6) {
        if (tc_sum(ip, t->l4 - t->l3, 0) != 0xffff) return 0;
        s = tc_sum(ip + 12, 8, 0);
    } else {
        s = tc_sum(ip + 8, 32, 0);
    }
    size_t l4len = t->end - t->l4;
    s += 6 + (uint32_t)l4len;
    s = tc_sum(f + t->l4, l4len, s);
    return s == 0xffff;
}

#endif
