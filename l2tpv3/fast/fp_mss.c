/* See fp_mss.h; mirrors l2tpv3/proto/mss.py line by line. */
#include "fp_mss.h"

#include "fp_shared.h"

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define MAX_TAGS 2
#define MAX_EXT 8
#define TCP_HLEN 20
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_CSUM_OFF 16

static inline unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

void fp_mss_limits(int setting, int mtu, unsigned *mss4, unsigned *mss6)
{
    if (setting == 0) {
        *mss4 = *mss6 = 0;
    } else if (setting > 0) {
        *mss4 = *mss6 = (unsigned)setting;
    } else {
        int a = mtu - FP_MSS_IPV4_OVERHEAD, b = mtu - FP_MSS_IPV6_OVERHEAD;
        *mss4 = (unsigned)(a < FP_TCP_MIN_MSS ? FP_TCP_MIN_MSS : a);
        *mss6 = (unsigned)(b < FP_TCP_MIN_MSS ? FP_TCP_MIN_MSS : b);
    }
}

int fp_mss_find(const uint8_t *f, size_t n, unsigned mss4, unsigned mss6, int partial,
                size_t csum_start, size_t csum_offset, struct fp_mss_hit *hit)
{
    if (n < 14) return 0;
    size_t off = 12;
    unsigned et = be16(f + off);
    int tags = 0;
    while ((et == 0x8100 || et == 0x88A8) && tags < MAX_TAGS) {
        if (off + 6 > n) return 0;
        off += 4;
        et = be16(f + off);
        tags++;
    }
    size_t l3 = off + 2, l4, end;
    unsigned limit;
    if (et == ETH_P_IP_) {
        limit = mss4;
        if (l3 + 20 > n || f[l3] >> 4 != 4) return 0;
        size_t ihl = (size_t)(f[l3] & 0x0F) * 4;
        size_t total = be16(f + l3 + 2);
        if (ihl < 20 || total < ihl + TCP_HLEN || l3 + total > n) return 0;
        if (f[l3 + 9] != 6 || (be16(f + l3 + 6) & 0x3FFF)) return 0;
        l4 = l3 + ihl;
        end = l3 + total;
    } else if (et == ETH_P_IPV6_) {
        limit = mss6;
        if (l3 + 40 > n || f[l3] >> 4 != 6) return 0;
        size_t plen = be16(f + l3 + 4);
        end = l3 + 40 + plen;
        if (plen == 0 || end > n) return 0;
        unsigned nh = f[l3 + 6];
        l4 = l3 + 40;
        int hops = 0;
        /* RFC 8200 section 4: hop-by-hop, routing, destination options. */
        while (nh == 0 || nh == 43 || nh == 60) {
            if (hops == MAX_EXT || l4 + 8 > end) return 0;
            unsigned next = f[l4];
            l4 += ((size_t)f[l4 + 1] + 1) * 8;
            nh = next;
            hops++;
        }
        if (nh != 6) return 0;
    } else {
        return 0;
    }
    if (limit == 0 || l4 + TCP_HLEN > end) return 0;
    unsigned flags = f[l4 + 13];
    if (!(flags & TCP_SYN) || (flags & TCP_RST)) return 0;
    size_t doff = (size_t)(f[l4 + 12] >> 4) * 4;
    if (doff < TCP_HLEN || l4 + doff > end) return 0;
    size_t i = l4 + TCP_HLEN, optend = l4 + doff;
    while (i < optend) {
        unsigned kind = f[i];
        if (kind == 0) return 0;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= optend) return 0;
        size_t olen = f[i + 1];
        if (olen < 2 || i + olen > optend) return 0;
        if (kind == 2) {
            if (olen != 4) return 0;
            unsigned old = be16(f + i + 2);
            if (old <= limit) return 0;
            int fix = 1;
            if (partial) {
                /* The field holds the pseudo-header sum, which the option does not enter. */
                if (csum_start != l4 || csum_offset != TCP_CSUM_OFF) return 0;
                fix = 0;
            }
            hit->value_off = i + 2;
            hit->tcp_off = l4;
            hit->old_mss = (uint16_t)old;
            hit->new_mss = (uint16_t)limit;
            hit->fix_csum = fix;
            return 1;
        }
        i += olen;
    }
    return 0;
}

uint16_t fp_csum_replace(uint16_t check, uint16_t old, uint16_t new_)
{
    uint32_t s = (uint32_t)(uint16_t)~check + (uint16_t)~old + new_;
    s = (s & 0xFFFF) + (s >> 16);
    s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

static inline uint16_t swap16(uint16_t v)
{
    return (uint16_t)(v << 8 | v >> 8);
}

void fp_mss_apply(uint8_t *f, const struct fp_mss_hit *h)
{
    size_t v = h->value_off;
    f[v] = (uint8_t)(h->new_mss >> 8);
    f[v + 1] = (uint8_t)h->new_mss;
    if (!h->fix_csum) return;
    uint16_t old = h->old_mss, new_ = h->new_mss;
    if ((v - h->tcp_off) & 1) {
        /* The value straddles two 16-bit words: its bytes count swapped (RFC 1071 2(B)). */
        old = swap16(old);
        new_ = swap16(new_);
    }
    uint8_t *c = f + h->tcp_off + TCP_CSUM_OFF;
    uint16_t check = fp_csum_replace((uint16_t)be16(c), old, new_);
    c[0] = (uint8_t)(check >> 8);
    c[1] = (uint8_t)check;
}

int fp_mss_clamp(uint8_t *f, size_t len, unsigned mss4, unsigned mss6, int partial,
                 size_t csum_start, size_t csum_offset)
{
    struct fp_mss_hit h;
    if (!fp_mss_find(f, len, mss4, mss6, partial, csum_start, csum_offset, &h)) return 0;
    fp_mss_apply(f, &h);
    return 1;
}
