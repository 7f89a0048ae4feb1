/* Per-VLAN sessions on a trunk: the C twin of l2tpv3/proto/vlan.py, which is the
 * reference (its docstring says which TPIDs are tags and what is dropped). Pure C. */
#ifndef L2TPV3_FP_VLAN_H
#define L2TPV3_FP_VLAN_H

#include <stddef.h>
#include <stdint.h>

#include "fp_shared.h"

/* The VID of the frame's outer 802.1Q / 802.1ad tag, or -1 if it has none. */
static inline int fp_vlan_outer_vid(const uint8_t *f, size_t len)
{
    if (len < FP_ETH_HLEN + FP_VLAN_HLEN) return -1;
    unsigned tpid = (unsigned)f[12] << 8 | f[13];
    if (tpid != FP_TPID_8021Q && tpid != FP_TPID_8021AD) return -1;
    return (int)(((unsigned)f[14] << 8 | f[15]) & FP_VLAN_VID_MASK);
}

/* Writes f[0..len) with an 802.1Q tag of vid (PCP 0, DEI 0) into out[0..len+4). */
void fp_vlan_push(uint8_t *out, const uint8_t *f, size_t len, int vid);

/* A trunk's VID -> session ID map (0: no session) and its drops; written by the one
 * thread that reads the trunk, the map under the tunnel's tx_lock. */
struct fp_trunk {
    int fd; /* the trunk TAP (no virtio-net header), -1 until attached */
    int slot; /* its place in the tunnel's trunks[], -1 until attached */
    volatile uint32_t sid[4096];
    volatile uint64_t drops[FP_NTRUNKDROPS];
};

/* Trunk.classify: the session ID for a frame read from the trunk, 0 a counted drop. */
uint32_t fp_trunk_classify(struct fp_trunk *t, const uint8_t *f, size_t len);

#endif
