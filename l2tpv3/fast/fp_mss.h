/* TCP MSS clamping: the C twin of l2tpv3/proto/mss.py, which is the reference (its
 * docstring says what is clamped, what is left alone and why). Pure C, no allocation. */
#ifndef L2TPV3_FP_MSS_H
#define L2TPV3_FP_MSS_H

#include <stddef.h>
#include <stdint.h>

struct fp_mss_hit {
    size_t value_off; /* the MSS option's value */
    size_t tcp_off;   /* the TCP header; its checksum field is at +16 */
    uint16_t old_mss, new_mss;
    int fix_csum;     /* 0: a partial checksum, left alone */
};

/* (IPv4, IPv6) limits for a setting (0 off, -1 auto, else the MSS) and an MTU. */
void fp_mss_limits(int setting, int mtu, unsigned *mss4, unsigned *mss6);

/* 1 and *hit if the frame's MSS option is to be lowered, else 0. partial: the frame has
 * a NEEDS_CSUM checksum at csum_start / csum_offset (virtio-net header). Reads only
 * f[0..len). */
int fp_mss_find(const uint8_t *f, size_t len, unsigned mss4, unsigned mss6, int partial,
                size_t csum_start, size_t csum_offset, struct fp_mss_hit *hit);
void fp_mss_apply(uint8_t *f, const struct fp_mss_hit *hit);
/* find + apply in place; 1 if lowered. */
int fp_mss_clamp(uint8_t *f, size_t len, unsigned mss4, unsigned mss6, int partial,
                 size_t csum_start, size_t csum_offset);
/* RFC 1624 eqn. 3. */
uint16_t fp_csum_replace(uint16_t check, uint16_t old, uint16_t new_);

#endif
